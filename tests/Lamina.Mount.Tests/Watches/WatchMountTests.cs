using System.Diagnostics;
using Lamina.Native;

namespace Lamina.Mount.Tests.Watches;

/// <summary>
/// Issue 7 through a real mount and real processes: `lamina watch` (over the daemon's control socket)
/// sees operations made through the union and changes made directly in branches; copy-up is invisible.
/// </summary>
public sealed class WatchMountTests
{
    private static void Sh(string command)
    {
        var r = Cli.Shell(command);
        Assert.True(r.ExitCode == 0, $"{command}: {r.StdErr}");
    }

    /// <summary>The seed scenario: watch a lower file, open it for writing (copy-up) and write: IN_MODIFY on the same wd, nothing for the copy-up.</summary>
    [MountFact]
    public void W1_copy_up_keeps_the_watch_and_raises_nothing_itself()
    {
        using var m = new LaminaMount(1, m => { Directory.CreateDirectory(Path.Combine(m.Lower(0), "d")); File.WriteAllText(Path.Combine(m.Lower(0), "d", "f"), "lower\n"); }).Mount();
        string d = Path.Combine(m.Merged, "d"), f = Path.Combine(d, "f");
        using var w = WatchProcess.Lamina("--json", f, d);
        // FUSE RELEASE (hence IN_CLOSE_*) comes after close() returns, in the background: give it time
        // before the next step, or its events legitimately come after the next step's.
        Sh($"echo more >> {f}; sleep 0.5");
        Assert.True(File.Exists(Path.Combine(m.Upper, "d", "f")), "copied up");
        Sh($"echo again >> {f}; sleep 0.5");
        Sh($": > {d}/zz-marker");
        var events = w.Until("zz-marker").Select(WatchProcess.Parse).ToList();
        var onFile = events.Where(e => e.Name is null && e.Path == f).Select(e => (e.Wd, e.Events)).ToList();
        Assert.Equal([(1, "OPEN"), (1, "MODIFY"), (1, "CLOSE_WRITE,CLOSE"), (1, "OPEN"), (1, "MODIFY"), (1, "CLOSE_WRITE,CLOSE")], onFile);
        Assert.DoesNotContain(events, e => e.Events.Contains("CREATE") || e.Events.Contains("MOVED") || e.Events.Contains("DELETE"));
        Assert.Equal(["OPEN", "MODIFY", "CLOSE_WRITE,CLOSE", "OPEN", "MODIFY", "CLOSE_WRITE,CLOSE"],
            events.Where(e => e.Name == "f").Select(e => e.Events).ToList());
    }

