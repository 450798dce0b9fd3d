using Lamina.Native;

namespace Lamina.Mount.Tests.Locks;

/// <summary>
/// Locks that belong to the union (issue 6), one or more tests per design row L1–L8, each with
/// real processes (lockdrv.py) locking through a real mount.
/// </summary>
public class UnionLockTests
{
    private static LaminaMount Layers() => new(2, m =>
    {
        File.WriteAllText(Path.Combine(m.Lower(0), "data.txt"), "lower data, long enough to lock ranges of\n");
        File.WriteAllText(Path.Combine(m.Lower(1), "deep.txt"), "from the bottom layer\n");
        File.WriteAllText(Path.Combine(m.Upper, "upper-only.txt"), "upper\n");
        File.WriteAllText(Path.Combine(m.Lower(0), "merged.txt"), "lower version\n");
        File.WriteAllText(Path.Combine(m.Upper, "merged.txt"), "upper version\n");
    });

    private static bool Eventually(Func<bool> condition, int timeoutMs = 5000)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > timeoutMs) return false;
            Thread.Sleep(20);
        }
        return true;
    }

    [MountFact]
    public void L1_L2_seed_a_read_lock_taken_on_the_lower_file_blocks_the_writer_that_copied_it_up_and_getlk_names_the_holder()
    {
        using var m = Layers().Mount();
        string f = Path.Combine(m.Merged, "data.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {f} r"));
        Assert.Equal("ok", a.Do("lk f setlk r 0 100"));
        Assert.False(File.Exists(Path.Combine(m.Upper, "data.txt")));

        Assert.Equal("ok", b.Do($"open f {f} rw"));
        Assert.True(File.Exists(Path.Combine(m.Upper, "data.txt")), "opening for writing copies the file up");
        Assert.Equal("err EAGAIN", b.Do("lk f setlk w 0 100"));
        Assert.Equal("err EAGAIN", b.Do("lk f setlk w 99 1"));
        Assert.Equal($"lk r 0 100 {a.Pid}", b.Do("lk f getlk w 50 10"));
        Assert.Equal("ok", b.Do("lk f setlk w 100 10")); // just past A's range
        Assert.Equal("err EAGAIN", a.Do("lk f setlk r 100 1"));
        Assert.Equal($"lk w 100 10 {b.Pid}", a.Do("lk f getlk r 0 0"));

        // The lock moved to the upper copy with the node; nothing is left on the lower file.
        Assert.Equal(Sys.F_RDLCK, BranchLocks.Holder(Path.Combine(m.Upper, "data.txt")));
        Assert.Equal(Sys.F_UNLCK, BranchLocks.Holder(Path.Combine(m.Lower(0), "data.txt")));

        // close(2) of A's descriptor drops A's POSIX locks (FLUSH with A's owner).
        Assert.Equal("ok", a.Do("close f"));
        Assert.Equal("ok", b.Do("lk f setlk w 0 100"));
    }

    [MountFact]
    public void L2_getlk_names_the_holder_by_its_pid_in_the_asking_process_namespace()
    {
        using var m = Layers().Mount();
        string f = Path.Combine(m.Merged, "upper-only.txt");
        using var inner = new LockDriver(inNewPidNamespace: true);
        using var outer = new LockDriver();
        Assert.Equal("1", inner.Do("pid"));
        Assert.Equal("ok", inner.Do($"open f {f} rw"));
        Assert.Equal("ok", outer.Do($"open f {f} rw"));
        Assert.Equal("ok", inner.Do("lk f setlk w 0 10"));
        Assert.Equal("ok", outer.Do("lk f setlk w 10 10"));
        Assert.Equal($"lk w 0 10 {inner.Pid}", outer.Do("lk f getlk w 0 0")); // seen from outside: its real pid
        Assert.Equal("lk w 10 10 0", inner.Do("lk f getlk w 5 0")); // the outer holder does not exist in that namespace
        Assert.Equal("ok", outer.Do("lk f setlk u 0 0"));
        Assert.Equal("lk u", inner.Do("lk f getlk w 0 0")); // its own lock never conflicts with it
    }

    [MountFact]
    public void L3_locking_an_upper_only_a_lower_only_and_a_merged_file_behaves_identically()
    {
        using var m = Layers().Mount();
        var answers = new List<string[]>();
        foreach (var name in new[] { "upper-only.txt", "deep.txt", "merged.txt" })
        {
            string f = Path.Combine(m.Merged, name);
            using var a = new LockDriver();
            using var b = new LockDriver();
            answers.Add(
            [
                a.Do($"open f {f} r"), a.Do("lk f setlk r 0 10"), a.Do("flock f sh nb"),
                b.Do($"open f {f} rw"), b.Do("lk f setlk w 5 10"), b.Do("lk f getlk w 0 0").Replace($" {a.Pid}", " A"),
                b.Do("lk f ofd_setlk w 0 1"), b.Do("lk f ofd_setlk w 10 1"), b.Do("flock f ex nb"), b.Do("flock f sh nb"),
                a.Do("lk f setlk u 0 0"), b.Do("lk f setlk w 5 5"), a.Do("lk f getlk r 0 10").Replace($" {b.Pid}", " B"),
            ]);
        }
        string[] expected =
        [
            "ok", "ok", "ok",
            "ok", "err EAGAIN", "lk r 0 10 A",
            "err EAGAIN", "ok", "err EAGAIN", "ok",
            "ok", "ok", "lk w 5 5 B",
        ];
        Assert.All(answers, a => Assert.Equal(expected, a));
    }

    [MountFact]
    public void L4_a_process_locking_the_branch_file_directly_conflicts_with_locks_through_the_union_both_ways()
    {
        using var m = Layers().Mount();
        string union = Path.Combine(m.Merged, "data.txt"), branch = Path.Combine(m.Lower(0), "data.txt");
        using var direct = new LockDriver();
        using var a = new LockDriver();
        Assert.Equal("ok", direct.Do($"open f {branch} rw"));
        Assert.Equal("ok", a.Do($"open f {union} r"));

        Assert.Equal("ok", direct.Do("lk f setlk w 0 10"));
        Assert.Equal("err EAGAIN", a.Do("lk f setlk r 5 1"));
        Assert.Equal($"lk w 0 10 {direct.Pid}", a.Do("lk f getlk r 0 0"));
        Assert.Equal("ok", a.Do("lk f setlk r 10 5"));
        // A blocking request through the union waits for the direct holder.
        var waiting = a.Start("lk f setlkw r 0 10");
        Assert.False(waiting.Wait(300));
        Assert.Equal("ok", direct.Do("lk f setlk u 0 0"));
        Assert.True(waiting.Wait(5000));
        Assert.Equal("ok", waiting.Result);

        // The other way round: the union's lock is on the branch file (as an OFD lock of the daemon).
        Assert.Equal("err EAGAIN", direct.Do("lk f setlk w 3 1"));
        Assert.Equal("lk r 0 15 -1", direct.Do("lk f getlk w 0 0"));
        var directWaits = direct.Start("lk f setlkw w 0 0");
        Assert.False(directWaits.Wait(300));
        Assert.Equal("ok", a.Do("lk f setlk u 0 0"));
        Assert.True(directWaits.Wait(5000));
        Assert.Equal("ok", directWaits.Result);
    }

    [MountFact]
    public void L4_with_locks_local_the_branch_file_knows_nothing_of_union_locks()
    {
        using var m = Layers().Mount("locks=local");
        using var direct = new LockDriver();
        using var a = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {Path.Combine(m.Merged, "data.txt")} r"));
        Assert.Equal("ok", a.Do("lk f setlk r 0 0"));
        Assert.Equal("ok", direct.Do($"open f {Path.Combine(m.Lower(0), "data.txt")} rw"));
        Assert.Equal("ok", direct.Do("lk f setlk w 0 0"));
    }

    [MountFact]
    public void L5_a_lease_is_broken_by_an_open_for_writing_and_the_copy_up_waits_for_the_holder() => LeaseBroken("passthrough=upper", oneInode: true);

    /// <summary>
    /// The default mode passes the lease holder's read-only descriptor through to the lower file: the
    /// writer's open still breaks the lease first and waits, but is then served on a new kernel inode
    /// (see UnionFuse.Aliases.cs), so a lease taken later on the old descriptor no longer sees it.
    /// </summary>
    [MountFact]
    public void L5_default_mode_a_lease_is_broken_by_an_open_for_writing_and_the_copy_up_waits_for_the_holder() => LeaseBroken("", oneInode: false);

    private static void LeaseBroken(string options, bool oneInode)
    {
        using var m = Layers().Mount(options);
        string f = Path.Combine(m.Merged, "data.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {f} r"));
        Assert.Equal("ok", a.Do("lease f r"));
        Assert.Equal("lease r", a.Do("getlease f"));
        var open = b.Start($"open w {f} rw");
        Assert.False(open.Wait(400), "the conflicting open did not wait for the lease holder");
        Assert.False(File.Exists(Path.Combine(m.Upper, "data.txt")), "copy-up ran before the lease was broken");
        Assert.Equal("sigio 1", a.Do("signals"));
        Assert.Equal("lease u", a.Do("getlease f")); // being broken
        Assert.Equal("ok", a.Do("lease f u"));
        Assert.True(open.Wait(5000));
        Assert.Equal("ok", open.Result);
        Assert.True(File.Exists(Path.Combine(m.Upper, "data.txt")));
        // A write lease cannot be had while another descriptor is open, as on any file; in the default mode the
        // writer's descriptor is on the new inode, which the old descriptor's lease does not see.
        Assert.Equal(oneInode ? "err EAGAIN" : "ok", a.Do("lease f w"));
    }

    [MountFact]
    public void L6_two_mounts_over_one_lower_layer_see_each_others_locks_until_one_copies_the_file_up()
    {
        using var m1 = Layers().Mount();
        using var m2 = new LaminaMount(0);
        var r = Cli.Run("mount", "-o", $"lowerdir={m1.Lower(0)}:{m1.Lower(1)},upperdir={m2.Upper},workdir={m2.Work}", m2.Merged);
        Assert.True(r.ExitCode == 0, r.StdErr);
        try
        {
            using var a = new LockDriver();
            using var b = new LockDriver();
            Assert.Equal("ok", a.Do($"open f {Path.Combine(m1.Merged, "data.txt")} r"));
            Assert.Equal("ok", b.Do($"open f {Path.Combine(m2.Merged, "data.txt")} r"));
            Assert.Equal("ok", a.Do("lk f setlk r 0 0"));
            Assert.Equal("ok", a.Do("flock f ex nb"));
            Assert.Equal("err EAGAIN", b.Do("flock f sh nb"));
            // The holder is another daemon's OFD lock: its pid cannot be named (0 through FUSE).
            Assert.Equal("lk r 0 0 0", b.Do("lk f getlk w 0 0"));
            Assert.Equal("ok", b.Do("lk f setlk r 0 0")); // readers share across mounts too
            Assert.Equal("ok", b.Do("lk f setlk u 0 0"));
            Assert.Equal("ok", a.Do("flock f un"));
            Assert.Equal("ok", b.Do("flock f ex nb"));
            Assert.Equal("err EAGAIN", a.Do("flock f sh nb"));
            Assert.Equal("ok", b.Do("flock f un"));

            // m2 copies the file up: from now on the two mounts hold different files.
            Assert.Equal("ok", b.Do($"open w {Path.Combine(m2.Merged, "data.txt")} rw"));
            Assert.True(File.Exists(Path.Combine(m2.Upper, "data.txt")));
            Assert.Equal("ok", b.Do("lk w setlk w 0 0"));
            Assert.Equal("ok", b.Do("flock f ex nb"));
            Assert.Equal("lk u", a.Do("lk f getlk w 0 0"));
        }
        finally
        {
            if (Cli.Run("umount", m2.Merged).ExitCode != 0) Cli.Run("umount", "-l", m2.Merged);
        }
    }

    [MountFact]
    public void L7_release_locks_go_when_the_owner_is_killed_and_nothing_stays_on_the_branch_file()
    {
        using var m = Layers().Mount();
        string f = Path.Combine(m.Merged, "upper-only.txt"), branch = Path.Combine(m.Upper, "upper-only.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {f} rw"));
        Assert.Equal("ok", a.Do("lk f setlk w 0 10"));
        Assert.Equal("ok", a.Do($"open g {f} rw"));
        Assert.Equal("ok", a.Do("lk g ofd_setlk w 20 10"));
        Assert.Equal("ok", a.Do("flock f ex nb"));
        Assert.Equal(Sys.F_WRLCK, BranchLocks.Holder(branch));
        Assert.Equal("ok", b.Do($"open f {f} rw"));
        Assert.Equal("err EAGAIN", b.Do("lk f setlk w 0 0"));
        Assert.Equal("err EAGAIN", b.Do("flock f ex nb"));

        a.Kill();
        // FLUSH is synchronous with the dying process's close; RELEASE (which ends its OFD and flock
        // locks) is sent in the background by the kernel, one per open file and in no set order
        // (g's may be served before f's), so allow each a moment to arrive.
        Assert.True(Eventually(() => b.Do("lk f setlk w 0 0") == "ok"), "A's POSIX or OFD locks outlived it");
        Assert.True(Eventually(() => b.Do("flock f ex nb") == "ok"), "A's flock outlived it");
        Assert.Equal("ok", b.Do("lk f setlk u 0 0"));
        Assert.Equal("ok", b.Do("flock f un"));
        Assert.Equal(Sys.F_UNLCK, BranchLocks.Holder(branch));
    }

    [MountFact]
    public void L7_release_an_ofd_lock_survives_closing_another_descriptor_and_goes_with_its_own()
    {
        using var m = Layers().Mount();
        string f = Path.Combine(m.Merged, "upper-only.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        Assert.Equal("ok", a.Do($"open o {f} rw"));
        Assert.Equal("ok", a.Do($"open p {f} r"));
        Assert.Equal("ok", a.Do("lk o ofd_setlk w 0 10"));
        Assert.Equal("ok", a.Do("close p")); // FLUSH with A's process owner: not the OFD lock's owner
        Assert.Equal("ok", b.Do($"open f {f} rw"));
        Assert.Equal("err EAGAIN", b.Do("lk f setlk w 0 0"));
        Assert.Equal("ok", a.Do("close o"));
        // The last close of the description sends RELEASE, which the kernel does not wait for.
        Assert.True(Eventually(() => b.Do("lk f setlk w 0 0") == "ok"), "the OFD lock outlived its descriptor");
    }

    [MountFact]
    public void L7_release_after_kill_9_of_the_daemon_no_lock_is_left_on_any_branch_file()
    {
        using var m = Layers().Mount();
        using var a = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {Path.Combine(m.Merged, "data.txt")} r"));
        Assert.Equal("ok", a.Do("lk f setlk r 0 0"));
        Assert.Equal("ok", a.Do($"open u {Path.Combine(m.Merged, "upper-only.txt")} rw"));
        Assert.Equal("ok", a.Do("lk u setlk w 0 0"));
        Assert.Equal(Sys.F_RDLCK, BranchLocks.Holder(Path.Combine(m.Lower(0), "data.txt")));
        Assert.Equal(Sys.F_WRLCK, BranchLocks.Holder(Path.Combine(m.Upper, "upper-only.txt")));
        int pid = m.DaemonPid() ?? throw new InvalidOperationException("no daemon pid");
        Assert.Equal(0, Cli.Shell($"kill -9 {pid}").ExitCode);
        Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(10)));
        // The leader turns zombie before its other threads have exited and closed the descriptors.
        Assert.True(Eventually(() => BranchLocks.Holder(Path.Combine(m.Lower(0), "data.txt")) == Sys.F_UNLCK, 10_000));
        Assert.True(Eventually(() => BranchLocks.Holder(Path.Combine(m.Upper, "upper-only.txt")) == Sys.F_UNLCK, 10_000));
        a.Kill();
    }

    [MountFact]
    public void L7_mandatory_writes_and_truncation_into_another_owners_range_fail_or_wait_and_copy_up_never_bypasses_a_lock()
    {
        using var m = Layers().Mount("locks=mandatory");
        string f = Path.Combine(m.Merged, "upper-only.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {f} rw"));
        Assert.Equal("ok", a.Do("lk f setlk r 0 4"));
        Assert.Equal("ok", b.Do($"open n {f} rwn"));
        Assert.Equal("ok", b.Do($"open f {f} rw"));
        Assert.Equal("err EAGAIN", b.Do("write n 2 xx"));
        Assert.Equal("ok 2", b.Do("write n 4 xx")); // just past the lock
        Assert.Equal("ok 1", a.Do("write f 0 A")); // the holder's own range
        Assert.Equal("err EAGAIN", b.Do("truncate n 3"));
        var blocked = b.Start("write f 1 yy");
        Assert.False(blocked.Wait(300), "a blocking descriptor's write did not wait for the lock");
        Assert.Equal("ok", a.Do("lk f setlk u 0 0"));
        Assert.True(blocked.Wait(5000));
        Assert.Equal("ok 2", blocked.Result);
        Assert.Equal("ok", b.Do("truncate n 3"));

        // A process holding a write lock on the lower file itself: copying the file up would read
        // under its lock, so the open for writing is refused until it lets go.
        using var direct = new LockDriver();
        Assert.Equal("ok", direct.Do($"open f {Path.Combine(m.Lower(0), "data.txt")} rw"));
        Assert.Equal("ok", direct.Do("lk f setlk w 0 0"));
        Assert.Equal("ok", a.Do($"open d {Path.Combine(m.Merged, "data.txt")} r"));
        Assert.Equal("err EAGAIN", b.Do($"open d {Path.Combine(m.Merged, "data.txt")} rw"));
        Assert.False(File.Exists(Path.Combine(m.Upper, "data.txt")));
        Assert.Equal("ok", direct.Do("lk f setlk u 0 0"));
        Assert.Equal("ok", b.Do($"open d {Path.Combine(m.Merged, "data.txt")} rw"));
        Assert.True(File.Exists(Path.Combine(m.Upper, "data.txt")));
    }

    [MountFact]
    public void SETLKW_waits_without_a_worker_is_granted_on_unlock_and_a_signal_gives_EINTR()
    {
        using var m = Layers().Mount("workers=1");
        string f = Path.Combine(m.Merged, "upper-only.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        using var c = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {f} rw"));
        Assert.Equal("ok", b.Do($"open f {f} rw"));
        Assert.Equal("ok", c.Do($"open f {f} rw"));
        Assert.Equal("ok", a.Do("lk f setlk w 0 0"));
        var bWaits = b.Start("lk f setlkw w 0 0");
        Assert.False(bWaits.Wait(200));
        // The only worker is free while B waits: other requests are answered.
        Assert.Equal("upper\n", File.ReadAllText(f));
        Assert.Equal($"lk w 0 0 {a.Pid}", c.Do("lk f getlk w 0 0"));
        // A signal interrupts a waiting request: INTERRUPT -> EINTR.
        Assert.Equal("ok", c.Do("alarm 0.3"));
        Assert.Equal("err EINTR", c.Do("lk f setlkw w 0 0"));
        Assert.False(bWaits.IsCompleted);
        Assert.Equal("ok", a.Do("lk f setlk u 0 0"));
        Assert.True(bWaits.Wait(5000));
        Assert.Equal("ok", bWaits.Result);
        Assert.Equal($"lk w 0 0 {b.Pid}", a.Do("lk f getlk r 0 0"));
    }

    [MountFact]
    public void Past_lock_waiters_a_SETLKW_that_would_wait_fails_with_ENOLCK_and_later_ones_wait_again()
    {
        using var m = Layers().Mount("lock_waiters=2");
        string f = Path.Combine(m.Merged, "upper-only.txt");
        var d = Enumerable.Range(0, 4).Select(_ => new LockDriver()).ToArray();
        try
        {
            foreach (var x in d) Assert.Equal("ok", x.Do($"open f {f} rw"));
            Assert.Equal("ok", d[0].Do("lk f setlk w 0 10"));
            var w1 = d[1].Start("lk f setlkw w 0 10");
            var w2 = d[2].Start("lk f ofd_setlkw w 0 10");
            Assert.False(w1.Wait(200));
            Assert.False(w2.IsCompleted);
            Assert.Equal("err ENOLCK", d[3].Do("lk f setlkw w 0 10"));
            Assert.Equal("ok", d[3].Do("lk f setlkw w 100 10")); // needs no wait: not limited
            Assert.Equal("ok", d[0].Do("lk f setlk u 0 0"));
            // The two waiters want the same bytes: one is granted (either may have queued first), the other waits on.
            int first = Task.WaitAny([w1, w2], 5000);
            Assert.True(first >= 0, "no waiter was granted");
            var (granted, waiting) = first == 0 ? (w1, w2) : (w2, w1);
            var (holder, unlockHeld) = first == 0 ? (d[1], "lk f setlk u 0 0") : (d[2], "lk f ofd_setlk u 0 0");
            var (waiter, unlockWaiter) = first == 0 ? (d[2], "lk f ofd_setlk u 0 0") : (d[1], "lk f setlk u 0 0");
            Assert.Equal("ok", granted.Result);
            Assert.False(waiting.IsCompleted);
            // One waiter left: a new one fits again.
            var w3 = d[3].Start("lk f setlkw r 0 10");
            Assert.False(w3.Wait(200));
            Assert.Equal("ok", holder.Do(unlockHeld));
            // The remaining write waiter and the read waiter want the same bytes: whoever gets them first lets go for the other.
            int next = Task.WaitAny([waiting, w3], 5000);
            Assert.NotEqual(-1, next);
            var (winner, other, unlock) = next == 0 ? (waiting, w3, (waiter, unlockWaiter)) : (w3, waiting, (d[3], "lk f setlk u 0 0"));
            Assert.Equal("ok", winner.Result);
            Assert.Equal("ok", unlock.Item1.Do(unlock.Item2));
            Assert.True(other.Wait(5000), "the last waiter was not granted");
            Assert.Equal("ok", other.Result);
        }
        finally
        {
            foreach (var x in d) x.Dispose();
        }
    }

    [MountFact]
    public void SETLKW_that_would_deadlock_fails_with_EDEADLK_as_the_kernel_does()
    {
        using var m = Layers().Mount();
        string f = Path.Combine(m.Merged, "upper-only.txt");
        using var a = new LockDriver();
        using var b = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {f} rw"));
        Assert.Equal("ok", b.Do($"open f {f} rw"));
        Assert.Equal("ok", a.Do("lk f setlk w 0 1"));
        Assert.Equal("ok", b.Do("lk f setlk w 1 1"));
        var aWaits = a.Start("lk f setlkw w 1 1");
        Assert.False(aWaits.Wait(200));
        Assert.Equal("err EDEADLK", b.Do("lk f setlkw w 0 1"));
        Assert.Equal("ok", b.Do("lk f setlk u 0 0"));
        Assert.True(aWaits.Wait(5000));
        Assert.Equal("ok", aWaits.Result);
    }

    [MountFact]
    public void L8_lamina_locks_lists_every_lock_with_command_pid_type_mode_range_union_path_and_mirror()
    {
        using var m = Layers().Mount();
        using var a = new LockDriver();
        Assert.Equal("ok", a.Do($"open f {Path.Combine(m.Merged, "data.txt")} r"));
        Assert.Equal("ok", a.Do("lk f setlk r 5 10"));
        Assert.Equal("ok", a.Do($"open u {Path.Combine(m.Merged, "upper-only.txt")} rw"));
        Assert.Equal("ok", a.Do("lk u setlk w 0 0"));
        Assert.Equal("ok", a.Do("flock u ex nb"));
        var r = Cli.Run("locks", m.Merged);
        Assert.True(r.ExitCode == 0, r.StdErr);
        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("COMMAND", lines[0]);
        string Row(string path, string type, string mode) =>
            lines.Single(l => l.Contains($" {path} ", StringComparison.Ordinal) && l.Contains($" {type} ", StringComparison.Ordinal) && l.Contains($" {mode} ", StringComparison.Ordinal));
        var posixRead = Row("/data.txt", "POSIX", "READ").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["python3", a.Pid.ToString(), "POSIX", "READ", "5", "14", "/data.txt", Path.Combine(m.Lower(0), "data.txt")], posixRead);
        var posixWrite = Row("/upper-only.txt", "POSIX", "WRITE").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["python3", a.Pid.ToString(), "POSIX", "WRITE", "0", "0", "/upper-only.txt", Path.Combine(m.Upper, "upper-only.txt")], posixWrite);
        Assert.Contains(Path.Combine(m.Upper, "upper-only.txt"), Row("/upper-only.txt", "FLOCK", "WRITE"));
        Assert.Equal(3, lines.Length - 1);
    }
}
