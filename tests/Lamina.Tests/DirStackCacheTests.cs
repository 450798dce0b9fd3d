using Lamina.Native;

namespace Lamina.Tests;

/// <summary>
/// The directory stack cache must answer exactly as a walk from the branch roots does, whatever
/// changes the branches see behind the engine's back and through it.
/// </summary>
public class DirStackCacheTests
{
    private static readonly string[] Dirs = ["", "a", "a/b", "a/b/c", "d", "d/e"];
    private static readonly string[] Names = ["a", "b", "c", "d", "e", "x"];

    private static IEnumerable<string> Candidates() =>
        Dirs.SelectMany(d => Names.Select(n => d.Length == 0 ? n : d + "/" + n)).Distinct();

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Cached_resolution_matches_a_walk_from_the_roots_under_direct_and_union_changes(int seed)
    {
        using var t = new TestLayers(2);
        var rnd = new Random(seed);
        TestLayers.WriteFile(t.Lowers[1], "a/b/c/x", "bottom");
        TestLayers.WriteFile(t.Lowers[0], "a/b/x", "middle");
        TestLayers.MakeDir(t.Lowers[1], "d/e");
        var cached = t.Mount();
        // The same branches read-only (the upper as the top lower), resolved from the roots every time.
        var walkedOptions = Branches.OptionParser.ParseOverlay($"lowerdir={t.Upper}:{string.Join(':', t.Lowers)}");
        walkedOptions.CacheDirectories = false;
        using var walked = UnionFileSystem.Mount(walkedOptions);
        string[] branches = [t.Upper!, t.Lowers[0], t.Lowers[1]];
        var log = new List<string>();

        for (int step = 0; step < 250; step++)
        {
            string op = rnd.Next(3) == 0 ? UnionChange(cached, rnd) : DirectChange(branches, rnd);
            log.Add(op);
            foreach (var path in Candidates())
            {
                var ce = cached.Paths.Stat("/" + path, out var cs);
                var we = walked.Paths.Stat("/" + path, out var ws);
                string context = $"seed {seed}, step {step}, /{path}; ops:\n  " + string.Join("\n  ", log.TakeLast(8));
                Assert.True(ce == we, $"cached {ce} vs walked {we}: {context}");
                if (ce != Errno.None) continue;
                Assert.True(cs.FileType == ws.FileType && cs.Size == ws.Size && cs.Mode == ws.Mode,
                    $"cached mode {cs.Mode:x} size {cs.Size} vs walked mode {ws.Mode:x} size {ws.Size}: {context}");
            }
        }
        Assert.True(cached.CachedDirectoryCount > 0, "the cache was never used");
    }

    private static string Pick(Random rnd, string[] items) => items[rnd.Next(items.Length)];

    private static string UnionChange(UnionFileSystem fs, Random rnd)
    {
        string path = "/" + Pick(rnd, [.. Candidates()]);
        string other = "/" + Pick(rnd, [.. Candidates()]);
        switch (rnd.Next(5))
        {
            case 0: return $"union mkdir {path}: {fs.Paths.Mkdir(path)}";
            case 1: return $"union write {path}: {fs.Paths.WriteAllBytes(path, "u"u8)}";
            case 2: return $"union unlink {path}: {fs.Paths.Unlink(path)}";
            case 3: return $"union rmdir {path}: {fs.Paths.Rmdir(path)}";
            default: return $"union rename {path} {other}: {fs.Paths.Rename(path, other)}";
        }
    }

