using System.Diagnostics;
using Lamina.Native;
using Lamina.Watches;
using Xunit.Abstractions;

namespace Lamina.Tests.Watches;

/// <summary>WD1 and WD2: descriptors as the kernel allocates them, compared against real inotify.</summary>
public sealed class WdAllocationTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lamina-wd-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void FirstWdIsOneAndEachNextFollowsTheLastHandedOut()
    {
        var a = new WdAllocator();
        Assert.Equal([1, 2, 3, 4], new[] { a.Allocate(), a.Allocate(), a.Allocate(), a.Allocate() });
        a.Free(2);
        Assert.Equal(5, a.Allocate()); // not 2: cyclic, the cursor only moves forward
        a.Free(1);
        Assert.True(a.SetNext(int.MaxValue));
        Assert.Equal(int.MaxValue, a.Allocate());
        Assert.Equal(1, a.Allocate()); // wraps to the lowest free
        Assert.Equal(2, a.Allocate());
        Assert.Equal(6, a.Allocate()); // 3, 4, 5 are taken
        Assert.False(a.SetNext(0));
        Assert.False(a.SetNext(-5));
    }

    [Fact]
    public void SearchCrossesFullLeavesAndWrapsWhenTheTopIsFull()
    {
        var a = new WdAllocator();
        for (int i = 0; i < 10_000; i++) Assert.Equal(i + 1, a.Allocate());
        a.Free(5000);
        Assert.True(a.SetNext(1));
        Assert.Equal(5000, a.Allocate());
        Assert.Equal(10_001, a.Allocate());
        Assert.True(a.SetNext(int.MaxValue - 1));
        Assert.Equal(int.MaxValue - 1, a.Allocate());
        Assert.Equal(int.MaxValue, a.Allocate());
        Assert.Equal(10_002, a.Allocate());
    }

    /// <summary>
    /// The same random sequence of add-watch / rm-watch / SETNEXTWD on a real inotify instance and on
    /// a <see cref="WatchInstance"/>: every returned wd and errno must be equal, wrap-around included.
    /// </summary>
    [Fact]
    public void SequenceMatchesRealInotifyIncludingWrapAround()
    {
        int fd = Sys.InotifyInit1(Sys.IN_CLOEXEC);
        Assert.True(fd >= 0, $"inotify_init1: {Sys.LastErrno}");
        try
        {
            var probe = Sys.InotifySetNextWd(fd, 1);
            if (probe != 0)
            {
                // Without CONFIG_CHECKPOINT_RESTORE the ioctl is ENOTTY: then only the plain sequence can be compared.
                output.WriteLine($"INOTIFY_IOC_SETNEXTWD unavailable ({Sys.LastErrno}); comparing without it");
            }
            bool canSetNext = probe == 0;
            const int files = 40;
            for (int i = 0; i < files; i++) File.WriteAllText(Path.Combine(_dir, $"f{i}"), "");
            var targets = new MemoryTargets();
            using var mine = new WatchInstance(targets);
            var rng = new Random(7);
            int[] interesting = [1, 2, 3, 17, 4096, 4097, 0x34d71d6, int.MaxValue - 3, int.MaxValue - 1, int.MaxValue, 0, -1];
            var log = new List<string>();
            for (int step = 0; step < 3000; step++)
            {
                int op = rng.Next(10);
                if (op < 6)
                {
                    string f = Path.Combine(_dir, $"f{rng.Next(files)}");
                    uint mask = InotifyMask.Modify | (rng.Next(8) == 0 ? InotifyMask.MaskCreate : 0) | (rng.Next(8) == 0 ? InotifyMask.MaskAdd : 0);
                    int real = Sys.InotifyAddWatch(fd, f, mask);
                    int realResult = real >= 0 ? real : -(int)Sys.LastErrno;
                    var e = mine.AddWatch(f, mask, out int wd);
                    int ours = e == Errno.None ? wd : -(int)e;
                    log.Add($"add {Path.GetFileName(f)} {mask:x} -> {realResult}");
                    Assert.True(realResult == ours, $"step {step}: add-watch {f} mask {mask:x}: kernel {realResult}, Lamina {ours}\n{string.Join('\n', log.TakeLast(12))}");
                }
                else if (op < 8)
                {
                    int wd = mine.WatchCount > 0 && rng.Next(4) != 0 ? mine.Watches[rng.Next(mine.WatchCount)].Wd : rng.Next(1, 100);
                    int real = Sys.InotifyRmWatch(fd, wd) == 0 ? 0 : -(int)Sys.LastErrno;
                    int ours = -(int)mine.RemoveWatch(wd);
                    log.Add($"rm {wd} -> {real}");
                    Assert.True(real == ours, $"step {step}: rm-watch {wd}: kernel {real}, Lamina {ours}");
                }
                else if (canSetNext)
                {
                    int next = rng.Next(3) == 0 ? rng.Next(1, 64) : interesting[rng.Next(interesting.Length)];
                    int real = Sys.InotifySetNextWd(fd, next) == 0 ? 0 : -(int)Sys.LastErrno;
                    int ours = -(int)mine.SetNextWd(next);
                    log.Add($"setnext {next} -> {real}");
                    Assert.True(real == ours, $"step {step}: SETNEXTWD {next}: kernel {real}, Lamina {ours}");
                }
            }
            output.WriteLine($"3000 steps equal; {mine.WatchCount} watches at the end");
        }
        finally
        {
            Sys.Close(fd);
        }
    }

    /// <summary>WD2: restoring 1,000,000 watches whose wds start at 0x34d71d6 is linear (engine level, in memory).</summary>
    [Fact]
    public void RestoreOfAMillionWatchesTakesSeconds()
    {
        const int n = 1_000_000;
        const int first = 0x34d71d6;
        var targets = new MemoryTargets();
        var source = new WatchInstance(targets, 16);
        var sw = Stopwatch.StartNew();
        Assert.Equal(Errno.None, source.SetNextWd(first));
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(Errno.None, source.AddWatch($"d{i >> 10}/f{i}", InotifyMask.Modify, out int wd));
            if (wd != first + i) Assert.Fail($"watch {i}: wd {wd}");
        }
        var built = sw.Elapsed;
        var text = new StringWriter();
        source.Checkpoint(text);
        var checkpointed = sw.Elapsed - built;

        sw.Restart();
        var restoredInstance = new WatchInstance(new MemoryTargets(), 16);
        Assert.Equal(Errno.None, restoredInstance.Restore(new StringReader(text.ToString()), out int restored));
        var restoreTime = sw.Elapsed;
        output.WriteLine($"1e6 watches from wd 0x{first:x}: build {built.TotalSeconds:F2}s, checkpoint {checkpointed.TotalSeconds:F2}s ({text.GetStringBuilder().Length / 1e6:F0} MB), restore {restoreTime.TotalSeconds:F2}s");
        Assert.Equal(n, restored);
        Assert.Equal(first, restoredInstance.FindWatch(first)!.Wd);
        Assert.Equal("d976/f999999", restoredInstance.FindWatch(first + n - 1)!.Path);
        Assert.Equal(source.WdCursor, restoredInstance.WdCursor);
        Assert.Equal(Errno.None, restoredInstance.AddWatch("new", InotifyMask.Modify, out int next));
        Assert.Equal(first + n, next);
        Assert.True(restoreTime < TimeSpan.FromSeconds(20), $"restore took {restoreTime}");

        // The kernel's way (SETNEXTWD before each add) is O(1) per watch too, wherever the numbers are.
        sw.Restart();
        var viaSetNext = new WatchInstance(new MemoryTargets(), 16);
        for (int i = 0; i < n; i++)
        {
            int want = i % 2 == 0 ? first + i : int.MaxValue - i;
            viaSetNext.SetNextWd(want);
            viaSetNext.AddWatch($"g{i}", InotifyMask.Modify, out int wd);
            if (wd != want) Assert.Fail($"watch {i}: wanted {want}, got {wd}");
        }
        output.WriteLine($"1e6 adds with SETNEXTWD before each: {sw.Elapsed.TotalSeconds:F2}s");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20));
    }
}
