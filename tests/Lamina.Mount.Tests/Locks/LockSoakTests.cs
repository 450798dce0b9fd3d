using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Lamina.Native;
using Xunit.Abstractions;

namespace Lamina.Mount.Tests.Locks;

/// <summary>
/// The free-running soak of issue 6: eight real processes (locksoak.py) take and release random
/// POSIX, OFD and flock locks through a mount for a fixed time — blocking and non-blocking, shared
/// and exclusive, one or two at once, on upper files and on lower files that one of them copies up
/// in the middle of the run — and each checks mutual exclusion itself through the file contents
/// (see the script). Afterwards: no process saw a violation or an unexpected error, none hung, no lock is
/// left in the union or on any branch file, and the daemon is alive.
/// </summary>
/// <remarks>
/// The run lasts LAMINA_SOAK_SECONDS seconds (default 60, the issue's one-minute run). LAMINA_SOAK_SEED fixes the processes' random choices.
/// </remarks>
public class LockSoakTests(ITestOutputHelper output)
{
    private const int Processes = 8, FileSize = 1024;
    private static readonly string Script = Path.Combine(AppContext.BaseDirectory, "Locks", "locksoak.py");
    /// <summary>How long past the run's end a process may take to finish: its last blocking request, its report.</summary>
    private static readonly TimeSpan Margin = TimeSpan.FromSeconds(30);

    // Byte-range files get POSIX and OFD locks, flock files whole-file flock locks. Lower files are
    // copied up one after another during the run; lower0 is the top lower layer, lower1 the bottom one.
    private static readonly (string Name, int Layer, bool Flock)[] Files =
    [
        ("low-a.dat", 0, false), ("low-b.dat", 0, false), ("deep.dat", 1, false),
        ("up-a.dat", -1, false), ("up-b.dat", -1, false),
        ("flock-low.dat", 1, true), ("flock-up.dat", -1, true),
    ];

    [MountFact(Needs = "python3")]
    public void Eight_processes_locking_freely_never_break_mutual_exclusion_never_hang_and_leave_no_lock()
    {
        int seconds = EnvInt("LAMINA_SOAK_SECONDS", 60);
        int seed = EnvInt("LAMINA_SOAK_SEED", Environment.TickCount & 0x7fffffff);
        var dots = new string('.', FileSize);
        using var m = new LaminaMount(2, mm =>
        {
            foreach (var (name, layer, _) in Files)
                File.WriteAllText(Path.Combine(layer < 0 ? mm.Upper : mm.Lower(layer), name), dots);
        }).Mount();
        int daemon = m.DaemonPid() ?? throw new InvalidOperationException("the daemon does not report its pid");
        string Say(string line) { output.WriteLine(line); Console.WriteLine(line); return line; }
        Say($"lock soak: {Processes} processes, {seconds} s (LAMINA_SOAK_SECONDS, default 60), seed {seed} (LAMINA_SOAK_SEED)");

        var procs = new List<(Process P, Task<string> Out, Task<string> Err)>();
        var sw = Stopwatch.StartNew();
        try
        {
            for (int i = 0; i < Processes; i++)
            {
                var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in new[] { "-u", Script, $"{i}", $"{seconds}", $"{seed + i}" }) psi.ArgumentList.Add(a);
                foreach (var (name, layer, flock) in Files)
                    psi.ArgumentList.Add($"{(flock ? "flock" : "range")}:{(layer < 0 ? "upper" : "lower")}:{Path.Combine(m.Merged, name)}");
                var p = Process.Start(psi)!;
                procs.Add((p, p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync()));
            }

            var deadline = TimeSpan.FromSeconds(seconds) + Margin;
            var hung = new List<string>();
            foreach (var (p, _, _) in procs)
            {
                var left = deadline - sw.Elapsed;
                if (!p.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero))
                    hung.Add($"pid {p.Id} waits in {ReadOr($"/proc/{p.Id}/wchan", "?")}" + (hung.Count == 0 ? $", stack:\n{ReadOr($"/proc/{p.Id}/stack", "?")}" : ""));
            }
            if (hung.Count > 0)
            {
                string locks = Cli.Run("locks", m.Merged).StdOut;
                foreach (var (p, _, _) in procs) { try { p.Kill(); } catch (InvalidOperationException) { } p.WaitForExit(5000); }
                string seen = string.Concat(procs.Select(x => x.Err.Result));
                Assert.Fail($"seed {seed}: {hung.Count} of {Processes} processes still running {Margin.TotalSeconds:F0} s after the {seconds} s run ended:\n" +
                    string.Join('\n', hung) + $"\nlamina locks:\n{locks}" + (seen.Length > 0 ? $"reported by the processes before that:\n{seen}" : ""));
            }
            double elapsed = sw.Elapsed.TotalSeconds;

