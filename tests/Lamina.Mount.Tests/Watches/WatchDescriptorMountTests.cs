using Lamina.Cli.Control;
using Lamina.Watches;

namespace Lamina.Mount.Tests.Watches;

/// <summary>WD1/WD2 and W3/W5 through a mount daemon's control socket and `lamina watch`.</summary>
public sealed class WatchDescriptorMountTests
{
    /// <summary>WD1, WD2: the kernel's allocation and SETNEXTWD (including the wrap after INT_MAX) for another process watching over the socket.</summary>
    [MountFact]
    public void WD1_WD2_descriptors_over_the_control_socket()
    {
        using var m = new LaminaMount(1, m => { foreach (var n in new[] { "a", "b", "c" }) Directory.CreateDirectory(Path.Combine(m.Lower(0), n)); }).Mount();
        using var c = WatchClient.Open(m.Merged, InotifyMask.Create, ["a"]);
        Assert.NotNull(c);
        Assert.Equal([1], c.Watches.Keys);
        c.Send("setnextwd 2147483647");
        c.Send($"add {InotifyMask.Create:x} b");
        c.Send($"add {InotifyMask.Create:x} c");
        c.Send("setnextwd 0");
        Thread.Sleep(300);
        File.WriteAllText(Path.Combine(m.Merged, "c", "x"), "");
        var replies = new List<string>();
        var e = c.Next(replies.Add);
        Assert.Equal(["ok setnextwd 2147483647", "wd 2147483647 b", "wd 2 c", "error EINVAL setnextwd 0"], replies);
        Assert.Equal((2, "x"), (e!.Value.Wd, e.Value.Name));
    }

    /// <summary>W3/W5: renaming a lower directory through the union (copy-up plus redirect underneath) keeps its watch; events show union names and paired cookies.</summary>
    [MountFact]
    public void W3_W5_watch_follows_a_renamed_lower_directory_and_pairs_cookies()
    {
        using var m = new LaminaMount(1, m => Directory.CreateDirectory(Path.Combine(m.Lower(0), "top", "sub"))).Mount();
        string top = Path.Combine(m.Merged, "top");
        using var w = WatchProcess.Lamina("--format", "%w|%e|%f|%c", top, Path.Combine(top, "sub"));
        Directory.Move(Path.Combine(top, "sub"), Path.Combine(top, "renamed"));
        File.WriteAllText(Path.Combine(top, "renamed", "inside"), "");
        var lines = w.Until("|CREATE|inside|").Select(l => l.Split('|')).ToList();
        var from = lines.Single(l => l[1] == "MOVED_FROM,ISDIR");
        var to = lines.Single(l => l[1] == "MOVED_TO,ISDIR");
        Assert.Equal(("sub", "renamed"), (from[2], to[2]));
        Assert.Equal(from[3], to[3]);
        Assert.NotEqual("0", from[3]);
        Assert.Contains(lines, l => l[0] == top + "/sub/" && l[1] == "MOVE_SELF,ISDIR");
        Assert.DoesNotContain(lines, l => l[1].Contains("CREATE") || l[1].Contains("DELETE")); // the copy-up of the directory is invisible
        // The watch on the renamed directory still reports, on its wd (shown as the path it was added with).
        Assert.True(File.Exists(Path.Combine(m.Merged, "top", "renamed", "inside")));
    }
}
