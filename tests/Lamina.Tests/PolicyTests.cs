using Lamina.Branches;
using Lamina.Native;

namespace Lamina.Tests;

/// <summary>Several writable branches (mergerfs-style lists): placement policies, ENOSPC fallback, live branch changes.</summary>
public class PolicyTests
{
    private static UnionFileSystem MountList(string branches, string? options = null) =>
        UnionFileSystem.Mount(OptionParser.ParseBranchList(branches, options));

    /// <summary>A tmpfs of <paramref name="size"/> at a new directory of <paramref name="t"/>; unmounted by the caller.</summary>
    private static string Tmpfs(TestLayers t, string name, string size)
    {
        var dir = t.Dir(name);
        if (Sys.Mount("tmpfs", dir, "tmpfs", 0, $"size={size}") != 0)
            Assert.Fail($"cannot mount tmpfs at {dir} ({Sys.LastErrno}); this test needs root");
        return dir;
    }

    [Fact]
    public void First_found_creates_in_the_first_writable_branch_and_hides_work_dirs()
    {
        using var t = new TestLayers(0, upper: false);
        var a = t.Dir("a");
        var b = t.Dir("b");
        var ro = t.Dir("ro");
        TestLayers.WriteFile(ro, "d/lower", "x");
        using var fs = MountList($"{a}=RW:{b}=RW:{ro}=RO", "category.create=ff");
        fs.WriteText("/d/new", "n");
        Assert.True(File.Exists(Path.Combine(a, "d/new")));
        Assert.Equal(["d"], fs.List("/"));
        Assert.True(Directory.Exists(Path.Combine(a, ".lamina")));
    }

    [Fact]
    public void Existing_path_first_found_prefers_a_branch_that_has_the_parent()
    {
        using var t = new TestLayers(0, upper: false);
        var a = t.Dir("a");
        var b = t.Dir("b");
        TestLayers.MakeDir(b, "only-in-b");
        using var fs = MountList($"{a}=RW:{b}=RW", "category.create=epff");
        fs.WriteText("/only-in-b/f", "x");
        Assert.True(File.Exists(Path.Combine(b, "only-in-b/f")));
        Assert.False(Directory.Exists(Path.Combine(a, "only-in-b")));
    }

    [Fact]
    public void No_create_branch_is_never_chosen_for_new_files_but_stays_writable()
    {
        using var t = new TestLayers(0, upper: false);
        var nc = t.Dir("nc");
        var rw = t.Dir("rw");
        TestLayers.WriteFile(nc, "existing", "old");
        using var fs = MountList($"{nc}=NC:{rw}=RW", "category.create=ff");
        fs.WriteText("/fresh", "x");
        Assert.True(File.Exists(Path.Combine(rw, "fresh")));
        fs.Paths.Open("/existing", Sys.O_WRONLY, out var h).Ok();
        using (h!) h!.Write("new"u8, 0, out _).Ok();
        Assert.Equal("new", File.ReadAllText(Path.Combine(nc, "existing")));
    }

    [Fact]
    public void Round_robin_spreads_new_files()
    {
        using var t = new TestLayers(0, upper: false);
        var a = t.Dir("a");
        var b = t.Dir("b");
        using var fs = MountList($"{a}=RW:{b}=RW", "category.create=rr");
        for (int i = 0; i < 6; i++) fs.WriteText($"/f{i}", "x");
        int inA = Directory.GetFiles(a).Length, inB = Directory.GetFiles(b).Length;
        Assert.Equal(6, inA + inB);
        Assert.Equal(3, inA);
    }

