using Lamina.Native;

namespace Lamina.Tests;

public class DirectoryOpsTests
{
    private static bool IsWhiteout(string path) =>
        Sys.LStatxAt(Sys.AT_FDCWD, path, out var st) == 0 && st.FileType == ModeBits.S_IFCHR && st.RDev == 0;

    [Fact]
    public void Unlink_lower_file_leaves_whiteout()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "x");
        using var fs = t.Mount();
        fs.Paths.Unlink("/f").Ok();
        Assert.True(IsWhiteout(Path.Combine(t.Upper!, "f")));
        Assert.Empty(fs.List("/"));
        Assert.Equal(Errno.ENOENT, fs.Paths.Unlink("/f"));
    }

    [Fact]
    public void Unlink_pure_upper_file_leaves_nothing()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        fs.WriteText("/f", "x");
        fs.Paths.Unlink("/f").Ok();
        Assert.Empty(Directory.GetFileSystemEntries(t.Upper!));
    }

    [Fact]
    public void Unlink_copied_up_file_swaps_in_whiteout()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "x");
        using var fs = t.Mount();
        fs.WriteText("/f", "changed");
        fs.Paths.Unlink("/f").Ok();
        Assert.True(IsWhiteout(Path.Combine(t.Upper!, "f")));
        Assert.Empty(fs.List("/"));
    }

    [Fact]
    public void Rmdir_of_merged_empty_lower_directory()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[1], "d/a", "x");
        TestLayers.WriteFile(t.Lowers[0], "d/b", "x");
        using var fs = t.Mount();
        Assert.Equal(Errno.ENOTEMPTY, fs.Paths.Rmdir("/d"));
        fs.Paths.Unlink("/d/a").Ok();
        fs.Paths.Unlink("/d/b").Ok();
        Assert.Empty(fs.List("/d"));
        fs.Paths.Rmdir("/d").Ok();
        Assert.True(IsWhiteout(Path.Combine(t.Upper!, "d")));
        Assert.Empty(fs.List("/"));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(t.Work!, "work")));
    }

    [Fact]
    public void Mkdir_over_whiteout_is_opaque()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/old", "x");
        using var fs = t.Mount();
        fs.Paths.Unlink("/d/old").Ok();
        fs.Paths.Rmdir("/d").Ok();
        fs.Paths.Mkdir("/d").Ok();
        Assert.Empty(fs.List("/d"));
        Assert.Equal("y", TestLayers.GetXattr(Path.Combine(t.Upper!, "d"), "trusted.overlay.opaque"));
        Assert.True(Directory.Exists(Path.Combine(t.Upper!, "d")));
    }

    [Fact]
    public void Create_over_whiteout_replaces_it()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "old");
        using var fs = t.Mount();
        fs.Paths.Unlink("/f").Ok();
        fs.WriteText("/f", "new");
        Assert.Equal("new", fs.ReadText("/f"));
        Assert.False(IsWhiteout(Path.Combine(t.Upper!, "f")));
    }

    [Fact]
    public void Created_objects_get_the_callers_owner_and_setgid_inheritance()
    {
        using var t = new TestLayers(1);
        TestLayers.MakeDir(t.Lowers[0], "sg");
        var sg = Path.Combine(t.Lowers[0], "sg");
        Sys.FChownAt(Sys.AT_FDCWD, sg, 0, 777, 0);
        Sys.FChmodAt(Sys.AT_FDCWD, sg, 0x5FF /* 2777 */, 0);
        using var fs = t.Mount();
        fs.Paths.Caller = new Caller(1000, 1000);
        fs.Paths.Umask = 0;
        fs.Paths.Mkdir("/mine", 0x1ED).Ok();
        var st = fs.StatOk("/mine");
        Assert.Equal(1000u, st.Uid);
        Assert.Equal(1000u, st.Gid);
        Assert.Equal(0x1EDu, st.Mode & 0xFFFu);
        fs.Paths.Create("/sg/f", 0x1A4, out var h).Ok();
        h!.Dispose();
        Assert.Equal(777u, fs.StatOk("/sg/f").Gid);
        Assert.Equal(1000u, fs.StatOk("/sg/f").Uid);
        fs.Paths.Mkdir("/sg/sub").Ok();
        Assert.True((fs.StatOk("/sg/sub").Mode & ModeBits.S_ISGID) != 0);
        fs.Paths.Symlink("target", "/link").Ok();
        Assert.Equal(1000u, fs.StatOk("/link").Uid);
        fs.Paths.Mknod("/fifo", ModeBits.S_IFIFO | 0x1A4).Ok();
        Assert.Equal(ModeBits.S_IFIFO, fs.StatOk("/fifo").FileType);
    }

    [Fact]
    public void Rename_lower_directory_without_exdev_sets_redirect()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "src/a", "A");
        TestLayers.WriteFile(t.Lowers[0], "src/sub/b", "B");
        using var fs = t.Mount();
        fs.Paths.Rename("/src", "/dst").Ok();
        Assert.Equal(["dst"], fs.List("/"));
        Assert.Equal(["a", "sub"], fs.List("/dst"));
        Assert.Equal("B", fs.ReadText("/dst/sub/b"));
        Assert.Equal("/src", TestLayers.GetXattr(Path.Combine(t.Upper!, "dst"), "trusted.overlay.redirect"));
        Assert.True(IsWhiteout(Path.Combine(t.Upper!, "src")));
        // Renaming again keeps pointing at the original lower directory.
        fs.Paths.Mkdir("/p").Ok();
        fs.Paths.Rename("/dst", "/p/again").Ok();
        Assert.Equal("A", fs.ReadText("/p/again/a"));
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/dst", out _));
        // And a fresh mount reads the same.
        t.Unmount(fs);
        using var fs2 = t.Mount();
        Assert.Equal(["p"], fs2.List("/"));
        Assert.Equal(["a", "sub"], fs2.List("/p/again"));
    }

    [Fact]
    public void Rename_file_over_file_and_flags()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "a", "A");
        TestLayers.WriteFile(t.Lowers[0], "b", "B");
        using var fs = t.Mount();
        Assert.Equal(Errno.EEXIST, fs.Paths.Rename("/a", "/b", Sys.RENAME_NOREPLACE));
        fs.Paths.Rename("/a", "/b", Sys.RENAME_EXCHANGE).Ok();
        Assert.Equal("B", fs.ReadText("/a"));
        Assert.Equal("A", fs.ReadText("/b"));
        fs.Paths.Rename("/a", "/b").Ok();
        Assert.Equal(["b"], fs.List("/"));
        Assert.Equal("B", fs.ReadText("/b"));
        Assert.Equal(Errno.ENOENT, fs.Paths.Rename("/nope", "/x", Sys.RENAME_EXCHANGE));
        fs.Paths.Rename("/b", "/c", Sys.RENAME_WHITEOUT).Ok();
        Assert.Equal(["c"], fs.List("/"));
    }

    [Fact]
    public void Rename_error_cases()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/f", "x");
        TestLayers.WriteFile(t.Lowers[0], "e/g", "x");
        TestLayers.WriteFile(t.Lowers[0], "file", "x");
        TestLayers.MakeDir(t.Lowers[0], "empty");
        using var fs = t.Mount();
        Assert.Equal(Errno.EINVAL, fs.Paths.Rename("/d", "/d/inside"));
        Assert.Equal(Errno.ENOTEMPTY, fs.Paths.Rename("/d", "/e"));
        Assert.Equal(Errno.ENOTDIR, fs.Paths.Rename("/d", "/file"));
        Assert.Equal(Errno.EISDIR, fs.Paths.Rename("/file", "/empty"));
        fs.Paths.Rename("/d", "/empty").Ok();
        Assert.Equal(["f"], fs.List("/empty"));
        Assert.Equal(["e", "empty", "file"], fs.List("/"));
    }

    [Fact]
    public void Directory_replacing_merged_empty_directory()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "target/x", "gone soon");
        TestLayers.WriteFile(t.Lowers[0], "src/y", "Y");
        using var fs = t.Mount();
        fs.Paths.Unlink("/target/x").Ok();
        fs.Paths.Rename("/src", "/target").Ok();
        Assert.Equal(["y"], fs.List("/target"));
        Assert.Equal(["target"], fs.List("/"));
    }

    [Fact]
    public void Pure_upper_directory_moved_over_lower_name_is_opaque()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "name/lowerfile", "x");
        using var fs = t.Mount();
        fs.Paths.Mkdir("/fresh").Ok();
        fs.WriteText("/fresh/mine", "m");
        fs.Paths.Unlink("/name/lowerfile").Ok();
        fs.Paths.Rmdir("/name").Ok();
        fs.Paths.Rename("/fresh", "/name").Ok();
        Assert.Equal(["mine"], fs.List("/name"));
    }

    [Fact]
    public void Hard_link_of_lower_file()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "x");
        using var fs = t.Mount();
        fs.Paths.Link("/f", "/g").Ok();
        fs.WriteText("/g", "through g");
        Assert.Equal("through g", fs.ReadText("/f"));
        Assert.Equal(fs.StatOk("/f").Ino, fs.StatOk("/g").Ino);
        Assert.Equal(2u, fs.StatOk("/f").NLink);
        Assert.Equal(Errno.EEXIST, fs.Paths.Link("/f", "/g"));
    }

    [Fact]
    public void Names_that_are_markers_cannot_be_created()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        Assert.Equal(Errno.EINVAL, fs.Paths.Mkdir("/.wh.x"));
        Assert.Equal(Errno.ENAMETOOLONG, fs.Paths.Mkdir("/" + new string('x', 256)));
    }

    [Fact]
    public void Aufs_form_is_written_when_device_whiteouts_are_off()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "x");
        TestLayers.WriteFile(t.Lowers[0], "d/g", "x");
        using var fs = t.Mount(configure: o => o.ForceAufsWhiteouts = true);
        Assert.False(fs.UseDeviceWhiteouts);
        fs.Paths.Unlink("/f").Ok();
        Assert.True(File.Exists(Path.Combine(t.Upper!, ".wh.f")));
        Assert.Equal(["d"], fs.List("/"));
        fs.Paths.Unlink("/d/g").Ok();
        fs.Paths.Rmdir("/d").Ok();
        fs.Paths.Mkdir("/d").Ok();
        Assert.True(File.Exists(Path.Combine(t.Upper!, "d", ".wh..wh..opq")));
        Assert.False(File.Exists(Path.Combine(t.Upper!, ".wh.d")));
        Assert.Empty(fs.List("/d"));
        fs.WriteText("/f", "again");
        Assert.False(File.Exists(Path.Combine(t.Upper!, ".wh.f")));
        Assert.Equal("again", fs.ReadText("/f"));
    }
}
