using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>inotify's table and queue semantics on an instance with in-memory targets.</summary>
public sealed class WatchInstanceTests
{
    private readonly MemoryTargets _targets = new();

    private static WatchEvent Ev(int wd, uint mask, string? name = null, uint cookie = 0) => new(wd, mask, cookie, name);

    [Fact]
    public void MaskAddMaskCreateAndReplacement()
    {
        using var i = new WatchInstance(_targets);
        Assert.Equal(Errno.None, i.AddWatch("a", InotifyMask.Modify, out int wd));
        Assert.Equal(Errno.None, i.AddWatch("a", InotifyMask.Attrib, out int again));
        Assert.Equal(wd, again);
        Assert.Equal(InotifyMask.Attrib, i.FindWatch(wd)!.Mask);
        Assert.Equal(Errno.None, i.AddWatch("a", InotifyMask.Modify | InotifyMask.MaskAdd, out _));
        Assert.Equal(InotifyMask.Attrib | InotifyMask.Modify, i.FindWatch(wd)!.Mask);
        Assert.Equal(Errno.EEXIST, i.AddWatch("a", InotifyMask.Open | InotifyMask.MaskCreate, out _));
        Assert.Equal(Errno.EINVAL, i.AddWatch("b", InotifyMask.Open | InotifyMask.MaskCreate | InotifyMask.MaskAdd, out _));
        Assert.Equal(Errno.EINVAL, i.AddWatch("b", 0, out _));
        Assert.Equal(Errno.ENOTDIR, i.AddWatch("b", InotifyMask.Open | InotifyMask.OnlyDir, out _));
        Assert.Equal(Errno.None, i.AddWatch("dir/", InotifyMask.Open | InotifyMask.OnlyDir, out _));
        Assert.Equal(Errno.ENOENT, i.AddWatch("missing", InotifyMask.Open, out _));
        Assert.Equal(2, _targets.Pins); // exactly the two watches hold their targets
    }

    [Fact]
    public void MaskFiltersAndRemoveQueuesIgnored()
    {
        using var i = new WatchInstance(_targets);
        i.AddWatch("a", InotifyMask.Modify, out int wd);
        var w = i.FindWatch(wd)!;
        i.Deliver(w, InotifyMask.Attrib);
        i.Deliver(w, InotifyMask.Modify);
        Assert.Equal(Errno.None, i.RemoveWatch(wd));
        Assert.Equal(Errno.EINVAL, i.RemoveWatch(wd));
        Assert.Equal([Ev(wd, InotifyMask.Modify), Ev(wd, InotifyMask.Ignored)], i.ReadEvents());
        Assert.Equal(0, _targets.Pins);
    }

    [Fact]
    public void IdenticalConsecutiveEventsMergeOnlyWhileUnread()
    {
        using var i = new WatchInstance(_targets);
        i.AddWatch("d/", InotifyMask.AllEvents, out int wd);
        var w = i.FindWatch(wd)!;
        i.Deliver(w, InotifyMask.Modify, 0, "f");
        i.Deliver(w, InotifyMask.Modify, 0, "f");
        i.Deliver(w, InotifyMask.Modify, 0, "g");
        i.Deliver(w, InotifyMask.Modify, 0, "f");
        Assert.Equal(3, i.ReadEvents().Count);
        i.Deliver(w, InotifyMask.Modify, 0, "f"); // the last one was read: no merge
        Assert.Single(i.ReadEvents());
    }

    [Fact]
    public void FullQueueGetsOneOverflowEventAndDropsTheRest()
    {
        using var i = new WatchInstance(_targets, maxQueuedEvents: 4);
        i.AddWatch("d/", InotifyMask.AllEvents, out int wd);
        var w = i.FindWatch(wd)!;
        for (int n = 0; n < 10; n++) i.Deliver(w, InotifyMask.Create, 0, $"f{n}");
        var got = i.ReadEvents();
        Assert.Equal(5, got.Count);
        Assert.Equal(Ev(-1, InotifyMask.QOverflow), got[4]);
        Assert.Equal("f3", got[3].Name);
        for (int n = 0; n < 6; n++) i.Deliver(w, InotifyMask.Delete, 0, $"f{n}");
        Assert.Equal(InotifyMask.QOverflow, i.ReadEvents()[^1].Mask); // a new overflow once the old one was read
    }

    [Fact]
    public void OneShotEndsAfterTheFirstEvent()
    {
        using var i = new WatchInstance(_targets);
        i.AddWatch("a", InotifyMask.Modify | InotifyMask.Attrib | InotifyMask.OneShot, out int wd);
        var w = i.FindWatch(wd)!;
        i.Deliver(w, InotifyMask.Open); // not in the mask: does not count
        i.Deliver(w, InotifyMask.Modify);
        i.Deliver(w, InotifyMask.Attrib);
        Assert.Equal([Ev(wd, InotifyMask.Modify), Ev(wd, InotifyMask.Ignored)], i.ReadEvents());
        Assert.Null(i.FindWatch(wd));
    }

