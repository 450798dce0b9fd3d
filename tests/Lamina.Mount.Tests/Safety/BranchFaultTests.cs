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
}
