using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>W2 and "union directories": changes made directly in branches, judged by the merged view.</summary>
public sealed class BranchWatcherTests : IDisposable
{
    private readonly TestLayers _t = new(lowers: 1);

    public void Dispose() => _t.Dispose();

    private string L(string rel) => Path.Combine(_t.Lowers[0], rel);
    private string U(string rel) => Path.Combine(_t.Upper!, rel);

    /// <summary>Events until <paramref name="marker"/> appears (a name made only to close a step), without the marker.</summary>
    private static List<string> Until(WatchInstance i, string marker)
    {
        var got = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var e in i.ReadEvents(TimeSpan.FromMilliseconds(100)))
            {
                if (e.Name == marker) return got;
                got.Add($"{InotifyMask.Format(e.Mask)} {e.Name}{(e.Cookie != 0 ? " #" : "")}");
            }
        }
        throw new TimeoutException($"no event for {marker}; got: {string.Join(" | ", got)}");
    }

    [Fact]
    public void DirectChangesInLowerAndUpperRaiseExactlyWhatTheMergedViewImplies()
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/shadowed", "lower");
        TestLayers.WriteFile(_t.Lowers[0], "d/lowonly", "lower");
        TestLayers.WriteFile(_t.Upper!, "d/shadowed", "upper");
        TestLayers.WriteFile(_t.Upper!, "d/uponly", "upper");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/d", InotifyMask.AllEvents, out _);
        using var bw = new BranchWatcher(fs);
        bw.Start();
        int step = 0;
        string Mark(string layerDir) { string m = $"marker{step++}"; File.WriteAllText(Path.Combine(layerDir, m), ""); return m; }

        File.AppendAllText(L("d/shadowed"), "more"); // under the upper copy: invisible
        Assert.Equal([], Until(i, Mark(L("d"))).Where(e => !e.Contains("marker")));

        File.AppendAllText(L("d/lowonly"), "more");
        Assert.Equal(["MODIFY lowonly", "CLOSE_WRITE,CLOSE lowonly"], Until(i, Mark(U("d"))).Where(e => !e.Contains("marker")));

        // A file moved in from a directory nobody follows: IN_MOVED_TO alone, as inotify reports it.
        // (Each step waits for its events before the next.)
        File.WriteAllText(L("staged"), "n");
        File.Move(L("staged"), L("d/new"));
        Assert.Equal(["MOVED_TO new #"], Until(i, Mark(L("d"))).Where(e => !e.Contains("marker")));
        File.WriteAllText(U("staged"), "shadowing copy");
        File.Move(U("staged"), U("d/new")); // a new upper file over a visible lower one: the content changed
        Assert.Equal(["MODIFY new"], Until(i, Mark(L("d"))).Where(e => !e.Contains("marker")));

        File.Delete(U("d/shadowed")); // uncovers the lower file: modified, not deleted
        Assert.Equal(["MODIFY shadowed"], Until(i, Mark(L("d"))).Where(e => !e.Contains("marker")));

        File.Move(L("d/lowonly"), L("d/moved"));
        Assert.Equal(["MOVED_FROM lowonly #", "MOVED_TO moved #"], Until(i, Mark(U("d"))).Where(e => !e.Contains("marker")));

        File.Delete(U("d/uponly"));
        Directory.CreateDirectory(U("d/sub"));
        Assert.Equal(["DELETE uponly", "CREATE,ISDIR sub"], Until(i, Mark(L("d"))).Where(e => !e.Contains("marker")));

        if (fs.UseDeviceWhiteouts)
        {
            TestLayers.Whiteout(_t.Upper!, "d/moved"); // hides the lower file
            Assert.Equal(["DELETE moved"], Until(i, Mark(U("d"))).Where(e => !e.Contains("marker")));
        }
    }

    [Fact]
    public void LowerNamesUnderAnOpaqueDirectoryAreNoEvents()
    {
        TestLayers.MakeDir(_t.Lowers[0], "o");
        TestLayers.MakeDir(_t.Upper!, "o");
        TestLayers.Opaque(_t.Upper!, "o");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/o", InotifyMask.AllEvents, out _);
        using var bw = new BranchWatcher(fs);
        bw.Start();
        File.WriteAllText(L("o/hidden"), "x");
        File.WriteAllText(U("o/marker"), "");
        Assert.Equal([], Until(i, "marker"));
    }

    /// <summary>Copy-up is invisible even to the branch watcher: the upper copy appearing is the engine's doing.</summary>
    [Fact]
    public void CopyUpThroughTheUnionRaisesOnlyTheOperationsOwnEvents()
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/f", "lower");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/d", InotifyMask.AllEvents, out int wd);
        using var bw = new BranchWatcher(fs);
        bw.Start();
        fs.Paths.Open("/d/f", Sys.O_WRONLY, out var h).Ok();
        h!.Write("new"u8, 0, out _).Ok();
        h.Release();
        fs.Paths.Mkdir("/d/newdir").Ok();
        Thread.Sleep(500); // room for the branch echoes to arrive
        var got = i.ReadEvents().Select(e => $"{InotifyMask.Format(e.Mask)} {e.Name}").ToList();
        Assert.Equal(["OPEN f", "MODIFY f", "CLOSE_WRITE,CLOSE f", "CREATE,ISDIR newdir"], got);
        Assert.True(Interlocked.Read(ref bw.BranchEvents) > 0, "the branch watcher saw the echoes");
    }
}

/// <summary>W4: branches whose changes inotify cannot see (network filesystems) are covered by a bounded periodic scan.</summary>
public sealed class BranchScanTests : IDisposable
{
    private readonly TestLayers _t = new(lowers: 1);

    public void Dispose() => _t.Dispose();

    [Fact]
    public void PeriodicScanFindsChangesInotifyDidNotReport()
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/f", "one");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/d", InotifyMask.AllEvents, out _);
        using var bw = new BranchWatcher(fs) { ScanAllBranches = true, ScanInterval = TimeSpan.FromMilliseconds(100) };
        bw.Start();
        // ScanAllBranches: no inotify on the branches at all, as for a change made on another NFS client;
        // only the periodic comparison with the snapshot can find these.
        File.WriteAllText(Path.Combine(_t.Lowers[0], "d", "g"), "new");
        File.WriteAllText(Path.Combine(_t.Lowers[0], "d", "f"), "changed");
        var got = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < deadline && got.Count < 2)
            got.AddRange(i.ReadEvents(TimeSpan.FromMilliseconds(200)).Select(e => $"{InotifyMask.Format(e.Mask)} {e.Name}"));
        Assert.Contains("CREATE g", got);
        Assert.Contains("MODIFY f", got);
        Assert.Equal(0, Interlocked.Read(ref bw.BranchEvents)); // none of it came from inotify
    }
}
