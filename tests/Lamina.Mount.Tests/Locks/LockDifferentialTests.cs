using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace Lamina.Mount.Tests.Locks;

/// <summary>
/// Randomized differential test: eight owner processes, driven one operation at a time, lock,
/// unlock, test and flock ranges of sixteen files through a union whose files start in a lower
/// layer (so copy-ups happen in the middle of it), and the same sequence runs on plain files of
/// the host filesystem. Every answer must be the same.
/// </summary>
/// <remarks>
/// Two things are not compared because FUSE cannot carry them (fs/fuse/file.c): l_pid of an
/// F_OFD_GETLK answer is always -1 through FUSE (the kernel keeps the request's FL_OFDLCK flag),
/// and F_GETLK cannot answer -1 for an OFD holder (the kernel sends OFD locks as POSIX locks of
/// an owner that is the open file, so the daemon cannot tell them apart). Descriptors holding OFD
/// or flock locks are never closed in the sequence: their release travels in RELEASE, which the
/// kernel sends after close(2) has returned.
/// </remarks>
public class LockDifferentialTests(ITestOutputHelper output)
{
    private const int Owners = 8, Files = 16;

    private sealed class Side : IDisposable
    {
        public readonly string Dir;
        public readonly LockDriver[] Drivers = new LockDriver[Owners];
        public readonly Dictionary<int, int> OwnerOfPid = [];
        public readonly HashSet<(int Owner, int File)> Writable = [];

        public Side(string dir)
        {
            Dir = dir;
            for (int i = 0; i < Owners; i++)
            {
                Drivers[i] = new LockDriver();
                OwnerOfPid[Drivers[i].Pid] = i;
                for (int f = 0; f < Files; f++) Expect("ok", Drivers[i].Do($"open r{f} {Path.Combine(dir, Name(f))} r"));
            }
        }

        public void Dispose()
        {
            foreach (var d in Drivers) d?.Dispose();
        }
    }

    private static string Name(int f) => $"f{f:00}.dat";

    private static void Expect(string expected, string actual) => Assert.Equal(expected, actual);

