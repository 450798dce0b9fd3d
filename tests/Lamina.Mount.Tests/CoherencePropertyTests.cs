using System.Diagnostics;
using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>
/// A model-based check of coherence with default options: random changes made directly in random
/// branches (this process, not the daemon) while the mount is read. After each change the mount
/// must show exactly the merged view a model computes from the branches, within a bound, and no
/// read may return a file's content mixed from two of its states.
/// </summary>
public sealed class CoherencePropertyTests
{
    private static readonly string[] Dirs = ["", "a", "b"];
    private static readonly string[] Names = ["x", "y", "z"];

    [MountTheory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_direct_changes_show_through_at_once_and_reads_never_mix_states(int lowers)
    {
        var rnd = new Random(100 + lowers);
        using var m = new LaminaMount(lowers, m =>
        {
            foreach (var d in Dirs) Directory.CreateDirectory(Path.Combine(m.Lower(m.LowerCount - 1), d));
        }).Mount();
        string[] branches = [m.Upper, .. Enumerable.Range(0, lowers).Select(m.Lower)];
        var latencies = new List<double>();
        var log = new List<string>();
        var shown = View(m.Merged); // the kernel learns every name and file
        for (int step = 0; step < 60; step++)
        {
            log.Add(Change(branches, rnd, step));
            var expected = Model(branches);
            var sw = Stopwatch.StartNew();
            while (true)
            {
                shown = View(m.Merged);
                foreach (var (path, content) in shown)
                    Assert.True(content is null || Whole(content), $"step {step}: {path} read mixed content '{content}'; changes:\n  {string.Join("\n  ", log.TakeLast(6))}");
                if (Same(shown, expected)) break;
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2),
                    $"step {step} ({lowers} lower layers): the mount shows\n  {Show(shown)}\nnot\n  {Show(expected)}\nchanges:\n  {string.Join("\n  ", log.TakeLast(6))}");
                Thread.Sleep(2);
            }
            latencies.Add(sw.Elapsed.TotalMilliseconds);
        }
        latencies.Sort();
        double p50 = latencies[latencies.Count / 2];
        Assert.True(p50 <= 100, $"median time to show a direct change: {p50:F1} ms (all: {string.Join(' ', latencies.Select(l => l.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))})");
    }

    /// <summary>
    /// File contents are "K:N:" and N times a letter of K: a read that mixes two versions (the old
    /// size with the new data, say) breaks the letter or the count. Empty is a state too: a rewrite
    /// truncates before it writes.
    /// </summary>
    private static string Content(int k, Random rnd)
    {
        int n = 1 + rnd.Next(64);
        return $"{k}:{n}:" + new string((char)('a' + k % 26), n);
    }

    private static bool Whole(string content)
    {
        if (content.Length == 0) return true;
        var parts = content.Split(':', 3);
        return parts.Length == 3 && int.TryParse(parts[0], out int k) && int.TryParse(parts[1], out int n)
            && parts[2].Length == n && !parts[2].AsSpan().ContainsAnyExcept((char)('a' + k % 26));
    }

    private static string Change(string[] branches, Random rnd, int step)
    {
        int bi = rnd.Next(branches.Length);
        string branch = branches[bi];
        string dir = Path.Combine(branch, Dirs[rnd.Next(Dirs.Length)]);
        string name = Names[rnd.Next(Names.Length)];
        string path = Path.Combine(dir, name);
        string rel = Path.GetRelativePath(branch, path);
        Directory.CreateDirectory(dir);
        bool exists = Sys.LStatxAt(Sys.AT_FDCWD, path, out var st) == 0;
        bool whiteout = exists && st.FileType == ModeBits.S_IFCHR;
        switch (rnd.Next(5))
        {
            case 0 or 1:
                if (whiteout) File.Delete(path);
                File.WriteAllText(path, Content(step, rnd)); // rewrite in place: truncate, then write
                return $"branch {bi}: write {rel}";
            case 2:
                if (!exists) return $"branch {bi}: (nothing to delete at {rel})";
                File.Delete(path);
                return $"branch {bi}: delete {rel}";
            case 3:
                string other = Path.Combine(dir, Names[rnd.Next(Names.Length)]);
                if (!exists || whiteout || other == path) return $"branch {bi}: (no rename of {rel})";
                File.Move(path, other, overwrite: true);
                return $"branch {bi}: rename {rel} -> {Path.GetFileName(other)}";
            default:
                if (bi == branches.Length - 1 || exists) return $"branch {bi}: (no whiteout at {rel})";
                if (Sys.MknodAt(Sys.AT_FDCWD, path, ModeBits.S_IFCHR, 0) != 0) throw new ErrnoException(Sys.LastErrno, "mknod", path);
                return $"branch {bi}: whiteout {rel}";
        }
    }

    /// <summary>The merged view the branches make: per directory, top branch first, a whiteout hides what lies below.</summary>
    private static Dictionary<string, string?> Model(string[] branches)
    {
        var view = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var d in Dirs)
        {
            view[d.Length == 0 ? "/" : d + "/"] = null;
            foreach (var name in Names)
            {
                foreach (var b in branches)
                {
                    string p = Path.Combine(b, d, name);
                    if (Sys.LStatxAt(Sys.AT_FDCWD, p, out var st) != 0) continue;
                    if (st.FileType == ModeBits.S_IFREG) view[Path.Combine(d, name)] = File.ReadAllText(p);
                    break;
                }
            }
        }
        return view;
    }

    /// <summary>What the mount shows: each directory, and each file's content as one read returns it.</summary>
    private static Dictionary<string, string?> View(string merged)
    {
        var view = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var d in Dirs)
        {
            string full = Path.Combine(merged, d);
            if (!Directory.Exists(full)) continue;
            view[d.Length == 0 ? "/" : d + "/"] = null;
            foreach (var entry in Directory.EnumerateFileSystemEntries(full))
            {
                string name = Path.GetFileName(entry);
                if (!Names.Contains(name)) continue;
                try { view[Path.Combine(d, name)] = File.ReadAllText(entry); }
                catch (FileNotFoundException) { } // listed, then gone: the next pass sees the end state
            }
        }
        return view;
    }

    private static bool Same(Dictionary<string, string?> a, Dictionary<string, string?> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static string Show(Dictionary<string, string?> v) =>
        string.Join(", ", v.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value is null ? kv.Key : $"{kv.Key}={kv.Value}"));
}
