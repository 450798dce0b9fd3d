using System.Collections.Concurrent;
using System.Diagnostics;
using Lamina.Native;
using Lamina.Tracking;

namespace Lamina.Tests.Tracking;

/// <summary>
/// The branch tracker in-process: what a change made by another process in a branch invalidates, and
/// that the engine's own changes (this process) are echoes that invalidate nothing.
/// </summary>
public sealed class BranchTrackerTests
{
    private sealed class Recorder : IKernelCacheInvalidator
    {
        public readonly ConcurrentQueue<string> Calls = new();
        public void EntryChanged(UnionNode dir, string name) => Calls.Enqueue($"entry {dir.Name}/{name}");
        public void EntryDeleted(UnionNode dir, string name, UnionNode? child) => Calls.Enqueue($"deleted {dir.Name}/{name}");
        public void ObjectChanged(UnionNode node) => Calls.Enqueue($"object {node.Name}");
        public void AttributesChanged(UnionNode node) => Calls.Enqueue($"attributes {node.Name}");
        public void NamesLost() => Calls.Enqueue("names lost");
    }

    /// <summary>Runs a shell command: a process other than the engine's makes the change.</summary>
    private static void Outside(string command)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    private static List<string> Until(Recorder r, string expected, BranchTracker tracker)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(5))
        {
            tracker.Drain(TimeSpan.FromSeconds(1));
            if (r.Calls.Contains(expected)) return [.. r.Calls];
            Thread.Sleep(10);
        }
        Assert.Fail($"no '{expected}' among: {string.Join(" | ", r.Calls)}");
        return [];
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Direct_changes_invalidate_names_and_objects_and_engine_changes_do_not(int lowers)
    {
        using var t = new TestLayers(lowers);
        TestLayers.WriteFile(t.Lowers[^1], "d/f", "lower");
        TestLayers.MakeDir(t.Lowers[0], "d");
        using var fs = t.Mount();
        var r = new Recorder();
        using var tracker = new BranchTracker(fs, r);
        Assert.Null(tracker.Unavailable);
        tracker.Start();
        fs.Lookup(fs.Root, "d", out var d).Ok();
        fs.Lookup(d!, "f", out var f).Ok();
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        Assert.True(d!.IsTracked, "d is not tracked");
        Assert.Equal(lowers + 1 + (lowers == 1 ? 1 : 2), tracker.Report().Marks); // the root in every branch, d in the top and bottom lower

        // The engine's own changes: echoes. (The first one copies d up, and the names in its new upper
        // directory are invalidated once, in case one was made there before the mark: not an echo.)
        fs.WriteText("/d/first", "engine");
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        r.Calls.Clear();
        fs.WriteText("/d/mine", "engine");
        fs.Paths.Unlink("/d/mine").Ok();
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        Thread.Sleep(100);
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        Assert.Empty(r.Calls);
        Assert.True(tracker.Report().Echoes > 0);

        Outside($"echo more >> '{Path.Combine(t.Lowers[^1], "d/f")}'");
        Until(r, "object f", tracker);
        Outside($"echo new > '{Path.Combine(t.Lowers[0], "d/new")}'");
        Until(r, "entry d/new", tracker);
        Assert.Equal("new\n", fs.ReadText("/d/new")); // the engine's cached layers went too
        Outside($"rm '{Path.Combine(t.Lowers[0], "d/new")}'");
        Until(r, "deleted d/new", tracker);
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/d/new", out _));
        Outside($"chmod 600 '{Path.Combine(t.Lowers[^1], "d/f")}'");
        Until(r, "attributes f", tracker);
    }

    /// <summary>A directory that gains an upper directory by copy-up is marked there too, so direct changes in it are seen.</summary>
    [Fact]
    public void A_directory_copied_up_is_tracked_in_its_new_upper_directory()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[1], "d/f", "lower");
        using var fs = t.Mount();
        var r = new Recorder();
        using var tracker = new BranchTracker(fs, r);
        tracker.Start();
        fs.Lookup(fs.Root, "d", out var d).Ok();
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        int before = tracker.Report().Marks;
        fs.WriteText("/d/made", "x"); // copies d up
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        Assert.True(tracker.Drain(TimeSpan.FromSeconds(5)));
        Assert.Equal(before + 1, tracker.Report().Marks);
        Assert.True(d!.IsTracked);
        Outside($"echo planted > '{Path.Combine(t.Upper!, "d/planted")}'");
        Until(r, "entry d/planted", tracker);
    }
}
