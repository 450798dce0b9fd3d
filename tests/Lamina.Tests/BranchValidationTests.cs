using Lamina.Branches;

namespace Lamina.Tests;

public class BranchValidationTests
{
    private static UnionConfigException Fails(string options)
    {
        return Assert.Throws<UnionConfigException>(() => UnionFileSystem.MountOverlay(options).Dispose());
    }

    [Fact]
    public void Missing_branch_is_named()
    {
        using var t = new TestLayers(1);
        var missing = Path.Combine(t.Root, "nope");
        var ex = Fails($"lowerdir={missing}:{t.Lowers[0]},upperdir={t.Upper},workdir={t.Work}");
        Assert.Contains(missing, ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void Branch_that_is_a_file_is_named()
    {
        using var t = new TestLayers(1);
        var file = Path.Combine(t.Root, "file");
        File.WriteAllText(file, "x");
        var ex = Fails($"lowerdir={file},upperdir={t.Upper},workdir={t.Work}");
        Assert.Contains(file, ex.Message);
        Assert.Contains("not a directory", ex.Message);
    }

    [Fact]
    public void Nested_branches_are_refused()
    {
        using var t = new TestLayers(1);
        var inner = t.Dir("lower0/inner");
        var ex = Fails($"lowerdir={inner}:{t.Lowers[0]},upperdir={t.Upper},workdir={t.Work}");
        Assert.Contains(inner, ex.Message);
        Assert.Contains("inside", ex.Message);
    }

    [Fact]
    public void Workdir_inside_upper_is_refused()
    {
        using var t = new TestLayers(1);
        var w = t.Dir("upper/w");
        var ex = Fails($"lowerdir={t.Lowers[0]},upperdir={t.Upper},workdir={w}");
        Assert.Contains(w, ex.Message);
    }

    [Fact]
    public void Upper_and_work_on_different_filesystems_are_refused()
    {
        using var t = new TestLayers(1);
        var tmpfs = t.Dir("tmpfs");
        if (Native.Sys.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=1m") != 0)
        {
            Assert.Fail($"cannot mount tmpfs here ({Native.Sys.LastErrno}); this test needs root");
        }
        try
        {
            var ex = Fails($"lowerdir={t.Lowers[0]},upperdir={t.Upper},workdir={tmpfs}");
            Assert.Contains("different filesystems", ex.Message);
            Assert.Contains(tmpfs, ex.Message);
        }
        finally { Native.Sys.Umount2(tmpfs, 0); }
    }

    [Fact]
    public void Workdir_in_use_by_another_union_is_refused()
    {
        using var t = new TestLayers(1);
        using var first = t.Mount();
        var ex = Fails(t.OverlayOptions());
        Assert.Contains("in use", ex.Message);
        Assert.Contains(t.Work!, ex.Message);
    }

    [Fact]
    public void Stale_work_temporaries_are_cleaned_at_mount()
    {
        using var t = new TestLayers(1);
        var stale = Path.Combine(t.Work!, "work", "#dead");
        Directory.CreateDirectory(stale);
        File.WriteAllText(Path.Combine(stale, "half"), "x");
        using var fs = t.Mount();
        Assert.False(Directory.Exists(stale));
    }
}

public class UnreadableBranchTests
{
    [Fact]
    public void Unreadable_branch_is_named()
    {
        using var t = new TestLayers(1);
        var locked = t.Dir("locked");
        Assert.Equal(0, Native.Sys.FChmodAt(Native.Sys.AT_FDCWD, locked, 0x1C0, 0));
        Assert.Equal(0, Native.Sys.FChmodAt(Native.Sys.AT_FDCWD, t.Root, 0x1ED, 0));
        // Open the branches as an unprivileged filesystem identity, on a thread of its own.
        UnionConfigException? ex = null;
        var thread = new Thread(() =>
        {
            Native.Sys.SetFsUid(65534);
            Native.Sys.SetFsGid(65534);
            try { UnionFileSystem.MountOverlay($"lowerdir={locked}:{t.Lowers[0]}").Dispose(); }
            catch (UnionConfigException e) { ex = e; }
        });
        thread.Start();
        thread.Join();
        Assert.NotNull(ex);
        Assert.Contains(locked, ex!.Message);
        Assert.Contains("not readable", ex.Message);
    }
}
