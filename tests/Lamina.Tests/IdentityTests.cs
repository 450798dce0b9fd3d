using System.Text;
using Lamina.Native;

namespace Lamina.Tests;

public class IdentityTests
{
    [Fact]
    public void Ino_survives_copy_up_rename_and_remount()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/f", "x");
        TestLayers.MakeDir(t.Lowers[0], "dir");
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Lowers[0], "d/f"), out var lower);
        var fs = t.Mount();
        ulong fileIno = fs.StatOk("/d/f").Ino;
        ulong dirIno = fs.StatOk("/dir").Ino;
        Assert.Equal(lower.Ino, fileIno); // all branches on one filesystem: the real inode
        fs.WriteText("/d/f", "copied up");
        Assert.Equal(fileIno, fs.StatOk("/d/f").Ino);
        fs.Paths.Rename("/d/f", "/moved").Ok();
        Assert.Equal(fileIno, fs.StatOk("/moved").Ino);
        fs.Paths.Rename("/dir", "/dir2").Ok();
        Assert.Equal(dirIno, fs.StatOk("/dir2").Ino);
        fs.Paths.ReadDir("/", out var entries).Ok();
        Assert.Equal(fileIno, entries.Single(e => e.Name == "moved").Ino);
        Assert.Equal(dirIno, entries.Single(e => e.Name == "dir2").Ino);
        t.Unmount(fs);
        using var again = t.Mount();
        Assert.Equal(fileIno, again.StatOk("/moved").Ino);
        Assert.Equal(dirIno, again.StatOk("/dir2").Ino);
    }

    [Fact]
    public void Node_object_stays_the_same_across_copy_up_and_rename()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "x");
        using var fs = t.Mount();
        fs.Lookup(fs.Root, "f", out var node).Ok();
        var changed = new List<UnionNode>();
        using var recording = fs.Observe(new Recorder(afterPublish: changed.Add));
        fs.Open(node!, Sys.O_WRONLY, default, out var h).Ok();
        h!.Release();
        Assert.Equal([node!], changed);
        Assert.True(node!.BackingBranch!.IsWritable);
        fs.Rename(fs.Root, "f", fs.Root, "g", 0, default).Ok();
        fs.Lookup(fs.Root, "g", out var again).Ok();
        Assert.Same(node, again);
        Assert.Same(node, fs.FindNode(node.NodeId));
        Assert.Equal("g", node.Name);
        fs.Forget(node, 2);
        Assert.Null(fs.FindNode(node.NodeId));
    }

    [Fact]
    public void Hard_links_to_a_lower_file_stay_one_file_after_copy_up()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "a", "original");
        Assert.Equal(0, Sys.LinkAt(Sys.AT_FDCWD, Path.Combine(t.Lowers[0], "a"), Sys.AT_FDCWD, Path.Combine(t.Lowers[0], "b"), 0));
        using var fs = t.Mount();
        fs.Lookup(fs.Root, "a", out var na).Ok();
        fs.Lookup(fs.Root, "b", out var nb).Ok();
        Assert.Same(na, nb);
        ulong ino = fs.StatOk("/a").Ino;
        fs.WriteText("/a", "changed via a");
        Assert.Equal("changed via a", fs.ReadText("/b"));
        Assert.Equal(ino, fs.StatOk("/b").Ino);
        fs.WriteText("/b", "changed via b");
        Assert.Equal("changed via b", fs.ReadText("/a"));
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Upper!, "a"), out var ua);
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Upper!, "b"), out var ub);
        Assert.Equal(ua.Ino, ub.Ino);
        Assert.Equal("original", File.ReadAllText(Path.Combine(t.Lowers[0], "a")));
    }

    [Fact]
    public void Pure_upper_objects_use_their_upper_inode()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        fs.WriteText("/new", "x");
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Upper!, "new"), out var st);
        Assert.Equal(st.Ino, fs.StatOk("/new").Ino);
    }

    [Fact]
    public void Lower_on_other_filesystem_gets_its_index_in_high_bits()
    {
        using var t = new TestLayers(1);
        var tmpfs = t.Dir("tmpfs-lower");
        if (Sys.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=4m") != 0)
            Assert.Fail($"cannot mount tmpfs ({Sys.LastErrno}); this test needs root");
        try
        {
            File.WriteAllText(Path.Combine(tmpfs, "f"), "x");
            Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(tmpfs, "f"), out var real);
            using var fs = UnionFileSystem.MountOverlay($"lowerdir={tmpfs},upperdir={t.Upper},workdir={t.Work}");
            ulong ino = fs.StatOk("/f").Ino;
            Assert.Equal((1UL << 48) | real.Ino, ino);
            fs.WriteText("/f", "copied");
            Assert.Equal(ino, fs.StatOk("/f").Ino);
        }
        finally { Sys.Umount2(tmpfs, Sys.MNT_DETACH); }
    }
}