    [MountFact]
    public void Random_lock_sequences_answer_exactly_as_on_plain_files()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable("LAMINA_LOCK_DIFF_OPS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 100_000;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("LAMINA_LOCK_DIFF_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) ? s : Environment.TickCount;
        var content = new string('x', 64);
        using var m = new LaminaMount(1, mm =>
        {
            for (int f = 0; f < Files; f++) File.WriteAllText(Path.Combine(mm.Lower(0), Name(f)), content);
        }).Mount();
        var plainDir = Directory.CreateTempSubdirectory("lamina-lock-diff-plain-").FullName;
        try
        {
            for (int f = 0; f < Files; f++) File.WriteAllText(Path.Combine(plainDir, Name(f)), content);
            using var union = new Side(m.Merged);
            using var plain = new Side(plainDir);
            var rng = new Random(seed);
            var sw = Stopwatch.StartNew();
            int copyUps = 0, compared = 0, pidsNotComparable = 0;
            var recent = new Queue<string>();
            for (int op = 0; op < count; op++)
            {
                int owner = rng.Next(Owners), file = rng.Next(Files);
                string command = NextCommand(rng, file, out bool needsWrite);
                if (needsWrite && !union.Writable.Contains((owner, file)))
                {
                    bool firstWriter = !union.Writable.Any(w => w.File == file);
                    foreach (var side in new[] { union, plain })
                    {
                        Expect("ok", side.Drivers[owner].Do($"open w{file} {Path.Combine(side.Dir, Name(file))} rw"));
                        side.Writable.Add((owner, file));
                    }
                    if (firstWriter) copyUps++;
                    Assert.True(File.Exists(Path.Combine(m.Upper, Name(file))), "an open for writing copies the file up");
                }
                string viaUnion = union.Drivers[owner].Do(command);
                string viaPlain = plain.Drivers[owner].Do(command);
                recent.Enqueue($"#{op} owner {owner}: {command} -> plain '{viaPlain}', union '{viaUnion}'");
                if (recent.Count > 12) recent.Dequeue();
                if (command.StartsWith("close", StringComparison.Ordinal))
                {
                    // Reopen at once, so every owner keeps a read descriptor of every file.
                    string reopen = $"open r{file} {{0}} r";
                    Expect("ok", union.Drivers[owner].Do(string.Format(CultureInfo.InvariantCulture, reopen, Path.Combine(union.Dir, Name(file)))));
                    Expect("ok", plain.Drivers[owner].Do(string.Format(CultureInfo.InvariantCulture, reopen, Path.Combine(plain.Dir, Name(file)))));
                }
                var (u, p) = Normalize(viaUnion, viaPlain, union, plain, command, ref pidsNotComparable);
                if (u != p)
                    Assert.Fail($"seed {seed}, operation {op}: plain files answered '{viaPlain}', the union '{viaUnion}'.\nLast operations:\n{string.Join('\n', recent)}");
                compared++;
            }
            output.WriteLine($"lock differential: {compared} operations by {Owners} owners on {Files} files, {copyUps} copy-ups interleaved, " +
                $"{pidsNotComparable} OFD-holder pids not comparable over FUSE, seed {seed}, {sw.Elapsed.TotalSeconds:F1} s");
            Console.WriteLine($"lock differential: {compared} operations, seed {seed}, {sw.Elapsed.TotalSeconds:F1} s");
            Assert.True(copyUps > 0);
        }
        finally
        {
            Directory.Delete(plainDir, recursive: true);
        }
    }

    /// <summary>One random operation. POSIX and OFD locks, tests of both, flock, and closes that drop a process's POSIX locks.</summary>
    private static string NextCommand(Random rng, int file, out bool needsWrite)
    {
        needsWrite = false;
        string Range() => $"{rng.Next(0, 48)} {(rng.Next(4) == 0 ? 0 : rng.Next(1, 24))}";
        string type = rng.Next(3) switch { 0 => "r", 1 => "w", _ => "u" };
        switch (rng.Next(100))
        {
            case < 35:
                needsWrite = type == "w";
                return $"lk {(type == "w" ? "w" : "r")}{file} setlk {type} {Range()}";
            case < 55:
                needsWrite = true;
                return $"lk w{file} ofd_setlk {type} {Range()}";
            case < 75:
                return $"lk r{file} getlk {(rng.Next(2) == 0 ? "r" : "w")} {Range()}";
            case < 83:
                needsWrite = true;
                return $"lk w{file} ofd_getlk {(rng.Next(2) == 0 ? "r" : "w")} {Range()}";
            case < 95:
                needsWrite = true;
                return $"flock w{file} {rng.Next(3) switch { 0 => "sh", 1 => "ex", _ => "un" }} nb";
            default:
                return $"close r{file}";
        }
    }

    /// <summary>Pids become owner numbers; the pids FUSE cannot carry (see remarks) are left out of both answers.</summary>
    private static (string Union, string Plain) Normalize(string u, string p, Side union, Side plain, string command, ref int notComparable)
    {
        if (!u.StartsWith("lk ", StringComparison.Ordinal) || u == "lk u" || !p.StartsWith("lk ", StringComparison.Ordinal) || p == "lk u") return (u, p);
        var up = u.Split(' ');
        var pp = p.Split(' ');
        int upid = int.Parse(up[4], CultureInfo.InvariantCulture), ppid = int.Parse(pp[4], CultureInfo.InvariantCulture);
        string uw, pw;
        if (command.Contains("ofd_getlk", StringComparison.Ordinal)) uw = pw = "?";
        else if (ppid == -1) { uw = pw = "?"; notComparable++; }
        else
        {
            uw = union.OwnerOfPid.TryGetValue(upid, out var uo) ? $"owner{uo}" : $"pid{upid}";
            pw = plain.OwnerOfPid.TryGetValue(ppid, out var po) ? $"owner{po}" : $"pid{ppid}";
        }
        return ($"lk {up[1]} {up[2]} {up[3]} {uw}", $"lk {pp[1]} {pp[2]} {pp[3]} {pw}");
    }
}
