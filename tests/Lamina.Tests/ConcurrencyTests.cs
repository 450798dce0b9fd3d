using System.Diagnostics;
using System.Text;
using Lamina.Native;
using Xunit.Abstractions;

namespace Lamina.Tests;

public class ConcurrencyTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Node_api_is_safe_under_concurrent_use()
    {
        using var t = new TestLayers(2);
        for (int w = 0; w < 4; w++)
            for (int i = 0; i < 20; i++)
                TestLayers.WriteFile(t.Lowers[i % 2], $"w{w}/f{i}", $"lower {w}/{i}");
        using var fs = t.Mount();
        var failures = new List<string>();
        Exception? internalError = null;
        UnionFileSystem.InternalError += ex => internalError = ex;

        // Each worker owns one directory and checks its own invariants; readers list everything meanwhile.
        var workers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            var rng = new Random(w);
            var expected = Enumerable.Range(0, 20).ToDictionary(i => $"f{i}", i => $"lower {w}/{i}");
            for (int step = 0; step < 150; step++)
            {
                string name = $"f{rng.Next(25)}";
                string path = $"/w{w}/{name}";
                switch (rng.Next(4))
                {
                    case 0:
                        var text = $"{w}:{step}";
                        if (fs.Paths.WriteAllBytes(path, Encoding.UTF8.GetBytes(text)) == Errno.None) expected[name] = text;
                        else lock (failures) failures.Add($"write {path}");
                        break;
                    case 1:
                        var e = fs.Paths.Unlink(path);
                        if (e == Errno.None) expected.Remove(name);
                        else if (e != Errno.ENOENT || expected.ContainsKey(name)) lock (failures) failures.Add($"unlink {path}: {e}");
                        break;
                    case 2:
                        string to = $"f{rng.Next(25)}";
                        var re = fs.Paths.Rename(path, $"/w{w}/{to}");
                        if (re == Errno.None && to != name) { expected[to] = expected[name]; expected.Remove(name); }
                        else if (re != Errno.None && (re != Errno.ENOENT || expected.ContainsKey(name))) lock (failures) failures.Add($"rename {path}: {re}");
                        break;
                    default:
                        var ge = fs.Paths.ReadAllBytes(path, out var data);
                        if (expected.TryGetValue(name, out var want) ? ge != Errno.None || Encoding.UTF8.GetString(data) != want : ge != Errno.ENOENT)
                            lock (failures) failures.Add($"read {path}: {ge}");
                        break;
                }
            }
            var listed = new HashSet<string>(fs.List($"/w{w}"));
            if (!listed.SetEquals(expected.Keys)) lock (failures) failures.Add($"w{w} lists {string.Join(',', listed.Order())}, expected {string.Join(',', expected.Keys.Order())}");
        })).ToList();
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                for (int w = 0; w < 4; w++)
                    if (fs.Paths.ReadDir($"/w{w}", out _) != Errno.None) lock (failures) failures.Add("readdir");
        });
        await Task.WhenAll(workers);
        stop.Cancel();
        await reader;
        Assert.Null(internalError);
        Assert.Empty(failures);
        Assert.True(fs.NodeCount < 10, $"nodes leak: {fs.NodeCount} live after all lookups were forgotten");
    }

    [Fact]
    public void Lookup_and_getattr_cost()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[1], "a/b/c/d/e/file", "x");
        TestLayers.MakeDir(t.Lowers[0], "a/b/c/d/e");
        TestLayers.MakeDir(t.Upper!, "a/b/c");
        using var fs = t.Mount();
        var chain = new List<UnionNode>();
        var node = fs.Root;
        foreach (var c in "a/b/c/d/e/file".Split('/'))
        {
            fs.Lookup(node, c, out var child).Ok();
            chain.Add(child!);
            node = child!;
        }
        const int n = 5000;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++) fs.GetAttr(node, out _).Ok();
        double getattrUs = sw.Elapsed.TotalMicroseconds / n;
        sw.Restart();
        for (int i = 0; i < n; i++)
        {
            fs.Lookup(chain[^2], "file", out var f).Ok();
            fs.Forget(f!, 1);
        }
        double lookupUs = sw.Elapsed.TotalMicroseconds / n;
        output.WriteLine($"getattr of a depth-6 file over 3 layers: {getattrUs:F1} us; lookup: {lookupUs:F1} us");
        Console.WriteLine($"getattr of a depth-6 file over 3 layers: {getattrUs:F1} us; lookup: {lookupUs:F1} us");
        Assert.True(getattrUs < 2000 && lookupUs < 2000, "generous bound; real targets belong to benchmarks");
    }
}
