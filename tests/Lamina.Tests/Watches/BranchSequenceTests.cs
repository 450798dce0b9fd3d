using System.Runtime.InteropServices;
using System.Text;
using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>
/// Quick direct changes in a branch raise, one by one, the events real inotify reports for the same
/// changes in a plain directory; and quick changes to names the merged view hides still raise nothing.
/// Each scenario runs twice: as the changes come, and with the branch watcher held back until all of
/// them are made, so every event is judged when the branches already show the end state.
/// </summary>
public sealed class BranchSequenceTests : IDisposable
{
    // What the branch watcher follows: changes and the close of a written file (opening, reading and
    // closing a file unwritten change nothing in the view).
    private const uint Changes = InotifyMask.Modify | InotifyMask.Attrib | InotifyMask.CloseWrite | InotifyMask.Create | InotifyMask.Delete | InotifyMask.Move;
    private const string End = "zz-end"; // a directory: File.Create raises IN_MODIFY after IN_CREATE

    private readonly TestLayers _t = new(lowers: 1);

    public void Dispose() => _t.Dispose();

    private string L(string rel) => Path.Combine(_t.Lowers[0], rel);
    private string U(string rel) => Path.Combine(_t.Upper!, rel);

    private static readonly Dictionary<string, Action<string>> Steps = new()
    {
        ["create, delete"] = d => { File.Create(Path.Combine(d, "x")).Dispose(); File.Delete(Path.Combine(d, "x")); },
        ["create with data"] = d => File.WriteAllText(Path.Combine(d, "x"), "hi"),
        ["several writes"] = d =>
        {
            var f = Path.Combine(d, "f");
            File.AppendAllText(f, "a");
            Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, f, 0x180, 0));
            File.AppendAllText(f, "b");
            File.AppendAllText(f, "c");
        },
        ["create, rename, delete"] = d =>
        {
            File.WriteAllText(Path.Combine(d, "a"), "x");
            File.Move(Path.Combine(d, "a"), Path.Combine(d, "b"));
            File.Delete(Path.Combine(d, "b"));
        },
        ["mkdir, rmdir"] = d => { Directory.CreateDirectory(Path.Combine(d, "s")); Directory.Delete(Path.Combine(d, "s")); },
        ["write, delete"] = d => { File.AppendAllText(Path.Combine(d, "f"), "more"); File.Delete(Path.Combine(d, "f")); },
        ["delete, create again"] = d => { File.Delete(Path.Combine(d, "f")); File.WriteAllText(Path.Combine(d, "f"), "new"); },
        ["write, rename over"] = d => { File.WriteAllText(Path.Combine(d, "t"), "new"); File.Move(Path.Combine(d, "t"), Path.Combine(d, "f"), overwrite: true); },
        ["rename away and back"] = d => { File.Move(Path.Combine(d, "f"), Path.Combine(d, "g")); File.Move(Path.Combine(d, "g"), Path.Combine(d, "f")); },
        // Out of the watched directory and in again under another name: two unpaired halves.
        ["move out, move in"] = d =>
        {
            string outside = Path.Combine(Path.GetDirectoryName(d)!, "outside-" + Path.GetFileName(d));
            Directory.CreateDirectory(outside);
            File.Move(Path.Combine(d, "f"), Path.Combine(outside, "f"));
            File.Move(Path.Combine(outside, "f"), Path.Combine(d, "g"));
        },
    };

    public static TheoryData<string, bool> Scenarios()
    {
        var data = new TheoryData<string, bool>();
        foreach (var name in Steps.Keys) { data.Add(name, false); data.Add(name, true); }
        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void QuickDirectChangesRaiseWhatInotifyRaisesOnAPlainDirectory(string scenario, bool heldBack)
    {
        string plain = _t.Dir("plain");
        File.WriteAllText(Path.Combine(plain, "f"), "lower");
        TestLayers.WriteFile(_t.Lowers[0], "d/f", "lower");
        using var fs = _t.Mount();
        using var bw = new BranchWatcher(fs);
        using var union = new UnionSide(fs, "/d", bw);

        List<string> expected;
        using (var real = new PlainInotify(plain, Changes))
        {
            Steps[scenario](plain);
            Directory.CreateDirectory(Path.Combine(plain, End));
            expected = Format(real.ReadAll());
        }

        var hold = heldBack ? bw.HoldEvents() : null;
        Steps[scenario](L("d"));
        Directory.CreateDirectory(L("d/" + End));
        hold?.Dispose();
        Assert.Equal(expected, union.UntilEnd());
    }

    /// <summary>The merge rules hold for quick changes too: a name hidden from the branch it changes in raises nothing.</summary>
    [Theory]
    [InlineData("upper copy", false)]
    [InlineData("upper copy", true)]
    [InlineData("whiteout", false)]
    [InlineData("whiteout", true)]
    [InlineData("opaque directory", false)]
    [InlineData("opaque directory", true)]
    public void QuickChangesToAHiddenLowerNameRaiseNothing(string hiddenBy, bool heldBack)
    {
        TestLayers.MakeDir(_t.Lowers[0], "d");
        TestLayers.MakeDir(_t.Upper!, "d");
        switch (hiddenBy)
        {
            case "upper copy":
                TestLayers.WriteFile(_t.Upper!, "d/x", "upper");
                TestLayers.WriteFile(_t.Upper!, "d/y", "upper");
                // A file: an upper directory would merge with the lower one (and take its inode number from it).
                TestLayers.WriteFile(_t.Upper!, "d/s", "upper");
                break;
            case "whiteout":
                foreach (var n in new[] { "x", "y", "s" }) TestLayers.Whiteout(_t.Upper!, "d/" + n);
                break;
            case "opaque directory": TestLayers.Opaque(_t.Upper!, "d"); break;
        }
        using var fs = _t.Mount();
        using var bw = new BranchWatcher(fs);
        using var union = new UnionSide(fs, "/d", bw);

        var hold = heldBack ? bw.HoldEvents() : null;
        File.Create(L("d/x")).Dispose();
        File.AppendAllText(L("d/x"), "data");
        File.Move(L("d/x"), L("d/y"));
        File.Move(L("d/y"), L("d/x"));
        File.Delete(L("d/x"));
        Directory.CreateDirectory(L("d/s"));
        Directory.Delete(L("d/s"));
        Directory.CreateDirectory(U("d/" + End));
        hold?.Dispose();
        Assert.Equal([$"CREATE,ISDIR {End}"], union.UntilEnd());
    }

    /// <summary>
    /// Quick changes to the upper copy of a name keep the rules of the view: removing it uncovers the lower
    /// file and a new copy covers it again (IN_MODIFY both). Other events stand between them, or the queue
    /// would merge the identical ones.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QuickRemovalAndReturnOfAnUpperCopyAreModifies(bool heldBack)
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/f", "lower");
        TestLayers.WriteFile(_t.Upper!, "d/f", "upper");
        using var fs = _t.Mount();
        using var bw = new BranchWatcher(fs);
        using var union = new UnionSide(fs, "/d", bw);

        var hold = heldBack ? bw.HoldEvents() : null;
        File.AppendAllText(U("d/f"), "more");
        Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, U("d/f"), 0x180, 0));
        File.Delete(U("d/f"));                 // the lower file shows through: a change of content, not a delete
        Directory.CreateDirectory(L("d/other"));
        File.WriteAllText(U("d/f"), "again");  // a new upper copy covers it again
        Directory.CreateDirectory(U("d/" + End));
        hold?.Dispose();
        Assert.Equal(["MODIFY f", "CLOSE_WRITE,CLOSE f", "ATTRIB f", "MODIFY f", "CREATE,ISDIR other", "MODIFY f", "CLOSE_WRITE,CLOSE f", $"CREATE,ISDIR {End}"], union.UntilEnd());
    }

    /// <summary>
    /// Raw events are judged against the branches as they are, never against the engine's cached view of
    /// the directory: with two lower layers, the directory's layers cached and indexed, and a trust window
    /// as mounts have by default, names made directly in either layer one after the other are each reported.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Names_made_directly_in_several_lower_layers_inside_the_trust_window_are_each_reported(int lowers)
    {
        using var t = new TestLayers(lowers);
        foreach (var l in t.Lowers)
            for (int i = 0; i < 6; i++) TestLayers.WriteFile(l, $"d/old{i}-{Path.GetFileName(l)}", "x");
        using var fs = t.Mount(configure: o => o.TrustDirectoriesFor = TimeSpan.FromSeconds(1));
        using var bw = new BranchWatcher(fs);
        using var union = new UnionSide(fs, "/d", bw);
        Assert.True(bw.Drain(TimeSpan.FromSeconds(5)));
        File.WriteAllText(Path.Combine(t.Lowers[^1], "d/a"), "new");
        Thread.Sleep(300);
        File.WriteAllText(Path.Combine(t.Lowers[0], "d/b"), "new");
        Thread.Sleep(300);
        File.Create(Path.Combine(t.Lowers[0], "d/zz")).Dispose();
        Thread.Sleep(100);
        Directory.CreateDirectory(Path.Combine(t.Lowers[0], "d", End));
        var got = union.UntilEnd();
        foreach (var name in new[] { "a", "b", "zz" }) Assert.Contains($"CREATE {name}", got);
    }

    /// <summary>Events as "KIND name", with cookies numbered by first appearance (a rename's halves share one).</summary>
    private static List<string> Format(IEnumerable<(uint Mask, uint Cookie, string? Name)> events)
    {
        var cookies = new Dictionary<uint, int>();
        return [.. events.Select(e =>
        {
            string c = "";
            if (e.Cookie != 0)
            {
                if (!cookies.TryGetValue(e.Cookie, out int n)) cookies[e.Cookie] = n = cookies.Count + 1;
                c = $" #{n}";
            }
            return $"{InotifyMask.Format(e.Mask)} {e.Name}{c}";
        })];
    }

    /// <summary>
    /// A union directory watched for all events, plus a second instance that only tells when the end marker
    /// arrived: the events before it are then all queued, so reading cannot split what the queue would merge.
    /// </summary>
    private sealed class UnionSide : IDisposable
    {
        private readonly WatchInstance _all, _end;

        public UnionSide(UnionFileSystem fs, string dir, BranchWatcher bw)
        {
            _all = fs.Watches.CreateInstance();
            _end = fs.Watches.CreateInstance();
            _all.AddWatch(dir, InotifyMask.AllEvents, out _).Ok();
            _end.AddWatch(dir, InotifyMask.Create, out _).Ok();
            bw.Start();
        }

        public List<string> UntilEnd()
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!_end.ReadEvents(TimeSpan.FromMilliseconds(100)).Any(e => e.Name == End))
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"no event for {End}");
            var got = new List<WatchEvent>();
            while (!got.Any(e => e.Name == End))
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"no {End} among {string.Join(" | ", got)}");
                got.AddRange(_all.ReadEvents(TimeSpan.FromMilliseconds(100)));
            }
            Thread.Sleep(100); // nothing may follow the marker
            got.AddRange(_all.ReadEvents());
            return Format(got.Select(e => (e.Mask, e.Cookie, e.Name)));
        }

        public void Dispose()
        {
            _all.Dispose();
            _end.Dispose();
        }
    }
}