    [Fact]
    public void UnmountDeliversUnmountThenIgnoredWhateverTheMask()
    {
        using var i = new WatchInstance(_targets);
        i.AddWatch("a", InotifyMask.Modify, out int wd);
        i.Unmounted();
        Assert.Equal([Ev(wd, InotifyMask.Unmount), Ev(wd, InotifyMask.Ignored)], i.ReadEvents());
    }

    [Fact]
    public async Task ReadWaitsForTheFirstEvent()
    {
        using var i = new WatchInstance(_targets);
        i.AddWatch("a", InotifyMask.Modify, out int wd);
        var w = i.FindWatch(wd)!;
        var reader = Task.Run(() => i.ReadEvents(TimeSpan.FromSeconds(10)));
        Thread.Sleep(100);
        Assert.False(reader.IsCompleted);
        i.Deliver(w, InotifyMask.Modify);
        Assert.Single(await reader);
        Assert.Empty(i.ReadEvents(TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public void CheckpointKeepsWdsCursorPendingEventsAndNamesWithOddCharacters()
    {
        var src = new WatchInstance(_targets);
        src.SetNextWd(1000);
        src.AddWatch("dir with space/", InotifyMask.Create | InotifyMask.ExclUnlink, out int a);
        src.AddWatch("tab\tand\nnewline", InotifyMask.Modify | InotifyMask.OneShot, out int b);
        src.AddWatch("gone", InotifyMask.Modify, out int c);
        src.RemoveWatch(c);
        src.Deliver(src.FindWatch(a)!, InotifyMask.Create, 0, "ü name");
        var text = new StringWriter();
        src.Checkpoint(text);

        var dst = new WatchInstance(new MemoryTargets());
        Assert.Equal(Errno.None, dst.Restore(new StringReader(text.ToString()), out int restored));
        Assert.Equal(2, restored);
        Assert.Equal(src.WdCursor, dst.WdCursor);
        Assert.Equal("tab\tand\nnewline", dst.FindWatch(b)!.Path);
        Assert.Equal(InotifyMask.Modify | InotifyMask.OneShot, dst.FindWatch(b)!.Mask);
        Assert.Equal([Ev(c, InotifyMask.Ignored), Ev(a, InotifyMask.Create, "ü name")], dst.ReadEvents());
        Assert.Equal(Errno.None, dst.AddWatch("next", InotifyMask.Modify, out int next));
        Assert.Equal(1003, next);
    }

    [Fact]
    public void RestoreOfAPathThatNoLongerExistsEndsThatWatchAsADeletionDoes()
    {
        // wd 7 asked for IN_MODIFY only, wd 9 also for IN_DELETE_SELF (0x400): as with the kernel,
        // only the second hears of the deletion, and both end with IN_IGNORED.
        var text = "lamina-watches 1\ncursor 10\nmax-queued 16384\nwatch 7 2 missing%2Fx\nwatch 5 2 here\nwatch 9 402 missing-too\n";
        var dst = new WatchInstance(new MemoryTargets());
        Assert.Equal(Errno.None, dst.Restore(new StringReader(text), out int restored));
        Assert.Equal(1, restored);
        Assert.Equal([Ev(7, InotifyMask.Ignored), Ev(9, InotifyMask.DeleteSelf), Ev(9, InotifyMask.Ignored)], dst.ReadEvents());
        Assert.Equal(Errno.EINVAL, new WatchInstance(new MemoryTargets()).Restore(new StringReader("garbage\n"), out _));
    }

    [Fact]
    public void EventNamesPrintAsInotifywaitPrintsThem()
    {
        Assert.Equal("CLOSE_WRITE,CLOSE", InotifyMask.Format(InotifyMask.CloseWrite));
        Assert.Equal("CLOSE_NOWRITE,CLOSE,ISDIR", InotifyMask.Format(InotifyMask.CloseNoWrite | InotifyMask.IsDir));
        Assert.Equal("CREATE,ISDIR", InotifyMask.Format(InotifyMask.Create | InotifyMask.IsDir));
        Assert.Equal("MOVED_TO", InotifyMask.Format(InotifyMask.MovedTo));
        Assert.True(InotifyMask.TryParse("close_write,moved_to,Create", out uint m));
        Assert.Equal(InotifyMask.CloseWrite | InotifyMask.MovedTo | InotifyMask.Create, m);
        Assert.True(InotifyMask.TryParse("move,close", out m));
        Assert.Equal(InotifyMask.Move | InotifyMask.Close, m);
        Assert.False(InotifyMask.TryParse("bogus", out _));
    }
}
