using Lamina.Cli.Fuse;
using Lamina.Fuse;
using Lamina.Fuse.Mounting;
using Lamina.Native;

namespace Lamina.Cli.Commands;

/// <summary>
/// `lamina demo`: builds a two-layer tree in a temporary directory, mounts it, and walks through
/// what a union does — read from the lower layer, copy-up on write, a whiteout on delete, the diff —
/// then unmounts and removes everything.
/// </summary>
public static class DemoCommand
{
    public static int Run(string[] args)
    {
        string root = Directory.CreateTempSubdirectory("lamina-demo-").FullName;
        string lower = Path.Combine(root, "lower"), upper = Path.Combine(root, "upper");
        string work = Path.Combine(root, "work"), merged = Path.Combine(root, "merged");
        foreach (var d in new[] { lower, upper, work, merged }) Directory.CreateDirectory(d);
        Directory.CreateDirectory(Path.Combine(lower, "etc"));
        File.WriteAllText(Path.Combine(lower, "etc", "motd"), "hello from the lower layer\n");
        File.WriteAllText(Path.Combine(lower, "old.txt"), "this file will be deleted\n");
        Directory.CreateDirectory(Path.Combine(lower, "docs"));
        File.WriteAllText(Path.Combine(lower, "docs", "guide.txt"), "read-only documentation\n");

        Step($"Built a layered tree in {root}:");
        Show("lower (read-only)", lower);
        Show("upper (writable, empty)", upper);

        string options = $"lowerdir={lower},upperdir={upper},workdir={work}";
        using var union = UnionFileSystem.Mount(Branches.OptionParser.ParseOverlay(options));
        bool canMount = Sys.GetEUid() == 0 && File.Exists("/dev/fuse");
        FuseSession? session = null;
        try
        {
            if (canMount)
            {
                Step($"Mounting: lamina mount -o {options} {merged}");
                var mount = FuseMount.Mount(merged, new FuseMountOptions { FsName = "lamina-demo", Subtype = "lamina", AllowOther = true });
                var adapter = new UnionFuse(union, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
                session = new FuseSession(mount, adapter, new FuseSessionOptions { Workers = 2 });
                adapter.Session = session;
                session.Start();
                Console.WriteLine($"  mounted: fuse.lamina, protocol 7.{session.Connection.ProtocolMinor}, passthrough {(session.Connection.Passthrough ? "on" : "off")}");
                Show("merged view", merged);
            }
            else
            {
                Step("Not root or no /dev/fuse: showing the same steps through the in-process API instead of a mount.");
            }

            Step("Read /etc/motd: it comes from the lower layer.");
            Console.Write("  " + Read(union, merged, canMount, "etc/motd"));

            Step("Append a line to /etc/motd: the file is copied up to the upper layer first.");
            Append(union, merged, canMount, "etc/motd", "and a line written through the union\n");
            Console.Write(Indent(Read(union, merged, canMount, "etc/motd")));
            Console.WriteLine($"  upper/etc/motd now exists: {File.Exists(Path.Combine(upper, "etc", "motd"))}; lower/etc/motd is unchanged:");
            Console.Write(Indent(File.ReadAllText(Path.Combine(lower, "etc", "motd"))));

            Step("Delete /old.txt: the lower file stays, and a whiteout in the upper layer hides it.");
            if (canMount) File.Delete(Path.Combine(merged, "old.txt")); else union.Paths.Unlink("/old.txt");
            Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(upper, "old.txt"), out var wh);
            Console.WriteLine($"  upper/old.txt: {(wh.FileType == ModeBits.S_IFCHR ? $"character device {wh.RDevMajor},{wh.RDevMinor} (an overlayfs whiteout)" : "?")}");
            Console.WriteLine($"  lower/old.txt still exists: {File.Exists(Path.Combine(lower, "old.txt"))}; visible through the union: {(canMount ? File.Exists(Path.Combine(merged, "old.txt")) : union.Paths.Exists("/old.txt"))}");
            if (canMount) Show("merged view", merged);

            Step("The diff (lamina diff, as docker diff prints it):");
            foreach (var change in union.Diff()) Console.WriteLine("  " + change);
        }
        finally
        {
            if (session is not null)
            {
                Step("Unmounting.");
                session.Stop();
                session.Dispose();
            }
        }
        union.Dispose();
        Directory.Delete(root, recursive: true);
        Step("Done: the temporary tree is removed.");
        return 0;
    }

    private static string Read(UnionFileSystem union, string merged, bool mounted, string path)
    {
        if (mounted) return File.ReadAllText(Path.Combine(merged, path));
        union.Paths.ReadAllBytes("/" + path, out var data);
        return System.Text.Encoding.UTF8.GetString(data);
    }

    private static void Append(UnionFileSystem union, string merged, bool mounted, string path, string text)
    {
        if (mounted) { File.AppendAllText(Path.Combine(merged, path), text); return; }
        union.Paths.ReadAllBytes("/" + path, out var data);
        union.Paths.WriteAllBytes("/" + path, [.. data, .. System.Text.Encoding.UTF8.GetBytes(text)]);
    }

    private static void Step(string text)
    {
        Console.WriteLine();
        Console.WriteLine("== " + text);
    }

    private static string Indent(string text) => string.Concat(text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "  " + l + "\n"));

    private static void Show(string title, string dir)
    {
        Console.WriteLine($"  {title}:");
        var entries = Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        if (entries.Count == 0) Console.WriteLine("    (empty)");
        foreach (var e in entries)
        {
            string rel = Path.GetRelativePath(dir, e);
            Console.WriteLine(Directory.Exists(e) ? $"    {rel}/" : $"    {rel}");
        }
    }
}