    /// <summary>
    /// A read-only open of a lower file is served by the daemon, its large READs spliced from the
    /// branch file: they raise IN_ACCESS as copied reads do (once the splice has carried bytes).
    /// </summary>
    [MountFact]
    public void Spliced_reads_of_a_lower_file_raise_access()
    {
        using var m = new LaminaMount(1, m => File.WriteAllBytes(Path.Combine(m.Lower(0), "big"), new byte[1 << 20])).Mount();
        string f = Path.Combine(m.Merged, "big");
        using var w = WatchProcess.Lamina("--json", f, m.Merged);
        Sh($"cat {f} > /dev/null; sleep 0.5");
        Sh($": > {m.Merged}/zz-marker");
        var onFile = w.Until("zz-marker").Select(WatchProcess.Parse).Where(e => e.Name is null && e.Path == f).Select(e => e.Events).ToList();
        // Consecutive ACCESS events are one if the watcher had not read the first yet, several otherwise.
        var collapsed = onFile.Where((e, i) => i == 0 || e != onFile[i - 1]).ToList();
        Assert.Equal(["OPEN", "ACCESS", "CLOSE_NOWRITE,CLOSE"], collapsed);
        var served = System.Text.RegularExpressions.Regex.Match(Cli.Run("status", m.Merged).StdOut, @"reads served: (\d+) spliced");
        Assert.True(served.Success && long.Parse(served.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, "no READ was spliced: " + served.Value);
    }

    /// <summary>
    /// The union root, given alone or last, and a directory whose name holds a space and a tab can be
    /// watched: `lamina watch` sends the daemon its paths percent-escaped, one field each.
    /// </summary>
    [MountFact]
    public void The_root_and_a_name_with_blanks_can_be_watched()
    {
        const string odd = "a b\tc";
        using var m = new LaminaMount(1, m => Directory.CreateDirectory(Path.Combine(m.Lower(0), odd))).Mount();
        using (var w = WatchProcess.Lamina("--json", m.Merged))
        {
            File.WriteAllText(Path.Combine(m.Merged, "zz-root"), "");
            Assert.Equal("CREATE", WatchProcess.Parse(w.Line("zz-root")).Events);
        }
        using (var w = WatchProcess.Lamina("--json", Path.Combine(m.Merged, odd)))
        {
            File.WriteAllText(Path.Combine(m.Merged, odd, "zz-odd"), "");
            var e = WatchProcess.Parse(w.Line("zz-odd"));
            Assert.Equal(("CREATE", Path.Combine(m.Merged, odd) + "/"), (e.Events, e.Path));
        }
    }

    /// <summary>W2, union directories: a process changes the lower and upper directories directly; exactly the merged view's changes come out.</summary>
    [MountFact]
    public void W2_direct_branch_changes_raise_what_the_merged_view_implies()
    {
        using var m = new LaminaMount(1, m =>
        {
            foreach (var (dir, name, text) in new[] { (m.Lower(0), "shadowed", "lower"), (m.Lower(0), "lowonly", "lower"), (m.Upper, "shadowed", "upper"), (m.Upper, "uponly", "upper") })
            {
                Directory.CreateDirectory(Path.Combine(dir, "d"));
                File.WriteAllText(Path.Combine(dir, "d", name), text);
            }
        }).Mount();
        string d = Path.Combine(m.Merged, "d"), lo = Path.Combine(m.Lower(0), "d"), up = Path.Combine(m.Upper, "d");
        using var w = WatchProcess.Lamina("--format", "%e %f", d);
        Sh($"""
            set -e
            echo more >> {lo}/shadowed; sleep 0.1
            echo more >> {lo}/lowonly; sleep 0.1
            : > {lo}/new; sleep 0.1
            echo shadowing > {m.Upper}/staged; mv {m.Upper}/staged {up}/new; sleep 0.1
            rm {up}/shadowed; sleep 0.1
            mv {lo}/lowonly {lo}/moved; sleep 0.1
            rm {up}/uponly; sleep 0.1
            mkdir {up}/sub; sleep 0.1
            mknod {up}/moved c 0 0; sleep 0.1
            : > {lo}/zz-marker
            """);
        Assert.Equal(
            ["MODIFY lowonly", "CLOSE_WRITE,CLOSE lowonly", "CREATE new", "CLOSE_WRITE,CLOSE new", "MODIFY new", "MODIFY shadowed",
             "MOVED_FROM lowonly", "MOVED_TO moved", "DELETE uponly", "CREATE,ISDIR sub", "DELETE moved"],
            w.Until("zz-marker"));
        // The kernel's caches were dropped: the mount shows the new state at once (timeout is 1 s by default; no sleep here).
        Assert.Equal("lowermore\n", File.ReadAllText(Path.Combine(d, "shadowed")));
        Assert.Equal(["new", "shadowed", "sub", "zz-marker"], Directory.GetFileSystemEntries(d).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    /// <summary>Kernel coherence with long cache timeouts: after a direct change `cat` and `ls` through the mount see it as soon as the event is out.</summary>
    [MountFact]
    public void W2_direct_changes_invalidate_the_kernel_caches()
    {
        using var m = new LaminaMount(1, m => { Directory.CreateDirectory(Path.Combine(m.Lower(0), "d")); File.WriteAllText(Path.Combine(m.Lower(0), "d", "f"), "one\n"); }).Mount("timeout=600");
        string d = Path.Combine(m.Merged, "d"), f = Path.Combine(d, "f");
        Assert.Equal("one\n", File.ReadAllText(f));
        Assert.Equal(["f"], Directory.GetFileSystemEntries(d).Select(Path.GetFileName));
        using var w = WatchProcess.Lamina("--format", "%e %f", d);
        File.WriteAllText(Path.Combine(m.Lower(0), "d", "f"), "two, longer\n");
        File.WriteAllText(Path.Combine(m.Lower(0), "d", "g"), "");
        Assert.Equal(["MODIFY f", "CLOSE_WRITE,CLOSE f"], w.Until("CREATE g").Where(l => l.EndsWith(" f", StringComparison.Ordinal)).Distinct());
        TrackerCaughtUp(m);
        Assert.Equal("two, longer\n", File.ReadAllText(f));
        Assert.Equal(["f", "g"], Directory.GetFileSystemEntries(d).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        File.Delete(Path.Combine(m.Lower(0), "d", "g"));
        w.Until("DELETE g");
        TrackerCaughtUp(m);
        Assert.False(File.Exists(Path.Combine(d, "g")));
    }

    /// <summary>
    /// What plain inotifywait on the mount receives (facts for docs/watches.md): every operation made
    /// through the mount, from the kernel's own VFS hooks; of the direct branch changes, only the
    /// IN_DELETE_SELF that FUSE_NOTIFY_DELETE produces on a watch of the deleted file itself, never an
    /// IN_DELETE on its directory, and nothing for FUSE_NOTIFY_INVAL_INODE/INVAL_ENTRY.
    /// </summary>
    [MountFact]
    public void Inotifywait_on_the_mount_sees_union_operations_but_only_delete_self_of_direct_changes()
    {
        if (!File.Exists("/usr/bin/inotifywait") && Sys.GetEUid() == 0) Cli.Shell("apt-get install -y inotify-tools >/dev/null 2>&1");
        Assert.True(File.Exists("/usr/bin/inotifywait"), "inotifywait (inotify-tools) could not be installed");
        using var m = new LaminaMount(1, m =>
        {
            Directory.CreateDirectory(Path.Combine(m.Upper, "d"));
            File.WriteAllText(Path.Combine(m.Upper, "d", "gone"), "x");
            File.WriteAllText(Path.Combine(m.Upper, "d", "changed"), "x");
        }).Mount();
        string d = Path.Combine(m.Merged, "d");
        using var ours = WatchProcess.Lamina("--format", "%e %f", d);
        using var kernel = new WatchProcess("inotifywait", "-m", "--format", "%e %f", d, Path.Combine(d, "gone"));
        Sh($"echo through >> {d}/changed; sleep 0.5");
        Sh($"rm {m.Upper}/d/gone; echo direct >> {m.Upper}/d/changed; : > {m.Upper}/d/direct-new");
        var l = ours.Until("CREATE direct-new");
        Assert.Equal(["OPEN changed", "MODIFY changed", "CLOSE_WRITE,CLOSE changed", "DELETE gone", "MODIFY changed", "CLOSE_WRITE,CLOSE changed"], l.Where(x => !x.Contains("ISDIR")));
        TrackerCaughtUp(m);
        Sh($": > {d}/zz-marker");
        var k = kernel.Until("CREATE zz-marker");
        Assert.Equal(["OPEN changed", "MODIFY changed", "CLOSE_WRITE,CLOSE changed", "DELETE_SELF "], k.Where(x => !x.Contains("ISDIR")).Where(x => x != "IGNORED "));
    }

    /// <summary>WD1 over the socket, and W2b: checkpoint, end the watcher, restore, attach: the same wds and the pending events.</summary>
    [MountFact]
    public void W2b_checkpoint_and_restore_keep_every_wd()
    {
        using var m = new LaminaMount(1, m => Directory.CreateDirectory(Path.Combine(m.Lower(0), "a"))).Mount();
        string a = Path.Combine(m.Merged, "a");
        Directory.CreateDirectory(Path.Combine(m.Merged, "b"));
        string file = Path.Combine(m.Root, "watches.ckpt");
        using (var w = WatchProcess.Lamina("--json", a, Path.Combine(m.Merged, "b")))
        {
            Sh($": > {a}/first");
            Assert.Equal(1, WatchProcess.Parse(w.Line("first")).Wd);
            var r = Cli.Run("checkpoint", m.Merged, file);
            Assert.True(r.ExitCode == 0, r.StdErr + r.StdOut);
            Assert.Contains("1 instances, 2 watches", r.StdOut);
        }
        var text = File.ReadAllText(file);
        Assert.Contains("watch 1 ", text);
        Assert.Contains("watch 2 ", text);

        var restored = Cli.Run("restore", m.Merged, file);
        Assert.True(restored.ExitCode == 0, restored.StdErr + restored.StdOut);
        var id = restored.StdOut.Split('\n').First(x => x.StartsWith("restored", StringComparison.Ordinal)).Split(' ')[^3].TrimEnd(':');
        using var again = WatchProcess.Lamina("--json", "--attach", id, m.Merged);
        Sh($": > {m.Merged}/b/second; : > {a}/third");
        var second = WatchProcess.Parse(again.Line("second"));
        var third = WatchProcess.Parse(again.Line("third"));
        Assert.Equal((2, "CREATE"), (second.Wd, second.Events));
        Assert.Equal((1, "CREATE"), (third.Wd, third.Events));
        Assert.Equal(a + "/", third.Path);
    }

    /// <summary>
    /// The kernel hears of direct changes from the branch tracker, a thread of its own, not from the
    /// watcher that reports union events: `lamina status` returns once the tracker has handled every
    /// change made so far, so its notifications to the kernel are out.
    /// </summary>
    private static void TrackerCaughtUp(LaminaMount m) => Assert.Contains("directories tracked", Cli.Run("status", m.Merged).StdOut);
}
