using System.Text;
using Lamina.Native;

namespace Lamina.Tests;

public class DiffTests
{
    [Fact]
    public void Diff_lists_added_changed_and_deleted_like_docker()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "etc/conf", "old");
        TestLayers.WriteFile(t.Lowers[0], "etc/gone", "x");
        TestLayers.WriteFile(t.Lowers[0], "var/keep", "x");
        TestLayers.WriteFile(t.Lowers[0], "opq/a", "x");
        TestLayers.WriteFile(t.Lowers[0], "opq/b", "x");
        using var fs = t.Mount();
        fs.WriteText("/etc/conf", "new");
        fs.Paths.Unlink("/etc/gone").Ok();
        fs.Paths.Mkdir("/srv").Ok();
        fs.WriteText("/srv/app", "a");
        fs.Paths.Unlink("/opq/a").Ok();
        fs.Paths.Unlink("/opq/b").Ok();
        fs.Paths.Rmdir("/opq").Ok();
        fs.Paths.Mkdir("/opq").Ok();
        fs.WriteText("/opq/c", "c");
        var diff = fs.Diff().Select(c => c.ToString()).ToList();
        Assert.Equal(
            ["C /etc", "C /etc/conf", "D /etc/gone", "C /opq", "D /opq/a", "D /opq/b", "A /opq/c", "A /srv", "A /srv/app"],
            diff);
    }

    [Fact]
    public void Diff_of_untouched_union_is_empty()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[0], "a", "x");
        TestLayers.WriteFile(t.Lowers[1], "b/c", "x");
        using var fs = t.Mount();
        fs.ReadText("/a");
        Assert.Empty(fs.Diff());
    }

    [Fact]
    public void Statfs_of_overlay_reports_the_upper_filesystem()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        fs.Paths.StatFs(out var st).Ok();
        int fd = Sys.Open(t.Upper!, Sys.O_RDONLY | Sys.O_DIRECTORY);
        Sys.FStatFs(fd, out var real);
        Sys.Close(fd);
        Assert.Equal(real.Blocks, st.Blocks);
        Assert.Equal(real.BSize, st.BSize);
    }
}

/// <summary>ENOSPC and EIO during copy-up and rename leave the original intact and nothing half-visible.</summary>
public class FaultTests
{
    private static void AssertWorkEmpty(string work) =>
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(work, "work")));

    [Fact]
    public void Enospc_during_copy_up_leaves_the_original_and_no_partial_copy()
    {
        using var t = new TestLayers(1);
        // Upper and work on one small tmpfs.
        var small = t.Dir("small");
        if (Sys.Mount("tmpfs", small, "tmpfs", 0, "size=1m") != 0) Assert.Fail($"cannot mount tmpfs ({Sys.LastErrno}); this test needs root");
        try
        {
            var upper = Path.Combine(small, "upper");
            var work = Path.Combine(small, "work");
            Directory.CreateDirectory(upper);
            Directory.CreateDirectory(work);
            var data = new byte[3 << 20];
            new Random(1).NextBytes(data);
            File.WriteAllBytes(Path.Combine(t.Lowers[0], "big"), data);
            TestLayers.WriteFile(t.Lowers[0], "dir/big2", Encoding.ASCII.GetString(new byte[2 << 20]));
            using var fs = UnionFileSystem.MountOverlay($"lowerdir={t.Lowers[0]},upperdir={upper},workdir={work}");
            Assert.Equal(Errno.ENOSPC, fs.Paths.Open("/big", Sys.O_RDWR, out _));
            Assert.False(File.Exists(Path.Combine(upper, "big")));
            AssertWorkEmpty(work);
            fs.Paths.ReadAllBytes("/big", out var back).Ok();
            Assert.Equal(data, back);
            // A rename needing a copy-up fails the same way and leaves both names as they were.
            Assert.Equal(Errno.ENOSPC, fs.Paths.Rename("/big", "/renamed"));
            Assert.True(fs.Paths.Exists("/big"));
            Assert.False(fs.Paths.Exists("/renamed"));
            AssertWorkEmpty(work);
        }
        finally { Sys.Umount2(small, Sys.MNT_DETACH); }
    }

    [Fact]
    public void Eio_during_copy_up_and_rename_leaves_everything_as_it_was()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "precious");
        TestLayers.WriteFile(t.Lowers[0], "d/g", "inside");
        bool fail = true;
        using var fs = t.Mount(configure: o => o.CopyFaultInjector = _ => fail ? Errno.EIO : Errno.None);
        Assert.Equal(Errno.EIO, fs.Paths.Open("/f", Sys.O_WRONLY, out _));
        Assert.Equal(Errno.EIO, fs.Paths.Rename("/f", "/moved"));
        Assert.Equal(Errno.EIO, fs.Paths.Rename("/d/g", "/d/h"));
        Assert.Equal("precious", fs.ReadText("/f"));
        Assert.False(fs.Paths.Exists("/moved"));
        Assert.Equal(["g"], fs.List("/d"));
        Assert.False(File.Exists(Path.Combine(t.Upper!, "f")));
        AssertWorkEmpty(t.Work!);
        fail = false;
        fs.Paths.Rename("/f", "/moved").Ok();
        Assert.Equal("precious", fs.ReadText("/moved"));
    }

    [Fact]
    public void Crash_leftovers_in_work_are_never_visible_and_are_cleaned()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "x");
        using (var fs = t.Mount())
        {
            // A half-built copy as a crash would leave it.
            File.WriteAllText(Path.Combine(t.Work!, "work", "#dead.1"), "half");
            Assert.Equal(["f"], fs.List("/"));
        }
        using (t.Mount()) AssertWorkEmpty(t.Work!);
    }
}
