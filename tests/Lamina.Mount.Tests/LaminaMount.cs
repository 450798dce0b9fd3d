using System.Diagnostics;
using Lamina.Cli.Control;
using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>
/// A temporary union: lower layers, an upper and a work directory, mounted by running
/// `lamina mount` as its own daemon process. Disposing unmounts and removes everything.
/// </summary>
public sealed class LaminaMount : IDisposable
{
    public string Root { get; }
    public string Upper { get; }
    public string Work { get; }
    public string Merged => Path.Combine(Root, "merged");
    public string Lower(int i) => _lowers[i];
    public bool Mounted { get; private set; }
    private readonly string[] _lowers;

    public LaminaMount(int lowers = 2, Action<LaminaMount>? populate = null)
    {
        Root = Directory.CreateTempSubdirectory("lamina-mount-test-").FullName;
        Upper = Path.Combine(Root, "upper");
        Work = Path.Combine(Root, "work");
        _lowers = Enumerable.Range(0, lowers).Select(i => Path.Combine(Root, $"lower{i}")).ToArray();
        Directory.CreateDirectory(Upper);
        Directory.CreateDirectory(Work);
        Directory.CreateDirectory(Merged);
        foreach (var l in _lowers) Directory.CreateDirectory(l);
        populate?.Invoke(this);
    }

    /// <summary>A union over branches that live elsewhere (on filesystems of their own); only the mount point is made here.</summary>
    public LaminaMount(IReadOnlyList<string> lowers, string upper, string work)
    {
        Root = Directory.CreateTempSubdirectory("lamina-mount-test-").FullName;
        Upper = upper;
        Work = work;
        _lowers = [.. lowers];
        Directory.CreateDirectory(Upper);
        Directory.CreateDirectory(Work);
        Directory.CreateDirectory(Merged);
    }

    public int LowerCount => _lowers.Length;

    public string Options(string extra = "") =>
        $"lowerdir={string.Join(':', Enumerable.Range(0, LowerCount).Select(Lower))},upperdir={Upper},workdir={Work}" + (extra.Length > 0 ? "," + extra : "");

    public LaminaMount Mount(string extra = "")
    {
        var r = Cli.Run("mount", "-o", Options(extra), Merged);
        Assert.True(r.ExitCode == 0, $"lamina mount failed ({r.ExitCode}): {r.StdErr}");
        Mounted = true;
        return this;
    }

    public void Unmount()
    {
        if (!Mounted) return;
        int? pid = DaemonPid();
        var r = Cli.Run("umount", Merged);
        if (r.ExitCode != 0) Cli.Run("umount", "-l", Merged);
        Mounted = false;
        if (pid is int p) WaitForExit(p, TimeSpan.FromSeconds(10));
    }

    /// <summary>The daemon's pid, as it reports it over its control socket.</summary>
    public int? DaemonPid()
    {
        var status = ControlClient.Ask(Merged, "status");
        var line = status?.Split('\n').FirstOrDefault(l => l.StartsWith("pid: ", StringComparison.Ordinal));
        return line is null ? null : int.Parse(line[5..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Whether the process and every thread of it are gone (or only its unreaped zombie is left)
    /// within <paramref name="timeout"/>. The main thread turns zombie first: until the other
    /// threads have exited too, the descriptors (/dev/fuse among them) are still open, and a worker
    /// being killed can still take a request, which the kernel then fails with EIO.
    /// </summary>
    public static bool WaitForExit(int pid, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (!Directory.Exists($"/proc/{pid}")) return true;
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                if (stat.Contains(") Z ", StringComparison.Ordinal) && Directory.GetDirectories($"/proc/{pid}/task").Length <= 1) return true;
            }
            catch (IOException) { }              // reaped meanwhile: seen gone on the next turn
            catch (UnauthorizedAccessException) { }
            Thread.Sleep(50);
        }
        return false;
    }

    public void Dispose()
    {
        try { Unmount(); } catch (Exception) { Sys.Umount2(Merged, Sys.MNT_DETACH); }
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Runs the lamina command (the built Lamina.Cli.dll next to the tests) as a separate process.</summary>
public static class Cli
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "Lamina.Cli.dll");

    public sealed record Result(int ExitCode, string StdOut, string StdErr);

    public static Result Run(params string[] args) => RunAs(null, args);

    /// <summary>Runs lamina, optionally as another user through setpriv.</summary>
    public static Result RunAs(uint? uid, params string[] args)
    {
        var psi = new ProcessStartInfo(uid is null ? "dotnet" : "setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (uid is uint u)
        {
            foreach (var a in new[] { $"--reuid={u}", $"--regid={u}", "--clear-groups", "dotnet" }) psi.ArgumentList.Add(a);
            psi.Environment["HOME"] = "/tmp";
            psi.Environment["DOTNET_CLI_HOME"] = "/tmp";
            psi.Environment["XDG_RUNTIME_DIR"] = "";
        }
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException($"lamina {string.Join(' ', args)} did not finish"); }
        return new Result(p.ExitCode, output, err.Result);
    }

    /// <summary>Runs a shell command line and returns its output.</summary>
    public static Result Shell(string command)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return new Result(p.ExitCode, output, err.Result);
    }
}
