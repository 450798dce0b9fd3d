using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>
/// The branch watcher follows what a watch covers even when it changes shape: every directory below a
/// recursive watch (also ones made later), and branch directories that come into being after the
/// watch started (made directly in a lower branch, or in the upper one by copy-up).
/// </summary>
public sealed class BranchFollowTests : IDisposable
{
    private readonly TestLayers _t = new(lowers: 1);

    public void Dispose() => _t.Dispose();

    private string L(string rel) => Path.Combine(_t.Lowers[0], rel);
    private string U(string rel) => Path.Combine(_t.Upper!, rel);

    /// <summary>A recursive watch on <paramref name="path"/>, and a started branch watcher that already follows all below it.</summary>
    private static BranchWatcher FollowRecursively(UnionFileSystem fs, WatchInstance i, string path)
    {
        i.AddWatch(path, InotifyMask.AllEvents | InotifyMask.Recursive, out _);
        var bw = new BranchWatcher(fs);
        bw.Start();
        Assert.True(bw.Drain(TimeSpan.FromSeconds(10)));
        return bw;
    }

    private static List<string> Until(WatchInstance i, string marker)
    {
        var got = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var e in i.ReadEvents(TimeSpan.FromMilliseconds(100)))
            {
                if (e.Name is { } n && n.EndsWith(marker, StringComparison.Ordinal)) return got;
                got.Add($"{InotifyMask.Format(e.Mask)} {e.Name}");
            }
        }
        throw new TimeoutException($"no event for {marker}; got: {string.Join(" | ", got)}");
    }

    [Fact]
    public void DirectChangesDeepInARecursivelyWatchedSubtreeRaiseEvents()
    {
        TestLayers.WriteFile(_t.Lowers[0], "r/a/b/deep", "one");
        TestLayers.WriteFile(_t.Upper!, "r/u/f", "upper");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        using var bw = FollowRecursively(fs, i, "/r");

        File.AppendAllText(L("r/a/b/deep"), "more");
        Put(_t.Upper!, "r/u/new");
        Put(_t.Lowers[0], "r/a/b/m1");
        Assert.Equal(["MODIFY a/b/deep", "CLOSE_WRITE,CLOSE a/b/deep", "MOVED_TO u/new"], Until(i, "m1")); // Put moves a staged file in

        // A directory made directly below is followed too, with what was put in it before it was followed.
        Directory.CreateDirectory(L("r/a/b/c/d"));
        File.WriteAllText(L("r/a/b/c/d/early"), "");
        var got = Until(i, "early");
        Assert.Equal(["CREATE,ISDIR a/b/c", "CREATE,ISDIR a/b/c/d"], got);
        Assert.True(bw.Drain(TimeSpan.FromSeconds(10)));
        Put(_t.Lowers[0], "r/a/b/c/d/later");
        Put(_t.Lowers[0], "r/a/b/c/d/m3");
        // (The rest of early's own events, its write and close, may come after its IN_CREATE was read.)
        Assert.Equal(["MOVED_TO a/b/c/d/later"], Until(i, "m3").Where(e => !e.EndsWith(" a/b/c/d/early", StringComparison.Ordinal)));

        // A directory made through the union is followed as well.
        fs.Paths.Mkdir("/r/made").Ok();
        Assert.Equal(["CREATE,ISDIR made"], i.ReadEvents().Select(e => $"{InotifyMask.Format(e.Mask)} {e.Name}"));
        Assert.True(bw.Drain(TimeSpan.FromSeconds(10)));
        Put(_t.Upper!, "r/made/direct");
        Put(_t.Upper!, "r/made/m4");
        Assert.Equal(["MOVED_TO made/direct"], Until(i, "m4"));
    }

    [Fact]
    public void ALowerDirectoryMadeDirectlyAfterTheWatchStartedIsFollowed()
    {
        TestLayers.WriteFile(_t.Upper!, "x/y/z/up", "u");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/x/y/z", InotifyMask.AllEvents, out _);
        using var bw = new BranchWatcher(fs);
        bw.Start();
        // /x/y/z has no lower directory yet; mkdir -p brings one (and a name in it) into the merged view.
        Directory.CreateDirectory(L("x/y/z"));
        File.WriteAllText(L("x/y/z/from-lower"), "l");
        Put(_t.Lowers[0], "x/y/z/m1");
        // Whether the file's own write shows depends on when the watcher reached the new directory:
        // before the write (CREATE, MODIFY, CLOSE_WRITE) or after it (a CREATE found by the scan).
        var first = Until(i, "m1");
        Assert.Equal("CREATE from-lower", first.FirstOrDefault());
        Assert.All(first.Skip(1), e => Assert.Contains(e, new[] { "MODIFY from-lower", "CLOSE_WRITE,CLOSE from-lower" }));
        File.AppendAllText(L("x/y/z/from-lower"), "more");
        Put(_t.Lowers[0], "x/y/z/m2");
        Assert.Equal(["MODIFY from-lower", "CLOSE_WRITE,CLOSE from-lower"], Until(i, "m2"));
    }

    [Fact]
    public void AnUpperDirectoryMadeByCopyUpAfterTheWatchStartedIsFollowed()
    {
        TestLayers.WriteFile(_t.Lowers[0], "p/q/f", "lower");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        using var bw = FollowRecursively(fs, i, "/p");
        // Copying up /p/q/f makes the upper directories p and p/q after the watch started.
        fs.Paths.Open("/p/q/f", Lamina.Native.Sys.O_WRONLY, out var h).Ok();
        h!.Release();
        Assert.True(Directory.Exists(U("p/q")));
        Put(_t.Lowers[0], "p/q/m1");
        Until(i, "m1");
        // Direct changes in the new upper directory are seen now.
        Put(_t.Upper!, "p/q/direct");
        Put(_t.Lowers[0], "p/q/m2");
        // (The upper q's times changed when f was renamed into it during the copy-up; that may show as ATTRIB on q.)
        Assert.Equal(["MOVED_TO q/direct"], Until(i, "m2").Where(e => e != "ATTRIB,ISDIR q"));
    }

    /// <summary>
    /// A directory made through the union is followed before the mkdir returns: a direct change in it
    /// at once is reported even when the watcher's thread gets to the new directory only afterwards
    /// (held back here behind a raw event it cannot judge yet).
    /// </summary>
    [Fact]
    public void ADirectChangeInADirectoryJustMadeThroughTheUnionIsNotMissed()
    {
        TestLayers.WriteFile(_t.Upper!, "r/u/f", "upper");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        using var bw = FollowRecursively(fs, i, "/r");

        using (bw.HoldEvents())
        {
            Directory.CreateDirectory(U("r/u/busy")); // the watcher's thread reads this and waits for the hold
            Thread.Sleep(300);
            fs.Paths.Mkdir("/r/made").Ok();
            Directory.CreateDirectory(U("r/made/direct"));
        }
        Put(_t.Upper!, "r/made/m9");
        Assert.Equal(["CREATE,ISDIR made", "CREATE,ISDIR made/direct", "CREATE,ISDIR u/busy"], Until(i, "m9").Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// Makes a file in one step (written in the branch root, outside every watched directory, then renamed
    /// in), so it is one branch event (writing it in place would add an IN_MODIFY after its IN_CREATE).
    /// </summary>
    private static void Put(string layer, string rel)
    {
        string path = Path.Combine(layer, rel), staged = Path.Combine(layer, "staged-" + Path.GetFileName(path));
        File.WriteAllText(staged, "");
        File.Move(staged, path);
    }
}