            // Every process's own verdict, and its counts.
            var reports = new List<JsonElement>();
            var failures = new List<string>();
            foreach (var (p, o, e) in procs)
            {
                string stdout = o.Result, stderr = e.Result;
                var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
                JsonElement? report = null;
                try { if (last is not null) report = JsonSerializer.Deserialize<JsonElement>(last); } catch (JsonException) { }
                if (report is null) { failures.Add($"pid {p.Id} exited {p.ExitCode} without a report: {stdout}{stderr}"); continue; }
                reports.Add(report.Value);
                if (p.ExitCode != 0 || Count(report.Value, "violations") > 0 || Count(report.Value, "errors") > 0)
                    failures.Add($"process {Count(report.Value, "id")} (pid {p.Id}) exited {p.ExitCode}: {Count(report.Value, "violations")} violations, {Count(report.Value, "errors")} errors: " +
                        string.Join(" | ", report.Value.GetProperty("examples").EnumerateArray().Select(x => x.GetString())) + stderr);
            }
            long Sum(string key) => reports.Sum(r => Count(r, key));
            Say($"lock soak: {Sum("iterations")} iterations in {elapsed:F1} s; {Sum("read_locks")} read and {Sum("write_locks")} write locks granted, " +
                $"{Sum("posix_locks")} POSIX, {Sum("ofd_locks")} OFD, {Sum("flock_locks")} flock, {Sum("blocking")} of them blocking ({Sum("waited")} waited > 1 ms), {Sum("busy")} F_SETLK refused as busy, {Sum("edeadlk")} EDEADLK, " +
                $"{Sum("nested")} second locks tried while holding one, {Sum("checks")} range checks, {Sum("violations")} violations, {Sum("errors")} errors");
            Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join('\n', failures));
            Assert.Equal(Processes, reports.Count);

            // The run did what it is for: locks were contended, waited for, and both kinds were taken.
            Assert.True(Sum("busy") > 0, "no non-blocking request ever found its range busy: the processes never contended");
            Assert.True(Sum("waited") > 0, "no blocking request ever had to wait");
            Assert.True(Sum("write_locks") > 0 && Sum("read_locks") > 0);
            Assert.True(Sum("posix_locks") > 0 && Sum("ofd_locks") > 0 && Sum("flock_locks") > 0, "every kind of lock was taken");

            // Nothing is left: not in the union's table, not on any branch file.
            var listed = Cli.Run("locks", m.Merged);
            Assert.True(listed.ExitCode == 0, listed.StdErr);
            var rows = listed.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
            Assert.True(rows.Count == 0, "locks left after every process ended:\n" + listed.StdOut);
            foreach (var (name, layer, _) in Files)
            {
                string upper = Path.Combine(m.Upper, name);
                Assert.True(File.Exists(upper), $"{name} was never copied up: the run did not exercise copy-up under locks");
                Assert.Equal(dots, File.ReadAllText(upper)); // every writer put back what it wrote over
                Assert.Equal(Sys.F_UNLCK, BranchLocks.Holder(upper));
                Assert.True(BranchLocks.FlockFree(upper), $"a flock lock is left on {upper}");
                if (layer >= 0)
                {
                    string lower = Path.Combine(m.Lower(layer), name);
                    Assert.Equal(dots, File.ReadAllText(lower)); // copy-up never wrote into the lower layer
                    Assert.Equal(Sys.F_UNLCK, BranchLocks.Holder(lower));
                    Assert.True(BranchLocks.FlockFree(lower), $"a flock lock is left on {lower}");
                }
            }

            // The daemon lived through it and still answers, through the mount and on its socket.
            Assert.True(File.Exists($"/proc/{daemon}/stat") && !File.ReadAllText($"/proc/{daemon}/stat").Contains(") Z ", StringComparison.Ordinal), "the daemon died");
            Assert.Equal(daemon, m.DaemonPid());
            Assert.Equal(dots, File.ReadAllText(Path.Combine(m.Merged, "deep.dat")));
            var status = Cli.Run("status", m.Merged).StdOut;
            Assert.Contains("open files: 0", status);
            Say($"lock soak: no lock left, daemon {daemon} alive; {status.Split('\n').FirstOrDefault(l => l.Contains("copy-ups", StringComparison.Ordinal))?.Trim()}");
        }
        finally
        {
            foreach (var (p, _, _) in procs)
            {
                try { if (!p.HasExited) p.Kill(); } catch (InvalidOperationException) { }
                p.WaitForExit(5000);
                p.Dispose();
            }
        }
    }

    private static long Count(JsonElement report, string key) => report.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;

    private static string ReadOr(string path, string fallback)
    {
        try { return File.ReadAllText(path).Trim(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return fallback; }
    }
}