    [Fact]
    public void Most_free_space_and_least_used_space_pick_by_statfs()
    {
        using var t = new TestLayers(0, upper: false);
        var small = Tmpfs(t, "small", "1m");
        var big = Tmpfs(t, "big", "64m");
        try
        {
            File.WriteAllBytes(Path.Combine(big, "ballast"), new byte[2 << 20]);
            using (var fs = MountList($"{small}=RW:{big}=RW", "category.create=mfs"))
            {
                fs.WriteText("/by-mfs", "x");
                Assert.True(File.Exists(Path.Combine(big, "by-mfs")));
            }
            using (var fs = MountList($"{small}=RW:{big}=RW", "category.create=lus"))
            {
                fs.WriteText("/by-lus", "x");
                Assert.True(File.Exists(Path.Combine(small, "by-lus")));
            }
        }
        finally
        {
            Sys.Umount2(small, Sys.MNT_DETACH);
            Sys.Umount2(big, Sys.MNT_DETACH);
        }
    }

    [Fact]
    public void Enospc_during_copy_up_moves_on_to_the_next_branch()
    {
        using var t = new TestLayers(0, upper: false);
        var tiny = Tmpfs(t, "tiny", "256k");
        var roomy = t.Dir("roomy");
        var ro = t.Dir("ro");
        var data = new byte[1 << 20];
        new Random(3).NextBytes(data);
        File.WriteAllBytes(Path.Combine(ro, "big"), data);
        try
        {
            using var fs = MountList($"{tiny}=RW:{roomy}=RW:{ro}=RO", "category.create=ff");
            fs.Paths.Open("/big", Sys.O_RDWR, out var h).Ok("open for write copies up");
            h!.Dispose();
            Assert.True(File.Exists(Path.Combine(roomy, "big")));
            Assert.False(File.Exists(Path.Combine(tiny, "big")));
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(tiny, ".lamina", "work")));
            fs.Paths.ReadAllBytes("/big", out var back).Ok();
            Assert.Equal(data, back);
        }
        finally { Sys.Umount2(tiny, Sys.MNT_DETACH); }
    }

    [Fact]
    public void Branches_can_be_added_reordered_and_removed_but_not_with_open_files()
    {
        using var t = new TestLayers(0, upper: false);
        var a = t.Dir("a");
        var b = t.Dir("b");
        var extra = t.Dir("extra");
        TestLayers.WriteFile(a, "f", "from a");
        TestLayers.WriteFile(extra, "f", "from extra");
        TestLayers.WriteFile(extra, "g", "only extra");
        using var fs = MountList($"{a}=RW:{b}=RO");
        fs.AddBranch(extra, BranchMode.ReadOnly, position: 2);
        Assert.Equal("from a", fs.ReadText("/f"));
        Assert.Equal("only extra", fs.ReadText("/g"));
        fs.ReorderBranches([extra, a, b]);
        Assert.Equal("from extra", fs.ReadText("/f"));
        fs.Paths.Open("/g", Sys.O_RDONLY, out var h).Ok();
        var ex = Assert.Throws<UnionConfigException>(() => fs.RemoveBranch(extra));
        Assert.Contains(extra, ex.Message);
        Assert.Contains("open", ex.Message);
        h!.Dispose();
        fs.RemoveBranch(extra);
        Assert.Equal("from a", fs.ReadText("/f"));
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/g", out _));
        var dup = Assert.Throws<UnionConfigException>(() => fs.AddBranch(a, BranchMode.ReadOnly, 0));
        Assert.Contains(a, dup.Message);
    }

    [Fact]
    public void Statfs_sums_writable_branches()
    {
        using var t = new TestLayers(0, upper: false);
        var one = Tmpfs(t, "one", "4m");
        var two = Tmpfs(t, "two", "8m");
        var ro = t.Dir("ro");
        try
        {
            using var fs = MountList($"{one}=RW:{two}=RW:{ro}=RO");
            fs.Paths.StatFs(out var st).Ok();
            Assert.Equal((ulong)(12 << 20), st.Blocks * (ulong)st.BSize);
        }
        finally
        {
            Sys.Umount2(one, Sys.MNT_DETACH);
            Sys.Umount2(two, Sys.MNT_DETACH);
        }
    }
}
