using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Lamina.Fuse.Mounting;
using Lamina.Native;

namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>
/// lamina-loopback running as a separate process over a fresh temp SOURCE, mounted at a fresh
/// temp MOUNTPOINT. Dispose stops it (SIGTERM, then SIGKILL), makes sure nothing stays mounted
/// (lazy umount as a last resort) and deletes the temp tree.
/// </summary>
public sealed partial class LoopbackServer : IDisposable
{
    public const int Nobody = 65534;
    private static readonly object LiveLock = new();
    private static readonly HashSet<LoopbackServer> Live = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    static LoopbackServer()
    {
        // If the test host goes down with servers still running, take them and their mounts along.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            LoopbackServer[] all;
            lock (LiveLock) all = Live.ToArray();
            foreach (var s in all) s.Dispose();
        };
    }

    private LoopbackServer(string root, string sourceName)
    {
        Root = root;
        Source = Path.Combine(root, sourceName);
        MountPoint = Path.Combine(root, "mnt");
        Directory.CreateDirectory(Source);
        Directory.CreateDirectory(MountPoint);
    }

    public string Root { get; }
    public string Source { get; }
    public string MountPoint { get; }
    public Process? Process { get; private set; }
    public string ReadyLine { get; private set; } = "";
    public bool Passthrough => ReadyLine.Contains("passthrough=True", StringComparison.Ordinal);
    public int ProtocolMinor => ReadyRegex().Match(ReadyLine) is { Success: true } m ? int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    [GeneratedRegex(@"^ready passthrough=(True|False) protocol=7\.(\d+)")]
    public static partial Regex ReadyRegex();

    /// <summary>The loopback sample, copied next to the tests by the project reference.</summary>
    public static string LoopbackDll
    {
        get
        {
            string next = Path.Combine(AppContext.BaseDirectory, "lamina-loopback.dll");
            if (File.Exists(next)) return next;
            throw new FileNotFoundException($"lamina-loopback.dll is not next to the tests ({AppContext.BaseDirectory}): build tests/Lamina.Fuse.Tests, which references samples/Loopback");
        }
    }

    public static string Dotnet => Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet"
        ? p : Conditions.FindOnPath("dotnet") ?? throw new FileNotFoundException("dotnet is not on PATH");

    /// <summary>Starts a server and waits for its "ready" line.</summary>
    /// <param name="prepare">Runs on the empty source directory before the mount.</param>
    /// <param name="asUid">Run the server as this user (via setpriv), owning the temp tree.</param>
    public static LoopbackServer Start(bool passthrough = true, double timeout = 1.0, string[]? extraArgs = null,
        Action<string>? prepare = null, int? asUid = null, TimeSpan? readyWithin = null, string[]? launcher = null, string sourceName = "src")
    {
        var root = Directory.CreateTempSubdirectory("lamina-fuse-tests-").FullName;
        var server = new LoopbackServer(root, sourceName);
        lock (LiveLock) Live.Add(server);
        try
        {
            prepare?.Invoke(server.Source);
            server.Launch(passthrough, timeout, extraArgs ?? [], asUid, readyWithin ?? TimeSpan.FromSeconds(60), launcher ?? []);
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <param name="launcher">A command prefix that execs the rest (e.g. prlimit ... --), so the server keeps its pid.</param>
    private void Launch(bool passthrough, double timeout, string[] extraArgs, int? asUid, TimeSpan readyWithin, string[] launcher)
    {
        var cmd = new List<string>(launcher);
        var psi = new ProcessStartInfo();
        if (asUid is int uid)
        {
            ChownTree(Root, uid);
            cmd.AddRange([Conditions.FindOnPath("setpriv")!, $"--reuid={uid}", $"--regid={uid}", "--clear-groups", "--"]);
            psi.Environment["HOME"] = Root;
            psi.Environment["DOTNET_CLI_HOME"] = Root;
        }
        cmd.AddRange([Dotnet, LoopbackDll, Source, MountPoint, "--timeout", timeout.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (!passthrough) cmd.Add("--no-passthrough");
        cmd.AddRange(extraArgs);
        psi.FileName = cmd[0];
        foreach (var a in cmd.Skip(1)) psi.ArgumentList.Add(a);
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) _ready.TrySetException(new InvalidOperationException($"lamina-loopback closed its output before it was ready; stderr:\n{Stderr}"));
            else if (e.Data.StartsWith("ready", StringComparison.Ordinal)) _ready.TrySetResult(e.Data);
            else if (e.Data.StartsWith("stats ", StringComparison.Ordinal)) _stats.Add(e.Data);
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        p.Exited += (_, _) => _ready.TrySetException(new InvalidOperationException($"lamina-loopback exited ({SafeExitCode(p)}) before it was ready; stderr:\n{Stderr}"));
        p.Start();
        Process = p;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!_ready.Task.Wait(readyWithin))
            throw new TimeoutException($"lamina-loopback was not ready within {readyWithin.TotalSeconds} s; stderr:\n{Stderr}");
        ReadyLine = _ready.Task.Result;
    }

    private static string SafeExitCode(Process p)
    {
        try { return "exit code " + p.ExitCode; } catch (InvalidOperationException) { return "exit code unknown"; }
    }

    public static void ChownTree(string path, int uid)
    {
        if (Sys.FChownAt(Sys.AT_FDCWD, path, (uint)uid, (uint)uid, Sys.AT_SYMLINK_NOFOLLOW) != 0)
            throw new ErrnoException(Sys.LastErrno, "chown", path);
        if (Directory.Exists(path) && (File.GetAttributes(path) & FileAttributes.ReparsePoint) == 0)
            foreach (var e in Directory.EnumerateFileSystemEntries(path)) ChownTree(e, uid);
    }

    public bool IsRunning => Process is { } p && !p.HasExited;

    /// <summary>Whether anything is mounted at <paramref name="path"/> (from /proc/self/mountinfo).</summary>
    public static bool IsMounted(string path)
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var f = line.Split(' ');
            if (f.Length > 4 && Unescape(f[4]) == path) return true;
        }
        return false;
    }

    private static string Unescape(string s) => Regex.Replace(s, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());

    public bool Mounted => IsMounted(MountPoint);

    private readonly System.Collections.Concurrent.BlockingCollection<string> _stats = [];

    /// <summary>The server's READ replies so far (SIGUSR1 makes it print them): spliced, and copied through its buffer.</summary>
    public (long Spliced, long Copied) ReadReplies()
    {
        while (_stats.TryTake(out _)) { }
        Signal(10); // SIGUSR1
        if (!_stats.TryTake(out var line, TimeSpan.FromSeconds(10))) throw new TimeoutException("the server printed no stats line within 10 s of SIGUSR1");
        var m = Regex.Match(line, @"reads-spliced=(\d+) reads-copied=(\d+)");
        if (!m.Success) throw new FormatException($"stats line not understood: {line}");
        return (long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    public void Signal(int signal)
    {
        if (Process is { } p && !p.HasExited) Sys.Kill(p.Id, signal);
    }

    /// <summary>
    /// SIGSTOP, then wait until every thread of the server is really stopped: kill(2) returns as
    /// soon as the signal is queued, and a worker already on a CPU can still answer a request.
    /// </summary>
    public void Stop()
    {
        Signal(19); // SIGSTOP
        if (Process is not { } p) return;
        var until = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < until)
        {
            bool all = true;
            foreach (var task in Directory.EnumerateDirectories($"/proc/{p.Id}/task"))
            {
                string stat;
                try { stat = File.ReadAllText(Path.Combine(task, "stat")); }
                catch (IOException) { continue; } // the thread ended
                char state = stat[stat.LastIndexOf(')') + 2];
                if (state != 'T' && state != 't') { all = false; break; }
            }
            if (all) return;
            Thread.Sleep(2);
        }
        throw new TimeoutException($"server {p.Id} did not stop within 10 s of SIGSTOP");
    }

    public bool WaitForExit(TimeSpan within) => Process is null || Process.WaitForExit(within);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            if (Process is { } p)
            {
                if (!p.HasExited)
                {
                    Sys.Kill(p.Id, 18); // SIGCONT, in case a test left it stopped
                    Sys.Kill(p.Id, 15); // SIGTERM: the server unmounts itself
                    if (!p.WaitForExit(TimeSpan.FromSeconds(15)))
                    {
                        try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                        p.WaitForExit(TimeSpan.FromSeconds(10));
                    }
                }
                p.Dispose();
            }
        }
        finally
        {
            bool clean = true;
            if (IsMounted(MountPoint))
            {
                try { FuseMount.Unmount(MountPoint, lazy: true); }
                catch (FuseMountException) { clean = false; }
            }
            lock (LiveLock) Live.Remove(this);
            // Never delete through a mount that is still there.
            if (clean && !IsMounted(MountPoint))
            {
                try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
    }
}
