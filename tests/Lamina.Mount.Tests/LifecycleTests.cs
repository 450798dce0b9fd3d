using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>How `lamina mount` starts, fails, reports and ends.</summary>
public class LifecycleTests
{
    private static bool IsMounted(string path) =>
        File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == path);

    [MountFact]
    public void Wrong_options_give_one_clear_line_and_mount_nothing()
    {
        using var m = new LaminaMount(1);
        var cases = new (string[] Args, string Expected)[]
        {
            (["mount", "-o", m.Options("bogus_option"), m.Merged], "bogus_option"),
            (["mount", "-o", $"lowerdir={m.Root}/missing,upperdir={m.Upper},workdir={m.Work}", m.Merged], "missing"),
            (["mount", "-o", m.Options(), Path.Combine(m.Root, "no-such-dir")], "no-such-dir"),
            (["mount", "-o", m.Options("passthrough=sometimes"), m.Merged], "passthrough"),
            (["mount", m.Merged], "no branches"),
        };
        foreach (var (args, expected) in cases)
        {
            var r = Cli.Run(args);
            Assert.NotEqual(0, r.ExitCode);
            var lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"expected one line for {string.Join(' ', args)}, got: {r.StdErr}");
            Assert.Contains(expected, lines[0]);
            Assert.False(IsMounted(m.Merged));
        }
    }

    [MountFact]
    public void Accepts_the_argument_forms_of_mount_fuse3_and_containers_storage()
    {
        using var m = new LaminaMount(1, m => File.WriteAllText(Path.Combine(m.Lower(0), "f"), "x"));
        // mount.fuse3 runs: TYPE SOURCE MOUNTPOINT -o OPTS, with generic options added (dev, suid, ...).
        var r = Cli.Run("mount", "my-source", m.Merged, "-o", m.Options("rw,dev,suid,noauto,_netdev,x-systemd.automount"));
        Assert.True(r.ExitCode == 0, r.StdErr);
        var line = File.ReadLines("/proc/self/mountinfo").Single(l => l.Split(' ')[4] == m.Merged);
        Assert.Contains(" - fuse.lamina my-source ", line);
        Assert.Equal("x", File.ReadAllText(Path.Combine(m.Merged, "f")));
        Assert.Equal(0, Cli.Run("umount", m.Merged).ExitCode);
        // containers/storage runs: mount_program -o OPTS TARGET, with a quoted SELinux context that holds a comma.
        r = Cli.Run("mount", "-o", m.Options("context=\"system_u:object_r:container_file_t:s0:c1,c2\""), m.Merged);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.True(IsMounted(m.Merged));
        Assert.Equal(0, Cli.Shell($"fusermount3 -u {m.Merged} || umount {m.Merged}").ExitCode);
        Assert.False(IsMounted(m.Merged));
        // podman 4.3's containers/storage leaves an empty option before volatile, and adds ID mapping with leading colons.
        r = Cli.Run("mount", "-o", m.Options(",volatile,uidmapping=:0:0:65536,gidmapping=:0:0:65536"), m.Merged);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Equal("x", File.ReadAllText(Path.Combine(m.Merged, "f")));
        Assert.Equal(0, Cli.Run("umount", m.Merged).ExitCode);
        // `podman info` asks the mount program for its version.
        r = Cli.Run("mount", "--version");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.StartsWith("lamina ", r.StdOut);
    }

    [MountFact]
    public void Kill_9_of_the_daemon_leaves_a_dead_mount_that_lamina_umount_clears()
    {
        using var m = new LaminaMount(1, m => File.WriteAllText(Path.Combine(m.Lower(0), "f"), "x")).Mount();
        int pid = m.DaemonPid() ?? throw new InvalidOperationException("no daemon pid");
        Assert.Equal(0, Sys.Kill(pid, Sys.SIGKILL));
        Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(10)));
        // A request caught in flight while the kernel aborts the connection gets ECONNABORTED;
        // once the abort is through, every access to the dead mount is ENOTCONN.
        Errno seen = Errno.None;
        for (int i = 0; i < 50; i++)
        {
            Assert.NotEqual(0, Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(m.Merged, "f"), out _));
            seen = Sys.LastErrno;
            if (seen != Errno.ECONNABORTED) break;
            Thread.Sleep(100);
        }
        Assert.Equal(Errno.ENOTCONN, seen);
        var r = Cli.Run("umount", m.Merged);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.False(IsMounted(m.Merged));
        Assert.True(File.Exists(Path.Combine(m.Lower(0), "f")));
    }

    [MountFact]
    public void SIGTERM_unmounts_cleanly_and_the_daemon_exits()
    {
        using var m = new LaminaMount(1).Mount();
        int pid = m.DaemonPid() ?? throw new InvalidOperationException("no daemon pid");
        File.WriteAllText(Path.Combine(m.Merged, "written-before-term"), "data");
        Assert.Equal(0, Sys.Kill(pid, Sys.SIGTERM));
        Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(15)), "the daemon did not exit after SIGTERM");
        Assert.False(IsMounted(m.Merged));
        Assert.Equal("data", File.ReadAllText(Path.Combine(m.Upper, "written-before-term")));
    }

    [MountFact]
    public void Status_and_diff_report_what_the_daemon_knows()
    {
        using var m = new LaminaMount(1, m =>
        {
            File.WriteAllText(Path.Combine(m.Lower(0), "changed"), "1");
            File.WriteAllText(Path.Combine(m.Lower(0), "deleted"), "1");
        }).Mount();
        File.AppendAllText(Path.Combine(m.Merged, "changed"), "2");
        File.Delete(Path.Combine(m.Merged, "deleted"));
        File.WriteAllText(Path.Combine(m.Merged, "added"), "3");
        var diff = Cli.Run("diff", m.Merged);
        Assert.Equal(0, diff.ExitCode);
        Assert.Equal(["A /added", "C /changed", "D /deleted"], diff.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        var status = Cli.Run("status", m.Merged);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains("copy-ups: 1", status.StdOut);
        Assert.Contains(m.Upper + " (ReadWrite)", status.StdOut);
        Assert.Contains(m.Lower(0) + " (ReadOnly)", status.StdOut);
    }

    [MountFact]
    public void An_ordinary_user_can_mount_branches_it_owns()
    {
        if (!File.Exists("/usr/bin/fusermount3") && !File.Exists("/bin/fusermount3"))
            Assert.Fail("cannot run: fusermount3 is missing (install the fuse3 package; ./test does this as root)");
        const uint nobody = 65534;
        using var m = new LaminaMount(1, m => File.WriteAllText(Path.Combine(m.Lower(0), "mine"), "lower\n"));
        foreach (var d in new[] { m.Root, m.Lower(0), m.Upper, m.Work, m.Merged, Path.Combine(m.Lower(0), "mine") })
            Assert.Equal(0, Sys.FChownAt(Sys.AT_FDCWD, d, nobody, nobody, 0));
        var r = Cli.RunAs(nobody, "mount", "-o", m.Options("userxattr"), m.Merged);
        Assert.True(r.ExitCode == 0, $"unprivileged mount failed: {r.StdErr}");
        try
        {
            Assert.True(IsMounted(m.Merged));
            var w = Cli.Shell($"setpriv --reuid={nobody} --regid={nobody} --clear-groups sh -c 'echo more >> {m.Merged}/mine && rm {m.Merged}/mine && echo new > {m.Merged}/created && stat -c %u {m.Merged}/created'");
            Assert.True(w.ExitCode == 0, w.StdErr);
            Assert.Equal(nobody.ToString(System.Globalization.CultureInfo.InvariantCulture), w.StdOut.Trim());
            Assert.True(File.Exists(Path.Combine(m.Lower(0), "mine")));
            Assert.Equal(0, Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(m.Upper, "created"), out var st));
            Assert.Equal(nobody, st.Uid);
        }
        finally
        {
            var u = Cli.RunAs(nobody, "umount", m.Merged);
            Assert.True(u.ExitCode == 0 || !IsMounted(m.Merged), u.StdErr);
        }
    }
}
