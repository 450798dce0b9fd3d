using System.Diagnostics;

namespace Lamina.Mount.Tests.Watches;

/// <summary>
/// W2b across a daemon restart: stop (SIGTERM) or kill (SIGKILL) the mount daemon, mount the same
/// branches at the same mount point again: the running `lamina watch` reconnects by itself, keeps its
/// wds, and hears about what changed in the branches while no daemon ran.
/// </summary>
public sealed class WatchRestartTests
{
    private static void Sh(string command)
    {
        var r = Cli.Shell(command);
        Assert.True(r.ExitCode == 0, $"{command}: {r.StdErr}");
    }

    private static LaminaMount Layers() => new(1, m =>
    {
        Directory.CreateDirectory(Path.Combine(m.Lower(0), "a", "sub"));
        File.WriteAllText(Path.Combine(m.Lower(0), "a", "kept"), "one\n");
        Directory.CreateDirectory(Path.Combine(m.Upper, "b"));
    });

    private static void Stop(LaminaMount m, string signal)
    {
        int pid = m.DaemonPid() ?? throw new InvalidOperationException("no daemon pid");
        Sh($"kill -{signal} {pid}");
        Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(15)), "the daemon ended");
        if (signal == "KILL") Assert.Equal(0, Cli.Run("umount", m.Merged).ExitCode); // clears the dead mount
    }

    [MountFact]
    public void W2b_a_stopped_daemon_comes_back_with_every_wd_and_the_changes_made_meanwhile()
    {
        using var m = Layers().Mount();
        string a = Path.Combine(m.Merged, "a"), b = Path.Combine(m.Merged, "b");
        using var w = WatchProcess.Lamina("--json", "-r", a, b);
        Sh($": > {b}/first");
        Assert.Equal((2, "CREATE"), Event(w.Line("\"first\"")));

        Stop(m, "TERM");
        // Direct changes while no daemon runs, deep in the recursive watch too.
        Sh($"echo two >> {m.Lower(0)}/a/kept; : > {m.Lower(0)}/a/sub/while-down; rm {m.Upper}/b/first");
        m.Mount();

        // The restored differences are queued before the client is let in, one directory after
        // another: all of them come before the events of a change made after the restart.
        var restored = w.Until("while-down", TimeSpan.FromSeconds(60));
        Sh($": > {b}/after; : > {m.Lower(0)}/a/sub/direct");
        restored.AddRange(w.Until("\"after\"", out string after));
        var events = restored.Select(WatchProcess.Parse).ToList();
        Assert.DoesNotContain(events, e => e.Events.Contains("Q_OVERFLOW") || e.Events.Contains("IGNORED") || e.Events.Contains("UNMOUNT"));
        Assert.Contains(events, e => e is { Wd: 1, Name: "kept", Events: "MODIFY" });
        Assert.Contains(events, e => e is { Wd: 2, Name: "first", Events: "DELETE" });
        // The same wds go on: through the union, and directly in a branch.
        Assert.Equal((2, "CREATE"), Event(after));
        Assert.Equal((1, "CREATE"), Event(w.Line("\"direct\"")));
    }

    [MountFact]
    public void W2b_a_killed_daemon_comes_back_with_every_wd_and_says_events_may_be_lost()
    {
        using var m = Layers().Mount();
        string a = Path.Combine(m.Merged, "a"), b = Path.Combine(m.Merged, "b");
        using var w = WatchProcess.Lamina("--json", a, b);
        Sh($": > {a}/first");
        Assert.Equal((1, "CREATE"), Event(w.Line("\"first\"")));
        Thread.Sleep(1500); // the table is saved within moments of a change

        Stop(m, "KILL");
        Sh($": > {m.Lower(0)}/a/while-down");
        var restart = Stopwatch.StartNew();
        m.Mount();

        var restored = w.Until("while-down", TimeSpan.FromSeconds(60)).Select(WatchProcess.Parse).ToList();
        // (Events of "first" after its CREATE came before the kill.)
        Assert.Equal(["Q_OVERFLOW"], restored.Where(e => e.Name != "first").Select(e => e.Events));
        Sh($": > {b}/after");
        Assert.Equal((2, "CREATE"), Event(w.Line("\"after\"")));
        Assert.True(restart.Elapsed < TimeSpan.FromSeconds(30), $"reconnected in {restart.Elapsed}");
    }

    [MountFact]
    public void W2b_an_unmount_ends_every_watch_at_once_and_keeps_nothing_for_a_next_daemon()
    {
        using var m = Layers().Mount();
        string a = Path.Combine(m.Merged, "a"), b = Path.Combine(m.Merged, "b");
        string state = Lamina.Cli.Control.ControlPaths.WatchStateFor(m.Merged);
        using var w = WatchProcess.Lamina("--json", a, b);
        Sh($": > {a}/first");
        Assert.Equal((1, "CREATE"), Event(w.Line("\"first\"")));
        var saved = Stopwatch.StartNew();
        while (!File.Exists(state) && saved.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(50);
        Assert.True(File.Exists(state), $"the watch table was never saved to {state}");

        var unmount = Stopwatch.StartNew();
        Assert.Equal(0, Cli.Run("umount", m.Merged).ExitCode);
        // As at the kernel's unmount: IN_UNMOUNT then IN_IGNORED for each watch, and the client
        // ends at once (not after `--reconnect`, 60 s by default, waiting for a next daemon).
        var last = w.Until("\"IGNORED\"", TimeSpan.FromSeconds(20)).Select(WatchProcess.Parse).ToList();
        Assert.Contains(last, e => e.Events == "UNMOUNT");
        Assert.True(w.WaitForExit(TimeSpan.FromSeconds(20)), "lamina watch did not end after the unmount");
        Assert.True(unmount.Elapsed < TimeSpan.FromSeconds(30), $"ended {unmount.Elapsed} after the unmount");
        Assert.False(File.Exists(state), "the watch table was kept for a next daemon after an unmount");

        // A new mount of the same branches starts with no watches.
        m.Mount();
        Assert.False(File.Exists(state));
    }

    private static (int Wd, string Events) Event(string json)
    {
        var e = WatchProcess.Parse(json);
        return (e.Wd, e.Events);
    }
}
