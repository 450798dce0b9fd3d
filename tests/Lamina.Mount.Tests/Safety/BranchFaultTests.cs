using Lamina.Native;

namespace Lamina.Mount.Tests.Safety;

/// <summary>
/// Faults of the branches' own filesystems, through a real mount: a read-only remount, a quota,
/// root-reserved blocks, a filesystem unmounted or dead underneath. Each reaches the caller as the
/// same errno it would get on the branch, never as a hang, a crash of the daemon or a half-made file.
/// </summary>
public class BranchFaultTests
{
    private const uint Nobody = 65534;

    private static void AssertDaemonAlive(LaminaMount m, int pid)
    {
        Assert.True(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal), "the daemon died");
        Assert.Equal(pid, m.DaemonPid());
    }

    private static void AssertNothingInWork(LaminaMount m) =>
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(m.Work, "work")));

    [MountFact]
    public void Upper_remounted_read_only_gives_EROFS_for_every_change_reads_go_on_and_rw_works_again()
    {
        using var small = ScratchFs.Tmpfs();
        var upper = Path.Combine(small.Path, "upper");
        var lower = Directory.CreateTempSubdirectory("lamina-lower-").FullName;
        try
        {
            using var m = new LaminaMount([lower], upper, Path.Combine(small.Path, "work"));
            File.WriteAllText(Path.Combine(lower, "lf"), "lower data\n");
            Directory.CreateDirectory(Path.Combine(lower, "ld"));
            File.WriteAllText(Path.Combine(upper, "uf"), "upper data\n");
            m.Mount();
            int pid = m.DaemonPid()!.Value;
            string M(string name) => Path.Combine(m.Merged, name);

            // The daemon keeps no branch file open for writing, so the remount is allowed while mounted.
            small.Remount("ro");
            Assert.Equal("EROFS", FsCall.Run($"write('{M("uf")}', 'more')"));             // upper file
            Assert.Equal("EROFS", FsCall.Run($"write('{M("lf")}', 'more')"));             // copy-up
            Assert.Equal("EROFS", FsCall.Run($"os.chmod('{M("lf")}', 0o600)"));           // metadata copy-up
            Assert.Equal("EROFS", FsCall.Run($"create('{M("new")}', 'x')"));
            Assert.Equal("EROFS", FsCall.Run($"os.mkdir('{M("ld/sub")}')"));              // directory copy-up
            Assert.Equal("EROFS", FsCall.Run($"os.unlink('{M("lf")}')"));                 // whiteout
            Assert.Equal("EROFS", FsCall.Run($"os.rename('{M("uf")}', '{M("uf2")}')"));
            Assert.Equal("EROFS", FsCall.Run($"os.truncate('{M("uf")}', 0)"));

            Assert.Equal("lower data\n", File.ReadAllText(M("lf")));
            Assert.Equal("upper data\n", File.ReadAllText(M("uf")));
            Assert.Equal(["ld", "lf", "uf"], Directory.GetFileSystemEntries(m.Merged).Select(Path.GetFileName).Order());
            AssertDaemonAlive(m, pid);

            small.Remount("rw");
            Assert.Equal("ok", FsCall.Run($"write('{M("uf")}', 'more')"));
            Assert.Equal("ok", FsCall.Run($"write('{M("lf")}', 'more')"));
            Assert.Equal("ok", FsCall.Run($"os.mkdir('{M("ld/sub")}')"));
            Assert.Equal("upper data\nmore", File.ReadAllText(M("uf")));
            Assert.Equal("lower data\nmore", File.ReadAllText(Path.Combine(upper, "lf")));
            AssertNothingInWork(m);
            m.Unmount();
        }
        finally { Directory.Delete(lower, recursive: true); }
    }

    [MountWithToolsFact("mkfs.btrfs", "btrfs")]
    public void Over_quota_an_ordinary_caller_gets_EDQUOT_and_a_failed_copy_up_leaves_the_lower_file()
    {
        using var quota = ScratchFs.BtrfsWithQuota("4M");
        var vol = Path.Combine(quota.Path, "vol");
        var lower = Directory.CreateTempSubdirectory("lamina-lower-").FullName;
        try
        {
            using var m = new LaminaMount([lower], Path.Combine(vol, "upper"), Path.Combine(vol, "work"));
            var big = new byte[6 << 20];
            new Random(4).NextBytes(big);
            File.WriteAllBytes(Path.Combine(lower, "big"), big);
            Sys.FChmodAt(Sys.AT_FDCWD, Path.Combine(lower, "big"), 0x1B6, 0); // 0666: the ordinary user may write it
            Sys.FChownAt(Sys.AT_FDCWD, Path.Combine(lower, "big"), Nobody, Nobody, 0);
            Sys.FChmodAt(Sys.AT_FDCWD, m.Upper, 0x1FF, 0);
            Sys.FChmodAt(Sys.AT_FDCWD, m.Root, 0x1ED, 0); // the ordinary user reaches the mount point
            m.Mount();
            int pid = m.DaemonPid()!.Value;
            string M(string name) => Path.Combine(m.Merged, name);

            // Opening for writing copies up 6 MiB into a subvolume limited to 4 MiB.
            Assert.Equal("EDQUOT", FsCall.Run($"write('{M("big")}', 'appended')", Nobody));
            Assert.Equal(big, File.ReadAllBytes(M("big")));
            Assert.False(File.Exists(Path.Combine(m.Upper, "big")), "a half-made copy is in the upper branch");
            AssertNothingInWork(m);

            // A new file of the caller's fills the quota and fails there, as on the branch itself.
            Assert.Equal("EDQUOT", FsCall.Run($"create('{M("mine")}', b'x' * (8 << 20))", Nobody));
            Sys.LStatxAt(Sys.AT_FDCWD, M("mine"), out var st);
            Assert.Equal(Nobody, st.Uid);
            Assert.Equal("ok", FsCall.Run($"os.unlink('{M("mine")}')", Nobody));
            Assert.Equal("ok", FsCall.Run("os.sync()"));
            Assert.Equal("ok", FsCall.Run($"create('{M("small")}', 'fits')", Nobody));
            Assert.Equal(big, File.ReadAllBytes(M("big")));
            AssertDaemonAlive(m, pid);
            m.Unmount();
        }
        finally { Directory.Delete(lower, recursive: true); }
    }

    [MountWithToolsFact("mkfs.ext4")]
    public void Root_reserved_blocks_stay_reserved_for_root_through_the_mount()
    {
        // Half the blocks reserved for root (resuid 0): ext4 lets a writer with fsuid 0 or
        // CAP_SYS_RESOURCE use them. An ordinary caller writing through the mount must get ENOSPC
        // where root goes on, as on the branch, although the daemon that writes is root.
        using var ext4 = ScratchFs.Ext4(32, "-m 50");
        var lower = Directory.CreateTempSubdirectory("lamina-lower-").FullName;
        try
        {
            using var m = new LaminaMount([lower], Path.Combine(ext4.Path, "upper"), Path.Combine(ext4.Path, "work"));
            Sys.FChmodAt(Sys.AT_FDCWD, m.Upper, 0x1FF, 0);
            Sys.FChmodAt(Sys.AT_FDCWD, m.Root, 0x1ED, 0);
            const string TwentyMiB = "b'x' * (20 << 20)";

            // On the branch itself.
            Assert.Equal("ENOSPC", FsCall.Run($"create('{m.Upper}/direct', {TwentyMiB})", Nobody));
            long direct = new FileInfo(Path.Combine(m.Upper, "direct")).Length;
            File.Delete(Path.Combine(m.Upper, "direct"));

            m.Mount();
            string M(string name) => Path.Combine(m.Merged, name);
            Assert.Equal("ENOSPC", FsCall.Run($"create('{M("mine")}', {TwentyMiB})", Nobody));
            long through = new FileInfo(M("mine")).Length;
            Assert.True(through <= direct + (1 << 20), $"an ordinary caller wrote {through} bytes through the mount, {direct} on the branch");
            Assert.Equal("ok", FsCall.Run($"os.unlink('{M("mine")}')", Nobody));
            // The blocks come back once the kernel has sent RELEASE (in the background) and the daemon closed the file.
            Assert.True(WaitForFreeBytes(ext4.Path, 15 << 20), "the unlinked file's blocks never came back");
            // Root's requests keep the capability: root writes well past what the ordinary caller could.
            Assert.Equal("ok", FsCall.Run($"create('{M("roots")}', b'x' * (14 << 20))"));
            Assert.True(direct < 14 << 20);
            m.Unmount();
        }
        finally { Directory.Delete(lower, recursive: true); }
    }

    private static bool WaitForFreeBytes(string path, long bytes)
    {
        for (int i = 0; i < 100; i++)
        {
            var r = Cli.Shell($"sync -f {path} && stat -f -c '%f %S' {path}");
            var parts = r.StdOut.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture) * long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) >= bytes) return true;
            Thread.Sleep(100);
        }
        return false;
    }

    [MountFact]
    public void Branches_unmounted_lazily_underneath_keep_working_on_the_held_descriptors()
    {
        using var lowerFs = ScratchFs.Tmpfs();
        using var upperFs = ScratchFs.Tmpfs();
        using var m = new LaminaMount([lowerFs.Path], Path.Combine(upperFs.Path, "upper"), Path.Combine(upperFs.Path, "work"));
        Directory.CreateDirectory(Path.Combine(lowerFs.Path, "d"));
        File.WriteAllText(Path.Combine(lowerFs.Path, "d", "lf"), "lower\n");
        File.WriteAllText(Path.Combine(lowerFs.Path, "lf2"), "lower2\n");
        m.Mount();
        int pid = m.DaemonPid()!.Value;
        string M(string name) => Path.Combine(m.Merged, name);

        lowerFs.UnmountLazily();
        Assert.False(File.Exists(Path.Combine(lowerFs.Path, "lf2")), "the lower filesystem is still in the tree");
        Assert.Equal("ok", FsCall.Run($"assert read('{M("d/lf")}') == b'lower\\n'"));
        Assert.Equal("ok", FsCall.Run($"write('{M("lf2")}', 'more\\n')"));              // copy-up from the detached lower
        Assert.Equal("ok", FsCall.Run($"assert sorted(os.listdir('{m.Merged}')) == ['d', 'lf2']"));

        upperFs.UnmountLazily();
        Assert.Equal("ok", FsCall.Run($"create('{M("new")}', 'new')"));
        Assert.Equal("ok", FsCall.Run($"assert read('{M("lf2")}') == b'lower2\\nmore\\n'"));
        Assert.Equal("ok", FsCall.Run($"assert read('{M("new")}') == b'new'"));
        AssertDaemonAlive(m, pid);
        m.Unmount();
        Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(10)));
        Assert.DoesNotContain(m.Merged, File.ReadAllText("/proc/self/mountinfo"));
    }

    [MountFact]
    public void A_lower_branch_whose_filesystem_dies_gives_ENOTCONN_never_a_hang()
    {
        // The lower branch is itself a FUSE filesystem (another Lamina mount) whose daemon is killed.
        using var inner = new LaminaMount(1, im => File.WriteAllText(Path.Combine(im.Lower(0), "lf"), "lower\n"));
        inner.Mount();
        var rw = Directory.CreateTempSubdirectory("lamina-rw-").FullName;
        try
        {
            using var m = new LaminaMount([inner.Merged], Path.Combine(rw, "upper"), Path.Combine(rw, "work"));
            File.WriteAllText(Path.Combine(m.Upper, "uf"), "upper\n");
            m.Mount();
            int pid = m.DaemonPid()!.Value;
            string M(string name) => Path.Combine(m.Merged, name);
            Assert.Equal("lower\n", File.ReadAllText(M("lf")));

            int innerPid = inner.DaemonPid()!.Value;
            Sys.Kill(innerPid, Sys.SIGKILL);
            Assert.True(LaminaMount.WaitForExit(innerPid, TimeSpan.FromSeconds(10)));
            Thread.Sleep(1500); // past the inner mount's attribute timeout: every look at the dead branch now asks its (gone) daemon

            Assert.Equal("ENOTCONN", FsCall.Run($"read('{M("lf")}')", timeoutMs: 10_000));
            Assert.Equal("ENOTCONN", FsCall.Run($"write('{M("lf")}', 'x')", timeoutMs: 10_000));
            Assert.Equal("ENOTCONN", FsCall.Run($"os.listdir('{m.Merged}')", timeoutMs: 10_000));
            Assert.Equal("ENOTCONN", FsCall.Run($"create('{M("new")}', 'x')", timeoutMs: 10_000));
            // A file of the upper branch alone: readable, or the same clear error; never ENOENT, never a hang.
            Assert.Contains(FsCall.Run($"assert read('{M("uf")}') == b'upper\\n'", timeoutMs: 10_000), new[] { "ok", "ENOTCONN" });
            AssertDaemonAlive(m, pid);
            m.Unmount();
            Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(10)));
        }
        finally
        {
            inner.Unmount();
            Directory.Delete(rw, recursive: true);
        }
    }
}