public class HandleTests
{
    [Fact]
    public void Read_only_handle_follows_copy_up()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "lower data");
        using var fs = t.Mount();
        fs.Paths.Open("/f", Sys.O_RDONLY, out var reader).Ok();
        using (reader!)
        {
            Assert.False(reader!.BackingBranch.IsWritable);
            int backingChanges = 0;
            reader.BackingChanged += _ => backingChanges++;
            fs.Paths.Open("/f", Sys.O_RDWR, out var writer).Ok();
            using (writer!)
            {
                writer!.Write("UPPER"u8, 0, out int n).Ok();
                Assert.Equal(5, n);
            }
            var buf = new byte[32];
            reader.Read(buf, 0, out int got).Ok();
            Assert.Equal("UPPER data", Encoding.ASCII.GetString(buf, 0, got));
            Assert.True(reader.BackingBranch.IsWritable);
            Assert.Equal(1, backingChanges);
            Assert.Equal(GetRealIno(Path.Combine(t.Upper!, "f")), reader.BackingId.Ino);
        }
    }

    private static ulong GetRealIno(string path)
    {
        Sys.LStatxAt(Sys.AT_FDCWD, path, out var st);
        return st.Ino;
    }

    [Fact]
    public void Unlinked_file_stays_readable_through_its_handle()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        fs.WriteText("/f", "still here");
        fs.Lookup(fs.Root, "f", out var node).Ok();
        fs.Open(node!, Sys.O_RDONLY, default, out var h).Ok();
        fs.Unlink(fs.Root, "f", default).Ok();
        fs.GetAttr(node!, out var st).Ok();
        Assert.Equal(10ul, st.Size);
        var buf = new byte[20];
        h!.Read(buf, 0, out int n).Ok();
        Assert.Equal("still here", Encoding.ASCII.GetString(buf, 0, n));
        h.Release();
        fs.Forget(node!, 1);
        Assert.Null(fs.FindNode(node!.NodeId));
    }

    [Fact]
    public async Task Concurrent_reads_during_copy_up_never_fail()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", new string('a', 4096));
        using var fs = t.Mount();
        fs.Paths.Open("/f", Sys.O_RDONLY, out var reader).Ok();
        using (reader!)
        {
            var errors = 0;
            using var stop = new CancellationTokenSource();
            var readTask = Task.Run(() =>
            {
                var buf = new byte[4096];
                while (!stop.IsCancellationRequested)
                {
                    if (reader!.Read(buf, 0, out int n) != Errno.None || n != 4096) Interlocked.Increment(ref errors);
                }
            });
            fs.Paths.Open("/f", Sys.O_RDWR, out var w).Ok();
            w!.Dispose();
            await Task.Delay(50);
            stop.Cancel();
            await readTask;
            Assert.Equal(0, errors);
        }
    }
}

public class UnlinkedOpenFileTests
{
    [Fact]
    public void Setattr_of_an_unlinked_open_file_goes_through_its_handle()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        fs.WriteText("/tmpfile", "0123456789");
        fs.Lookup(fs.Root, "tmpfile", out var node).Ok();
        fs.Open(node!, Sys.O_RDWR, default, out var h).Ok();
        fs.Unlink(fs.Root, "tmpfile", default).Ok();
        fs.SetAttr(node!, h, new SetAttrRequest { Size = 3, Mode = 0x180 }, default, out var st).Ok();
        Assert.Equal(3ul, st.Size);
        Assert.Equal(0x180u, st.Mode & 0xFFFu);
        Assert.Equal(node!.Ino, st.Ino);
        h!.Release();
        fs.Forget(node, 1);
    }

    [Fact]
    public void Userxattr_mode_writes_user_overlay_markers()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/f", "x");
        TestLayers.WriteFile(t.Lowers[0], "e/g", "x");
        using var fs = t.Mount("userxattr");
        fs.Paths.Rename("/d", "/d2").Ok();
        fs.Paths.Unlink("/e/g").Ok();
        fs.Paths.Rmdir("/e").Ok();
        fs.Paths.Mkdir("/e").Ok();
        Assert.Equal("/d", TestLayers.GetXattr(Path.Combine(t.Upper!, "d2"), "user.overlay.redirect"));
        Assert.Null(TestLayers.GetXattr(Path.Combine(t.Upper!, "d2"), "trusted.overlay.redirect"));
        Assert.Equal("y", TestLayers.GetXattr(Path.Combine(t.Upper!, "e"), "user.overlay.opaque"));
        Assert.NotNull(TestLayers.GetXattr(Path.Combine(t.Upper!, "d2"), "user.lamina.origin"));
        fs.Paths.ListXattr("/d2", out var names).Ok();
        Assert.Empty(names);
        Assert.Equal(["f"], fs.List("/d2"));
        Assert.Empty(fs.List("/e"));
    }
}
