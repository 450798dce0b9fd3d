using Lamina.Cli.Control;

namespace Lamina.Cli.Commands;

/// <summary>`lamina status [MOUNTPOINT]`: the Lamina mounts of this system and what their daemons report.</summary>
public static class StatusCommand
{
    public static int Run(string[] args)
    {
        var mounts = LaminaMounts();
        if (args.Length > 0)
        {
            string target = Path.GetFullPath(args[0]).TrimEnd('/');
            mounts = mounts.Where(m => m.MountPoint == target).ToList();
            if (mounts.Count == 0) return Program.Fail($"{target} is not a Lamina mount", 1);
        }
        if (mounts.Count == 0)
        {
            Console.WriteLine("no Lamina mounts");
            return 0;
        }
        foreach (var (mountPoint, source) in mounts)
        {
            Console.WriteLine($"{mountPoint} (source {source})");
            string? answer = ControlClient.Ask(mountPoint, "status");
            if (answer is null)
            {
                Console.WriteLine("  daemon not reachable (it may have died: `lamina umount` clears the mount)");
                continue;
            }
            foreach (var line in answer.Split('\n', StringSplitOptions.RemoveEmptyEntries)) Console.WriteLine("  " + line);
        }
        return 0;
    }

    /// <summary>fuse.lamina entries of /proc/self/mountinfo.</summary>
    public static List<(string MountPoint, string Source)> LaminaMounts()
    {
        var result = new List<(string, string)>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var parts = line.Split(' ');
            int dash = Array.IndexOf(parts, "-");
            if (dash < 0 || dash + 2 >= parts.Length || parts[dash + 1] != "fuse.lamina") continue;
            result.Add((Unescape(parts[4]), Unescape(parts[dash + 2])));
        }
        return result;
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo.
    private static string Unescape(string s) =>
        System.Text.RegularExpressions.Regex.Replace(s, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());
}
