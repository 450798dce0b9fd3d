using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>Watches keyed by union node, fed by the engine's own operations (W1/W3, W5, copy-up is invisible).</summary>
public sealed class UnionWatchTests : IDisposable
{
    private readonly TestLayers _t = new(lowers: 1);

    public void Dispose() => _t.Dispose();

    private static WatchEvent Ev(int wd, uint mask, string? name = null, uint cookie = 0) => new(wd, mask, cookie, name);

    private static List<WatchEvent> Drain(WatchInstance i) => i.ReadEvents();

    /// <summary>The seed scenario: watch a lower file, open it for writing (copy-up), write: IN_MODIFY on the same wd, nothing for the copy-up.</summary>
    [Fact]
    public void CopyUpKeepsTheWatchAndRaisesNothingOfItsOwn()
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/f", "lower");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        Assert.Equal(Errno.None, i.AddWatch("/d/f", InotifyMask.AllEvents, out int fileWd));
        Assert.Equal(Errno.None, i.AddWatch("/d", InotifyMask.Create | InotifyMask.Delete | InotifyMask.Move | InotifyMask.Modify, out int dirWd));

        Assert.Equal(Errno.None, fs.Paths.Open("/d/f", Sys.O_WRONLY, out var h));
        Assert.True(File.Exists(Path.Combine(_t.Upper!, "d/f")), "the open copied the file up");
        Assert.Equal(Errno.None, h!.Write("upper"u8, 0, out _));
        h.Release();

        Assert.Equal(
            [Ev(fileWd, InotifyMask.Open), Ev(fileWd, InotifyMask.Modify), Ev(dirWd, InotifyMask.Modify, "f"), Ev(fileWd, InotifyMask.CloseWrite)],
            Drain(i));
    }

    [Fact]
    public void NamespaceOperationsThroughTheUnion()
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/lowerfile", "x");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/d", InotifyMask.Create | InotifyMask.Delete | InotifyMask.Move | InotifyMask.Attrib, out int d);
        i.AddWatch("/d/lowerfile", InotifyMask.AllEvents, out int lf);

        fs.Paths.Mkdir("/d/sub").Ok();
        fs.Paths.WriteAllBytes("/d/new", "n"u8).Ok();
        fs.Paths.Rename("/d/new", "/d/renamed").Ok();
        fs.Paths.Chmod("/d/lowerfile", 0x1ff).Ok();
        fs.Paths.Unlink("/d/lowerfile").Ok(); // a whiteout takes its place: never seen
        fs.Paths.Rmdir("/d/sub").Ok();

        var got = Drain(i);
        Assert.Equal(Ev(d, InotifyMask.Create | InotifyMask.IsDir, "sub"), got[0]);
        Assert.Equal(Ev(d, InotifyMask.Create, "new"), got[1]);
        Assert.Equal(InotifyMask.MovedFrom, got[2].Mask);
        Assert.Equal("new", got[2].Name);
        Assert.Equal(Ev(d, InotifyMask.MovedTo, "renamed", got[2].Cookie), got[3]);
        Assert.NotEqual(0u, got[2].Cookie);
        Assert.Equal(
            [Ev(lf, InotifyMask.Attrib), Ev(d, InotifyMask.Attrib, "lowerfile"),
             Ev(lf, InotifyMask.Attrib), Ev(lf, InotifyMask.DeleteSelf), Ev(lf, InotifyMask.Ignored), Ev(d, InotifyMask.Delete, "lowerfile"),
             Ev(d, InotifyMask.Delete | InotifyMask.IsDir, "sub")],
            got.Skip(4));
        Assert.DoesNotContain(got, e => e.Name is { } n && (n.StartsWith(".wh.", StringComparison.Ordinal) || n.Contains("work")));
    }

    [Fact]
    public void WatchFollowsItsObjectAcrossRenameAndCopyUpOfTheParent()
    {
        TestLayers.WriteFile(_t.Lowers[0], "a/b/f", "x");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/a/b/f", InotifyMask.Modify | InotifyMask.MoveSelf, out int wd);
        fs.Paths.Rename("/a/b", "/a/c").Ok(); // lower directory: copy-up plus redirect underneath
        fs.Paths.WriteAllBytes("/a/c/f", "y"u8).Ok();
        Assert.Equal([Ev(wd, InotifyMask.Modify)], Drain(i));
        Assert.Equal("a/c/f", fs.PathOfNode((UnionNode)i.FindWatch(wd)!.Target));
    }

    [Fact]
    public void RecursiveWatchReportsRelativeUnionPaths()
    {
        TestLayers.MakeDir(_t.Lowers[0], "top/x/y");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/top", InotifyMask.Create | InotifyMask.Recursive, out int wd);
        fs.Paths.WriteAllBytes("/top/x/y/deep", "1"u8).Ok();
        fs.Paths.WriteAllBytes("/top/here", "1"u8).Ok();
        Assert.Equal([Ev(wd, InotifyMask.Create, "x/y/deep"), Ev(wd, InotifyMask.Create, "here")], Drain(i));
    }

    [Fact]
    public void ExclUnlinkDropsEventsOfUnlinkedChildren()
    {
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        using var j = fs.Watches.CreateInstance();
        i.AddWatch("/", InotifyMask.Modify | InotifyMask.ExclUnlink, out int wi);
        j.AddWatch("/", InotifyMask.Modify, out int wj);
        fs.Paths.Create("/tmpfile", 0x1a4, out var h).Ok();
        fs.Paths.Unlink("/tmpfile").Ok();
        h!.Write("x"u8, 0, out _).Ok();
        h.Release();
        Assert.Empty(Drain(i));
        Assert.Equal([Ev(wj, InotifyMask.Modify, "tmpfile")], Drain(j));
    }

    [Fact]
    public void HighLevelWatcherPairsRenames()
    {
        TestLayers.WriteFile(_t.Lowers[0], "w/old", "x");
        using var fs = _t.Mount();
        var changes = new List<UnionChange>();
        var done = new ManualResetEventSlim();
        using (var watcher = fs.Watches.CreateWatcher("/w"))
        {
            watcher.Any += c => { lock (changes) changes.Add(c); if (c.Path == "w/last") done.Set(); };
            fs.Paths.Rename("/w/old", "/w/new").Ok();
            fs.Paths.WriteAllBytes("/w/last", "1"u8).Ok();
            Assert.True(done.Wait(TimeSpan.FromSeconds(5)));
        }
        lock (changes)
        {
            Assert.Equal(new UnionChange(UnionChangeKind.Renamed, "w/new", "w/old", false, InotifyMask.MovedTo), changes[0]);
            Assert.Equal(UnionChangeKind.Created, changes[1].Kind);
        }
    }

    [Fact]
    public void DisposingTheUnionUnmountsEveryWatch()
    {
        var fs = _t.Mount();
        var i = fs.Watches.CreateInstance();
        i.AddWatch("/", InotifyMask.Create, out int wd);
        _t.Unmount(fs);
        Assert.Equal([Ev(wd, InotifyMask.Unmount), Ev(wd, InotifyMask.Ignored)], Drain(i));
    }
}
