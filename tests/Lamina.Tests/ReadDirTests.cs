using System.Diagnostics;
using Lamina.Native;

namespace Lamina.Tests;

public class ReadDirTests
{
    [Fact]
    public void Cookies_stay_valid_while_the_directory_changes()
    {
        using var t = new TestLayers(1);
        for (int i = 0; i < 20; i++) TestLayers.WriteFile(t.Lowers[0], $"d/f{i:00}", "x");
        using var fs = t.Mount();
        fs.Lookup(fs.Root, "d", out var d).Ok();
        fs.OpenDir(d!, default, out var dh).Ok();
        var first = new List<(DirEntry, long)>();
        fs.ReadDir(dh!, 0, (e, next) => { first.Add((e, next)); return first.Count < 10; }).Ok();
        Assert.Equal(10, first.Count);
        Assert.Equal(".", first[0].Item1.Name);
        Assert.Equal("..", first[1].Item1.Name);
        // Change the directory, then resume from the cookie: no entry is lost or repeated.
        fs.Paths.Unlink("/d/f15").Ok();
        fs.WriteText("/d/zz", "new");
        var rest = new List<DirEntry>();
        fs.ReadDir(dh!, first[^1].Item2, (e, _) => { rest.Add(e); return true; }).Ok();
        var all = first.Select(x => x.Item1.Name).Concat(rest.Select(e => e.Name)).ToList();
        Assert.Equal(22, all.Count);
        Assert.Equal(all.Count, all.Distinct().Count());
        // seekdir back to an earlier cookie gives the same entries again.
        var again = new List<DirEntry>();
        fs.ReadDir(dh!, first[4].Item2, (e, _) => { again.Add(e); return again.Count < 3; }).Ok();
        Assert.Equal(first.Skip(5).Take(3).Select(x => x.Item1.Name), again.Select(e => e.Name));
        // Rewinding to 0 takes a fresh snapshot.
        var fresh = new List<string>();
        fs.ReadDir(dh!, 0, (e, _) => { fresh.Add(e.Name); return true; }).Ok();
        Assert.Contains("zz", fresh);
        Assert.DoesNotContain("f15", fresh);
        // READDIRPLUS-style lookup of an entry.
        var entry = rest.First(e => e.Name.StartsWith('f'));
        fs.LookupEntry(dh!, entry, out var node, out var st).Ok();
        Assert.Equal(entry.Ino, st.Ino);
        Assert.Equal(entry.Ino, node!.Ino);
    }

    [Fact]
    public void Entry_types_are_reported()
    {
        using var t = new TestLayers(1);
        TestLayers.MakeDir(t.Lowers[0], "dir");
        TestLayers.WriteFile(t.Lowers[0], "file", "x");
        File.CreateSymbolicLink(Path.Combine(t.Upper!, "link"), "file");
        using var fs = t.Mount();
        fs.Paths.ReadDir("/", out var entries).Ok();
        Assert.Equal(Sys.DT_DIR, entries.Single(e => e.Name == "dir").Type);
        Assert.Equal(Sys.DT_REG, entries.Single(e => e.Name == "file").Type);
        Assert.Equal(Sys.DT_LNK, entries.Single(e => e.Name == "link").Type);
    }

    [Fact]
    public void Hundred_thousand_entries_across_three_layers()
    {
        using var t = new TestLayers(2);
        const int perLayer = 40_000;
        var layers = new[] { t.Upper!, t.Lowers[0], t.Lowers[1] };
        for (int l = 0; l < 3; l++)
        {
            var dir = Path.Combine(layers[l], "big");
            Directory.CreateDirectory(dir);
            // Overlapping ranges: 100,000 distinct names in all.
            int start = l * 30_000;
            for (int i = start; i < start + perLayer && i < 100_000; i++)
                File.Create(Path.Combine(dir, $"e{i:000000}")).Dispose();
        }
        using var fs = t.Mount();
        var sw = Stopwatch.StartNew();
        fs.Paths.ReadDir("/big", out var entries).Ok();
        sw.Stop();
        Console.WriteLine($"readdir of {entries.Count} merged entries from 3 layers: {sw.ElapsedMilliseconds} ms");
        Assert.Equal(100_000, entries.Count);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.ElapsedMilliseconds} ms");
    }
}
