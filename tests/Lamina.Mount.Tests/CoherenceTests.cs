using System.Diagnostics;
using System.Text;
using Lamina.Cli.Control;
using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>
/// Changes made directly in the branches, by this test process (not the daemon), show through a mount
/// with default options at once, although the kernel caches names, attributes, listings and pages for
/// as long as nothing changes (the branch tracker tells it what did). Before tracking, each of these
/// took the 1 s entry timeout; with the long tracked timeouts and no invalidation, they would never show.
/// </summary>
public sealed class CoherenceTests
{
    // Well under the untracked 1 s timeout, so expiry cannot be what makes a change show.
    private static readonly TimeSpan Visible = TimeSpan.FromMilliseconds(500);

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var c in Changes.Keys)
            for (int lowers = 1; lowers <= 3; lowers++) data.Add(c, lowers);
        return data;
    }

    /// <summary>What each change does in the branches (bottom = the lowest lower layer), and what the mount must then show.</summary>
    private static readonly Dictionary<string, (Action<LaminaMount> Change, Func<LaminaMount, string?> Shows)> Changes = new()
    {
        ["create"] = (m => File.WriteAllText(Bottom(m, "d/new"), "made"), m => Expect(Read(m, "d/new"), "made")),
        ["append"] = (m => File.AppendAllText(Bottom(m, "d/f"), "+more"), m => Expect(Read(m, "d/f"), "lower+more")),
        ["truncate"] = (m => { using var f = File.Open(Bottom(m, "d/f"), FileMode.Truncate); }, m => Expect(Read(m, "d/f"), "")),
        ["rewrite"] = (m => File.WriteAllText(Bottom(m, "d/f"), "rewritten, longer"), m => Expect(Read(m, "d/f"), "rewritten, longer")),
        ["chmod"] = (m => Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, Bottom(m, "d/f"), 0x100, 0)), m => Expect(Mode(m, "d/f"), "400")),
        ["delete"] = (m => File.Delete(Bottom(m, "d/f")), m => Expect(List(m, "d") + " " + Exists(m, "d/f"), "g False")),
        ["rename within"] = (m => File.Move(Bottom(m, "d/f"), Bottom(m, "d/h")), m => Expect(List(m, "d") + " " + Read(m, "d/h"), "g h lower")),
        ["rename across"] = (m => File.Move(Bottom(m, "d/f"), Bottom(m, "e/f")), m => Expect(List(m, "d") + "|" + List(m, "e") + " " + Read(m, "e/f"), "g|f x lower")),
        ["mkdir"] = (m => Directory.CreateDirectory(Bottom(m, "d/sub/deeper")), m => Expect(List(m, "d") + "|" + List(m, "d/sub"), "f g sub|deeper")),
        ["rmdir"] = (m => Directory.Delete(Bottom(m, "e"), recursive: true), m => Expect(List(m, ""), "d")),
        ["planted in upper"] = (m => { Directory.CreateDirectory(U(m, "d")); File.WriteAllText(U(m, "d/f"), "upper"); }, m => Expect(Read(m, "d/f"), "upper")),
        ["whiteout"] = (m => { Directory.CreateDirectory(U(m, "d")); Whiteout(U(m, "d/f")); }, m => Expect(List(m, "d") + " " + Exists(m, "d/f"), "g False")),
        ["opaque"] = (m =>
        {
            Directory.CreateDirectory(U(m, "d"));
            File.WriteAllText(U(m, "d/top"), "t");
            SetXattr(U(m, "d"), "trusted.overlay.opaque", "y");
        }, m => Expect(List(m, "d"), "top")),
    };

    [MountTheory]
    [MemberData(nameof(Cases))]
    public void A_direct_change_shows_through_at_once_with_default_options(string change, int lowers)
    {
        using var m = new LaminaMount(lowers, Populate).Mount();
        Warm(m);
        var (make, shows) = Changes[change];
        var sw = Stopwatch.StartNew();
        make(m);
        string? last = null;
        while (sw.Elapsed < Visible)
        {
            last = shows(m);
            if (last is null) return;
            Thread.Sleep(5);
        }
        Assert.Fail($"{change} with {lowers} lower layer(s) did not show within {Visible.TotalMilliseconds} ms: {last}");
    }

    /// <summary>
    /// The kernel keeps what it learnt: after the old 1 s timeout, a pass of stat calls asks the daemon
    /// nothing, and a pass of listings and reads asks no name again. (Reads and listings do bring one
    /// GETATTR each afterwards: the kernel marks the cached atime stale after every access, on any FUSE
    /// filesystem.)
    /// </summary>
    [MountFact]
    public void Warm_names_attributes_and_listings_stay_in_the_kernel()
    {
        using var m = new LaminaMount(2, Populate);
        var (before, after) = StatPassAfterTheOldTimeout(m, "");
        Assert.Equal(before, after);
        Warm(m);
        Assert.Equal(before.Lookups, Served(m).Lookups);
        var status = ControlClient.Ask(m.Merged, "status")!;
        Assert.Contains("directories tracked", status);
        Assert.DoesNotContain("untracked", status);
    }

    /// <summary>With tracking off, the kernel's caches expire as before (the test above can fail).</summary>
    [MountFact]
    public void Without_tracking_names_expire_after_the_timeout()
    {
        using var m = new LaminaMount(2, Populate);
        var (before, after) = StatPassAfterTheOldTimeout(m, "tracking=off");
        Assert.NotEqual(before, after);
    }

    /// <summary>Mounts, learns the tree, waits past the untracked 1 s timeout, and counts the requests one stat pass then brings.</summary>
    private static ((long Lookups, long GetAttrs) Before, (long Lookups, long GetAttrs) After) StatPassAfterTheOldTimeout(LaminaMount m, string options)
    {
        m.Mount(options);
        Warm(m);
        StatAll(m);
        Thread.Sleep(1500);
        var before = Served(m);
        StatAll(m);
        return (before, Served(m));
    }

    /// <summary>
    /// Another mount whose upper layer is this mount's lower layer (layers recycled, as container
    /// builds do) is another party: what is written through it shows through this mount at once.
    /// The other mount is a second Lamina daemon, or kernel overlayfs, whose writes are made in the
    /// writer's own process.
    /// </summary>
    [MountTheory]
    [InlineData("lamina")]
    [InlineData("kernel overlayfs")]
    public void Writes_through_a_second_mount_over_a_lower_layer_show_through_at_once(string other)
    {
        using var m = new LaminaMount(2, Populate).Mount();
        using var second = new LaminaMount(1, s => File.WriteAllText(Path.Combine(s.Lower(0), "below"), "b"));
        // The second mount writes into this mount's top lower layer; its work directory must be on the same filesystem.
        string work = Path.Combine(m.Root, "second-work");
        Directory.CreateDirectory(work);
        string options = $"lowerdir={second.Lower(0)},upperdir={m.Lower(0)},workdir={work}";
        var mounted = other == "lamina" ? Cli.Run("mount", "-o", options, second.Merged) : Cli.Shell($"mount -t overlay overlay -o {options} {second.Merged}");
        Assert.True(mounted.ExitCode == 0, $"{other} mount failed: {mounted.StdErr}");
        try
        {
            File.WriteAllText(Path.Combine(m.Lower(0), "d", "old"), "old"); // in the second mount's upper layer
            Warm(m);
            Assert.Equal("old", Read(m, "d/old"));
            var sw = Stopwatch.StartNew();
            File.WriteAllText(Path.Combine(second.Merged, "d", "new"), "made");
            File.AppendAllText(Path.Combine(second.Merged, "d", "g"), "+more");
            File.Delete(Path.Combine(second.Merged, "d", "old"));
            string? last = null;
            while (sw.Elapsed < Visible)
            {
                last = Expect($"{Read(m, "d/new")} {Read(m, "d/g")} {Exists(m, "d/old")}", "made g+more False");
                if (last is null) return;
                Thread.Sleep(5);
            }
            Assert.Fail($"writes through {other} did not show within {Visible.TotalMilliseconds} ms: {last}");
        }
        finally
        {
            if (other == "lamina") Cli.Run("umount", second.Merged);
            else Sys.Umount2(second.Merged, 0);
        }
    }

    // ---- the tree and the probes ---------------------------------------------------------------

    /// <summary>d/f and e/x in the bottom layer, d/g in the top lower, and an empty d in every layer between.</summary>
    private static void Populate(LaminaMount m)
    {
        for (int i = 0; i < m.LowerCount; i++) Directory.CreateDirectory(Path.Combine(m.Lower(i), "d"));
        File.WriteAllText(Bottom(m, "d/f"), "lower");
        Directory.CreateDirectory(Bottom(m, "e"));
        File.WriteAllText(Bottom(m, "e/x"), "x");
        File.WriteAllText(Path.Combine(m.Lower(0), "d/g"), "g");
    }

    /// <summary>Everything the checks look at, read once through the mount, missing names included.</summary>
    private static void Warm(LaminaMount m)
    {
        foreach (var dir in new[] { "", "d", "e", "d/sub" }) List(m, dir);
        foreach (var name in new[] { "d/f", "d/g", "d/h", "d/new", "e/f", "e/x", "d/top" }) { Read(m, name); Mode(m, name); }
    }

    private static readonly string[] Probed = ["d/f", "d/g", "d/h", "d/new", "e/f", "e/x", "d/top", "d", "e", "d/sub"];

    private static void StatAll(LaminaMount m)
    {
        foreach (var name in Probed) Mode(m, name);
    }

    /// <summary>LOOKUP and GETATTR requests the daemon has served.</summary>
    private static (long Lookups, long GetAttrs) Served(LaminaMount m)
    {
        var status = ControlClient.Ask(m.Merged, "status")!;
        var match = System.Text.RegularExpressions.Regex.Match(status, @"lookups served: (\d+), getattrs served: (\d+)");
        Assert.True(match.Success, status);
        return (long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
            long.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string Bottom(LaminaMount m, string rel) => Path.Combine(m.Lower(m.LowerCount - 1), rel);
    private static string U(LaminaMount m, string rel) => Path.Combine(m.Upper, rel);
    private static string M(LaminaMount m, string rel) => Path.Combine(m.Merged, rel);

    private static string? Expect(string actual, string expected) => actual == expected ? null : $"shows '{actual}', expected '{expected}'";

    private static string Read(LaminaMount m, string rel)
    {
        try { return File.ReadAllText(M(m, rel)); }
        catch (IOException) { return "(missing)"; }
        catch (UnauthorizedAccessException) { return "(denied)"; }
    }

    private static string Mode(LaminaMount m, string rel) =>
        Sys.LStatxAt(Sys.AT_FDCWD, M(m, rel), out var st) == 0 ? Convert.ToString(st.Mode & 0xFFF, 8) : "(missing)";

    private static string Exists(LaminaMount m, string rel) => (Sys.LStatxAt(Sys.AT_FDCWD, M(m, rel), out _) == 0).ToString();

    private static string List(LaminaMount m, string rel)
    {
        try { return string.Join(' ', Directory.EnumerateFileSystemEntries(M(m, rel)).Select(Path.GetFileName).Order(StringComparer.Ordinal)); }
        catch (IOException) { return "(missing)"; }
    }

    private static void Whiteout(string path)
    {
        if (Sys.MknodAt(Sys.AT_FDCWD, path, ModeBits.S_IFCHR, 0) != 0) throw new ErrnoException(Sys.LastErrno, "mknod", path);
    }

    private static unsafe void SetXattr(string path, string name, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        fixed (byte* p = bytes)
            if (Sys.LSetXattr(path, name, p, (nuint)bytes.Length, 0) != 0) throw new ErrnoException(Sys.LastErrno, "setxattr " + name, path);
    }
}
