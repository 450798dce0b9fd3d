using System.Diagnostics;
using System.Runtime.InteropServices;
using Lamina;
using Lamina.Cli.Control;
using Lamina.Native;
using Lamina.Watches;

// bench/watches: event latency (p50/p99) for changes made through the union and directly in a branch,
// next to plain inotify on a plain directory; events per second until the queue overflows; and
// checkpoint/restore time for 10^4, 10^5, 10^6 watches. See bench/watches/run.
int samples = args.Length > 0 ? int.Parse(args[0]) : 2000;
string? mountLamina = args.Length > 1 ? args[1] : null; // path of the lamina command for the mount-level rows
var root = Directory.CreateTempSubdirectory("lamina-watch-bench-").FullName;
try
{
    Console.WriteLine($"# watch benchmark ({samples} samples per latency row, {Environment.ProcessorCount} cores)");
    Console.WriteLine();
    Console.WriteLine("| path | p50 µs | p99 µs |");
    Console.WriteLine("| --- | ---: | ---: |");
    Row("plain inotify, plain directory (kernel)", PlainInotify(Path.Combine(root, "plain"), samples));
    Row("engine API, write through the union", ThroughUnion(Path.Combine(root, "u1"), samples));
    Row("engine API, write directly in the lower branch", DirectBranch(Path.Combine(root, "u2"), samples));
    if (mountLamina is not null && Sys.GetEUid() == 0)
    {
        var (through, direct) = Mounted(mountLamina, Path.Combine(root, "m"), Math.Min(samples, 500));
        Row("lamina watch over the control socket, write through the FUSE mount", through);
        Row("lamina watch over the control socket, write directly in the lower branch", direct);
    }
    Console.WriteLine();
    Console.WriteLine($"events per second into one instance until IN_Q_OVERFLOW (16384 queued; writes through 16 union handles): {Overflow(Path.Combine(root, "o")):N0}");
    Console.WriteLine();
    Console.WriteLine("| watches | checkpoint ms | restore ms | restore via SETNEXTWD per watch ms |");
    Console.WriteLine("| ---: | ---: | ---: | ---: |");
    foreach (int n in new[] { 10_000, 100_000, 1_000_000 }) Checkpoint(n);
}
finally
{
    Directory.Delete(root, recursive: true);
}

static void Row(string name, List<double> us)
{
    us.Sort();
    Console.WriteLine($"| {name} | {us[us.Count / 2]:F0} | {us[(int)(us.Count * 0.99)]:F0} |");
}

static double Us(long ticks) => ticks * 1e6 / Stopwatch.Frequency;

static unsafe List<double> PlainInotify(string dir, int n)
{
    Directory.CreateDirectory(dir);
    int fd = Sys.InotifyInit1(Sys.IN_CLOEXEC);
    Sys.InotifyAddWatch(fd, dir, InotifyMask.Modify);
    var file = Path.Combine(dir, "f");
    using var fs = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.ReadWrite, 1);
    var buf = new byte[4096];
    var result = new List<double>();
    for (int i = 0; i < n; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        fs.Write(buf, 0, 1);
        fs.Flush();
        fixed (byte* p = buf) Sys.Read(fd, p, (nuint)buf.Length);
        result.Add(Us(Stopwatch.GetTimestamp() - t0));
    }
    Sys.Close(fd);
    return result;
}

static UnionFileSystem Union(string root, out string lower)
{
    lower = Path.Combine(root, "lower");
    foreach (var d in new[] { "lower/d", "upper", "work" }) Directory.CreateDirectory(Path.Combine(root, d));
    File.WriteAllText(Path.Combine(lower, "d", "f"), "");
    return UnionFileSystem.MountOverlay($"lowerdir={lower},upperdir={root}/upper,workdir={root}/work");
}

static List<double> ThroughUnion(string root, int n)
{
    using var fs = Union(root, out _);
    using var i = fs.Watches.CreateInstance();
    i.AddWatch("/d", InotifyMask.Modify, out _);
    fs.Paths.Open("/d/f", Sys.O_WRONLY, out var h);
    var result = new List<double>();
    for (int k = 0; k < n; k++)
    {
        long t0 = Stopwatch.GetTimestamp();
        h!.Write("x"u8, k, out _);
        var e = i.ReadEvents(TimeSpan.FromSeconds(5));
        result.Add(Us(Stopwatch.GetTimestamp() - t0));
        if (e.Count == 0) throw new InvalidOperationException("no event");
    }
    h!.Release();
    return result;
}