/// <summary>Real inotify on a plain directory, read without blocking.</summary>
internal sealed unsafe class PlainInotify : IDisposable
{
    private readonly int _fd;

    public PlainInotify(string dir, uint mask)
    {
        _fd = Sys.InotifyInit1(Sys.IN_CLOEXEC | Sys.IN_NONBLOCK);
        if (_fd < 0) throw new ErrnoException(Sys.LastErrno, "inotify_init1");
        if (Sys.InotifyAddWatch(_fd, dir, mask) < 0) throw new ErrnoException(Sys.LastErrno, "inotify_add_watch", dir);
    }

    /// <summary>Every event queued so far.</summary>
    public List<(uint Mask, uint Cookie, string? Name)> ReadAll()
    {
        var buffer = new byte[64 * 1024];
        var list = new List<(uint, uint, string?)>();
        while (true)
        {
            long n = Sys.Read(_fd, buffer);
            if (n <= 0) return list;
            for (int off = 0; off < n;)
            {
                var h = MemoryMarshal.Read<InotifyEventHeader>(buffer.AsSpan(off));
                int start = off + Marshal.SizeOf<InotifyEventHeader>();
                var raw = buffer.AsSpan(start, (int)h.Len);
                int z = raw.IndexOf((byte)0);
                list.Add((h.Mask, h.Cookie, h.Len == 0 ? null : Encoding.UTF8.GetString(z < 0 ? raw : raw[..z])));
                off = start + (int)h.Len;
            }
        }
    }

    public void Dispose() => Sys.Close(_fd);
}