    private static string DirectChange(string[] branches, Random rnd)
    {
        int bi = rnd.Next(branches.Length);
        string branch = branches[bi];
        string rel = Pick(rnd, [.. Candidates()]);
        string full = Path.Combine(branch, rel);
        string parent = Path.GetDirectoryName(full)!;
        string what = $"direct in branch {bi}";
        try
        {
            switch (rnd.Next(6))
            {
                case 0:
                    Directory.CreateDirectory(full);
                    return $"{what}: mkdir {rel}";
                case 1:
                    if (!Directory.Exists(parent)) return $"{what}: (no parent for {rel})";
                    if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
                    File.WriteAllText(full, new string('f', rnd.Next(1, 9)));
                    return $"{what}: write {rel}";
                case 2:
                    if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
                    else if (File.Exists(full) || IsNode(full)) File.Delete(full);
                    return $"{what}: remove {rel}";
                case 3:
                    if (bi == branches.Length - 1 || !Directory.Exists(parent)) return $"{what}: (no whiteout for {rel})";
                    if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
                    else if (File.Exists(full) || IsNode(full)) File.Delete(full);
                    TestLayers.Whiteout(branch, rel);
                    return $"{what}: whiteout {rel}";
                case 4:
                    if (!Directory.Exists(full)) return $"{what}: (no dir to mark {rel})";
                    if (TestLayers.GetXattr(full, "trusted.overlay.opaque") is null) TestLayers.Opaque(branch, rel);
                    else Sys.LRemoveXattr(full, "trusted.overlay.opaque");
                    return $"{what}: toggle opaque {rel}";
                default:
                    string to = Path.Combine(branch, Pick(rnd, [.. Candidates()]));
                    if (!Directory.Exists(full) || !Directory.Exists(Path.GetDirectoryName(to)) || Directory.Exists(to) || File.Exists(to) || IsNode(to)
                        || to.StartsWith(full + "/", StringComparison.Ordinal))
                        return $"{what}: (no rename of {rel})";
                    Directory.Move(full, to);
                    return $"{what}: rename {rel} -> {Path.GetRelativePath(branch, to)}";
            }
        }
        catch (IOException ex) { return $"{what}: {rel} failed: {ex.Message}"; }
    }

    private static bool IsNode(string path) => Sys.LStatxAt(Sys.AT_FDCWD, path, out _) == 0;

    [Fact]
    public void Changes_through_the_union_are_seen_at_once_even_when_stacks_are_trusted()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "a/b/x", "lower");
        using var fs = t.Mount(configure: o => o.TrustDirectoriesFor = TimeSpan.FromHours(1));
        Assert.Equal("lower", fs.ReadText("/a/b/x"));
        fs.Paths.Rename("/a/b", "/a/c").Ok("rename");
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/a/b/x", out _));
        Assert.Equal("lower", fs.ReadText("/a/c/x"));
        fs.Paths.Mkdir("/a/b").Ok("mkdir");
        Assert.Equal(Errno.ENOENT, fs.Paths.Stat("/a/b/x", out _));
        fs.WriteText("/a/b/y", "new");
        Assert.Equal("new", fs.ReadText("/a/b/y"));
    }

    [Fact]
    public void Trusted_stacks_are_checked_again_after_the_trust_period()
    {
        using var t = new TestLayers(2);
        TestLayers.WriteFile(t.Lowers[1], "a/x", "bottom");
        using var fs = t.Mount(configure: o => o.TrustDirectoriesFor = TimeSpan.FromMilliseconds(300));
        Assert.Equal("bottom", fs.ReadText("/a/x"));
        TestLayers.WriteFile(t.Lowers[0], "a/y", "middle"); // a new layer directory for /a
        Thread.Sleep(400);
        Assert.Equal("middle", fs.ReadText("/a/y"));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void A_name_made_directly_in_an_indexed_empty_directory_is_found(int lowers)
    {
        // An index of read-only layers that hold no names at all is still an index: dropping it when a
        // layer's entries change must not depend on how many names it held.
        using var t = new TestLayers(lowers);
        foreach (var l in t.Lowers) TestLayers.MakeDir(l, "e");
        using var fs = t.Mount();
        for (int i = 0; i < 12; i++) Assert.Equal(Errno.ENOENT, fs.Paths.Stat($"/e/missing{i}", out _));
        TestLayers.WriteFile(t.Lowers[0], "e/x", "x");
        Assert.Equal("x", fs.ReadText("/e/x"));
        TestLayers.WriteFile(t.Lowers[^1], "e/y", "y");
        Assert.Equal("y", fs.ReadText("/e/y"));
    }
}