static List<double> DirectBranch(string root, int n)
{
    using var fs = Union(root, out var lower);
    using var i = fs.Watches.CreateInstance();
    i.AddWatch("/d", InotifyMask.Modify, out _);
    using var bw = new BranchWatcher(fs);
    bw.Start();
    using var f = new FileStream(Path.Combine(lower, "d", "f"), FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
    var result = new List<double>();
    for (int k = 0; k < n; k++)
    {
        long t0 = Stopwatch.GetTimestamp();
        f.WriteByte(1);
        f.Flush();
        var e = i.ReadEvents(TimeSpan.FromSeconds(5));
        result.Add(Us(Stopwatch.GetTimestamp() - t0));
        if (e.Count == 0) throw new InvalidOperationException("no event");
    }
    return result;
}

static (List<double>, List<double>) Mounted(string lamina, string root, int n)
{
    foreach (var d in new[] { "lower/d", "upper", "work", "m" }) Directory.CreateDirectory(Path.Combine(root, d));
    File.WriteAllText(Path.Combine(root, "lower/d/g"), "");
    string mnt = Path.Combine(root, "m");
    Run(lamina, $"mount -o lowerdir={root}/lower,upperdir={root}/upper,workdir={root}/work {mnt}");
    try
    {
        using var c = WatchClient.Open(mnt, InotifyMask.Modify, ["d"]) ?? throw new InvalidOperationException("no daemon");
        var through = new List<double>();
        using (var f = new FileStream(Path.Combine(mnt, "d/f"), FileMode.Create, FileAccess.Write, FileShare.ReadWrite, 1))
            for (int k = 0; k < n; k++)
            {
                long t0 = Stopwatch.GetTimestamp();
                f.WriteByte(1);
                f.Flush();
                c.Next();
                through.Add(Us(Stopwatch.GetTimestamp() - t0));
            }
        var direct = new List<double>();
        using (var f = new FileStream(Path.Combine(root, "lower/d/g"), FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1))
            for (int k = 0; k < n; k++)
            {
                long t0 = Stopwatch.GetTimestamp();
                f.WriteByte(1);
                f.Flush();
                while (c.Next() is { } e && e.Name != "g") { }
                direct.Add(Us(Stopwatch.GetTimestamp() - t0));
            }
        return (through, direct);
    }
    finally
    {
        Run(lamina, $"umount {mnt}");
    }
}

static void Run(string lamina, string arguments)
{
    var p = Process.Start(new ProcessStartInfo(lamina, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"lamina {arguments}: {p.StandardError.ReadToEnd()}");
}

static double Overflow(string root)
{
    // Writes through 16 open union files in turn: each is one IN_MODIFY with a name different from the
    // last one (no merging), delivered by the hub into one instance until it overflows.
    using var fs = Union(root, out _);
    using var i = fs.Watches.CreateInstance();
    i.AddWatch("/d", InotifyMask.Modify, out _);
    var handles = new List<UnionHandle>();
    for (int k = 0; k < 16; k++)
    {
        fs.Paths.Open($"/d/w{k}", Sys.O_WRONLY | Sys.O_CREAT, out var h, 0x1a4).Ok();
        handles.Add(h!);
    }
    var sw = Stopwatch.StartNew();
    int n = 0;
    while (i.QueuedEvents <= i.MaxQueuedEvents) { handles[n % 16].Write("x"u8, 0, out _); n++; }
    double rate = n / sw.Elapsed.TotalSeconds;
    foreach (var h in handles) h.Release();
    return rate;
}

static void Checkpoint(int n)
{
    var source = new WatchInstance(new Targets(), 16);
    source.SetNextWd(0x34d71d6);
    for (int k = 0; k < n; k++) source.AddWatch($"d{k >> 10}/f{k}", InotifyMask.Modify, out _);
    var sw = Stopwatch.StartNew();
    var text = new StringWriter();
    source.Checkpoint(text);
    double cp = sw.Elapsed.TotalMilliseconds;
    sw.Restart();
    new WatchInstance(new Targets(), 16).Restore(new StringReader(text.ToString()), out _);
    double rs = sw.Elapsed.TotalMilliseconds;
    sw.Restart();
    var viaIoctl = new WatchInstance(new Targets(), 16);
    foreach (var w in source.Watches) { viaIoctl.SetNextWd(w.Wd); viaIoctl.AddWatch(w.Path, w.Mask, out _); }
    double si = sw.Elapsed.TotalMilliseconds;
    Console.WriteLine($"| {n:N0} | {cp:F0} | {rs:F0} | {si:F0} |");
}

/// <summary>In-memory watch targets: one object per path.</summary>
sealed class Targets : IWatchTargets
{
    private readonly Dictionary<string, object> _keys = [];
    public Errno Resolve(string path, bool followLast, out WatchTarget target)
    {
        if (!_keys.TryGetValue(path, out var key)) _keys[path] = key = new object();
        target = new WatchTarget(key, path, false);
        return Errno.None;
    }
    public void Attach(Watch watch) { }
    public void Detach(Watch watch) { }
    public void Unpin(object key) { }
}

static class ErrnoExtensions
{
    public static void Ok(this Errno e) { if (e != Errno.None) throw new ErrnoException(e, "bench"); }
}
