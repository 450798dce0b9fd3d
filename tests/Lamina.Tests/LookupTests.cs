using Lamina.Native;

namespace Lamina.Tests;

public class LookupTests
{
    [Fact]
    public void Upper_shadows_lower_and_layers_merge()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[1], "d/a", "l1-a");
        TestLayers.WriteFile(t.Lowers[1], "d/b", "l1-b");
        TestLayers.WriteFile(t.Lowers[0], "d/b", "l0-b");
        TestLayers.WriteFile(t.Upper!, "d/c", "up-c");
        using var fs = t.Mount();
        Assert.Equal(["a", "b", "c"], fs.List("/d"));
        Assert.Equal("l1-a", fs.ReadText("/d/a"));
        Assert.Equal("l0-b", fs.ReadText("/d/b"));
        Assert.Equal("up-c", fs.ReadText("/d/c"));
    }

    [Fact]
    public void Device_whiteout_hides_lower_and_is_not_listed()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "x", "lower");
        TestLayers.WriteFile(t.Lowers[0], "y", "lower");
        TestLayers.Whiteout(t.Upper!, "x");
        using var fs = t.Mount();
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/x", out _));
        Assert.Equal(["y"], fs.List("/"));
    }

    [Fact]
    public void Whiteout_in_middle_layer_hides_only_below()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[1], "x", "bottom");
        TestLayers.Whiteout(t.Lowers[0], "x");
        using var fs = t.Mount();
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/x", out _));
        TestLayers.WriteFile(t.Upper!, "x", "top");
        Assert.Equal("top", fs.ReadText("/x"));
    }

    [Fact]
    public void Aufs_whiteouts_and_opaque_marker_are_read_and_hidden()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "gone", "lower");
        TestLayers.WriteFile(t.Lowers[0], "d/hidden", "lower");
        TestLayers.WriteFile(t.Upper!, ".wh..wh.aufs", ""); // an aufs branch says so at its root
        TestLayers.WriteFile(t.Upper!, ".wh.gone", "");
        TestLayers.WriteFile(t.Upper!, "d/mine", "upper");
        TestLayers.WriteFile(t.Upper!, "d/.wh..wh..opq", "");
        using var fs = t.Mount();
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/gone", out _));
        Assert.Equal(["d"], fs.List("/"));
        Assert.Equal(["mine"], fs.List("/d"));
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/.wh.gone", out _));
    }

    [Fact]
    public void Xattr_whiteouts_need_the_parent_marker()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/x", "lower");
        TestLayers.WriteFile(t.Lowers[0], "d/y", "lower");
        TestLayers.WriteFile(t.Upper!, "d/x", "");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d/x"), "trusted.overlay.whiteout", "");
        TestLayers.WriteFile(t.Upper!, "d/y", "");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d/y"), "trusted.overlay.whiteout", "");
        using (var fs = t.Mount())
        {
            // Without the parent marker these are ordinary empty files.
            Assert.Equal(["x", "y"], fs.List("/d"));
            Assert.Equal("", fs.ReadText("/d/x"));
        }
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d"), "trusted.overlay.opaque", "x");
        using (var fs = t.Mount())
        {
            Assert.Empty(fs.List("/d"));
            Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/d/x", out _));
        }
    }

    [Fact]
    public void Opaque_directory_cuts_lower_layers()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/old", "lower");
        TestLayers.WriteFile(t.Upper!, "d/new", "upper");
        TestLayers.Opaque(t.Upper!, "d");
        using var fs = t.Mount();
        Assert.Equal(["new"], fs.List("/d"));
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/d/old", out _));
    }

    [Fact]
    public void Userxattr_markers_are_used_with_userxattr()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/old", "lower");
        TestLayers.WriteFile(t.Upper!, "d/new", "upper");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d"), "user.overlay.opaque", "y");
        using (var fs = t.Mount())
            Assert.Equal(["new", "old"], fs.List("/d")); // trusted.* reading ignores user.overlay.*
        using (var fs = t.Mount("userxattr"))
            Assert.Equal(["new"], fs.List("/d"));
    }

    [Fact]
    public void Redirect_points_a_directory_at_its_lower_layers()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "old/f", "from-lower");
        TestLayers.Whiteout(t.Upper!, "old");
        TestLayers.WriteFile(t.Upper!, "new/g", "upper");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "new"), "trusted.overlay.redirect", "/old");
        using var fs = t.Mount();
        Assert.Equal(["new"], fs.List("/"));
        Assert.Equal(["f", "g"], fs.List("/new"));
        Assert.Equal("from-lower", fs.ReadText("/new/f"));
    }

    [Fact]
    public void Relative_redirect_is_a_name_in_the_same_parent()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "p/old/f", "x");
        TestLayers.Whiteout(t.Upper!, "p/old");
        TestLayers.MakeDir(t.Upper!, "p/new");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "p/new"), "trusted.overlay.redirect", "old");
        using var fs = t.Mount();
        Assert.Equal(["new"], fs.List("/p"));
        Assert.Equal(["f"], fs.List("/p/new"));
    }

    [Fact]
    public void Non_directory_above_directory_hides_it()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/f", "x");
        TestLayers.WriteFile(t.Upper!, "d", "now a file");
        using var fs = t.Mount();
        Assert.Equal("now a file", fs.ReadText("/d"));
        Assert.Equal(Errno.ENOTDIR, fs.Paths.Stat("/d/f", out _));
    }

    [Fact]
    public void Markers_never_show_in_listxattr()
    {
        using var t = new TestLayers(1);
        TestLayers.MakeDir(t.Upper!, "d");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d"), "trusted.overlay.opaque", "y");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d"), "trusted.lamina.origin", "12345678");
        TestLayers.SetXattr(Path.Combine(t.Upper!, "d"), "user.visible", "1");
        using var fs = t.Mount();
        fs.Paths.ListXattr("/d", out var names).Ok();
        Assert.Equal(["user.visible"], names);
        Assert.Equal(Errno.ENODATA, fs.Paths.GetXattr("/d", "trusted.overlay.opaque", out _));
        Assert.Equal(Errno.EPERM, fs.Paths.SetXattr("/d", "trusted.overlay.opaque", "n"u8));
    }

    [Fact]
    public void Symlink_in_a_branch_is_never_followed()
    {
        using var t = new TestLayers(1);
        var outside = t.Dir("outside");
        File.WriteAllText(Path.Combine(outside, "secret"), "secret");
        File.CreateSymbolicLink(Path.Combine(t.Lowers[0], "link"), outside);
        using var fs = t.Mount();
        var st = fs.StatOk("/link");
        Assert.True(st.IsSymlink);
        Assert.Equal(Errno.ENOTDIR, fs.Paths.Stat("/link/secret", out _));
        fs.Paths.ReadLink("/link", out var target).Ok();
        Assert.Equal(outside, target);
    }

    [Fact]
    public void Path_of_path_max_bytes_works()
    {
        using var t = new TestLayers(1);
        // Components of 200 bytes nest to > 4000 bytes below the union root; the absolute path in the
        // branch is longer than PATH_MAX, which only works because nothing joins absolute paths.
        using var fs = t.Mount();
        const int target = 4095; // PATH_MAX minus the terminating NUL
        string path = "";
        while (target - path.Length - 1 > 255)
        {
            int len = Math.Min(200, target - path.Length - 1 - 1 - 100);
            path += "/" + new string('d', len);
            fs.Paths.Mkdir(path).Ok("mkdir");
        }
        string file = path + "/" + new string('f', target - path.Length - 1);
        Assert.Equal(target, file.Length);
        fs.WriteText(file, "deep");
        Assert.Equal("deep", fs.ReadText(file));
        fs.Paths.Unlink(file).Ok("unlink");
    }

    [Fact]
    public void Direct_branch_changes_are_seen_without_stale_caches()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/a", "1");
        using var fs = t.Mount();
        var changes = new List<BranchChange>();
        using var recording = fs.Observe(new Recorder(branchChanged: changes.Add));
        Assert.Equal(["a"], fs.List("/d"));
        TestLayers.WriteFile(t.Lowers[0], "d/b", "2");
        Assert.Equal(["a", "b"], fs.List("/d"));
        Assert.Equal("2", fs.ReadText("/d/b"));
        // Keep a node on /d/a, then replace the file behind the engine's back.
        fs.Lookup(fs.Root, "d", out var d).Ok();
        fs.Lookup(d!, "a", out var a).Ok();
        // Write the replacement first so it cannot reuse the old inode number.
        TestLayers.WriteFile(t.Lowers[0], "d/a.new", "replaced");
        File.Move(Path.Combine(t.Lowers[0], "d/a.new"), Path.Combine(t.Lowers[0], "d/a"), overwrite: true);
        Assert.Equal(Errno.ESTALE, fs.GetAttr(a!, out _));
        Assert.Contains(changes, c => c.Node == a);
        fs.Lookup(d!, "a", out var a2).Ok();
        Assert.NotEqual(a!.NodeId, a2!.NodeId);
        Assert.Equal("replaced", fs.ReadText("/d/a"));
    }
}
