using System.IO.MemoryMappedFiles;
using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>The engine's copy-up, whiteout, opaque and rename behaviour, seen through the kernel.</summary>
public class UnionMountTests
{
    private static LaminaMount Layers() => new(2, m =>
    {
        File.WriteAllText(Path.Combine(m.Lower(1), "base.txt"), "from lower1\n");
        File.WriteAllText(Path.Combine(m.Lower(0), "top.txt"), "from lower0\n");
        File.WriteAllText(Path.Combine(m.Lower(1), "shadowed.txt"), "lower1 version\n");
        File.WriteAllText(Path.Combine(m.Lower(0), "shadowed.txt"), "lower0 version\n");
        Directory.CreateDirectory(Path.Combine(m.Lower(1), "dir", "sub"));
        File.WriteAllText(Path.Combine(m.Lower(1), "dir", "sub", "deep.txt"), "deep\n");
        File.WriteAllText(Path.Combine(m.Lower(1), "dir", "a.txt"), "a\n");
    });

    [MountFact]
    public void Merged_view_shows_the_top_most_copy_of_each_name()
    {
        using var m = Layers().Mount();
        Assert.Equal(["base.txt", "dir", "shadowed.txt", "top.txt"], Directory.GetFileSystemEntries(m.Merged).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("lower0 version\n", File.ReadAllText(Path.Combine(m.Merged, "shadowed.txt")));
    }

    [MountFact]
    public void Writing_a_lower_file_copies_it_up_and_leaves_the_lower_file_alone()
    {
        using var m = Layers().Mount();
        File.AppendAllText(Path.Combine(m.Merged, "dir", "sub", "deep.txt"), "more\n");
        Assert.Equal("deep\nmore\n", File.ReadAllText(Path.Combine(m.Merged, "dir", "sub", "deep.txt")));
        Assert.Equal("deep\nmore\n", File.ReadAllText(Path.Combine(m.Upper, "dir", "sub", "deep.txt")));
        Assert.Equal("deep\n", File.ReadAllText(Path.Combine(m.Lower(1), "dir", "sub", "deep.txt")));
        // Nothing half-made is left in the work directory once the copy-up is published.
        Assert.Empty(Directory.GetDirectories(m.Work).SelectMany(d => Directory.GetFileSystemEntries(d)));
    }

    [MountFact]
    public void Deleting_a_lower_file_leaves_a_whiteout_device_and_hides_the_name()
    {
        using var m = Layers().Mount();
        File.Delete(Path.Combine(m.Merged, "base.txt"));
        Assert.False(File.Exists(Path.Combine(m.Merged, "base.txt")));
        Assert.True(File.Exists(Path.Combine(m.Lower(1), "base.txt")));
        Assert.Equal(0, Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(m.Upper, "base.txt"), out var st));
        Assert.Equal(ModeBits.S_IFCHR, st.FileType);
        Assert.Equal((0u, 0u), (st.RDevMajor, st.RDevMinor));
        Assert.DoesNotContain("base.txt", Directory.GetFileSystemEntries(m.Merged).Select(Path.GetFileName));
    }

    [MountFact]
    public void A_directory_made_where_a_lower_one_was_removed_is_opaque()
    {
        using var m = Layers().Mount();
        Directory.Delete(Path.Combine(m.Merged, "dir"), recursive: true);
        Directory.CreateDirectory(Path.Combine(m.Merged, "dir"));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(m.Merged, "dir")));
        var opaque = Cli.Shell($"getfattr --only-values -n trusted.overlay.opaque {Path.Combine(m.Upper, "dir")} 2>/dev/null || python3 -c \"import os,sys; sys.stdout.write(os.getxattr('{Path.Combine(m.Upper, "dir")}','trusted.overlay.opaque').decode())\"");
        Assert.Equal("y", opaque.StdOut.Trim());
        Assert.True(File.Exists(Path.Combine(m.Lower(1), "dir", "a.txt")));
    }

    [MountFact]
    public void Renaming_a_lower_directory_works_without_EXDEV()
    {
        using var m = Layers().Mount();
        var r = Cli.Shell($"mv {Path.Combine(m.Merged, "dir")} {Path.Combine(m.Merged, "moved")}");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Equal("deep\n", File.ReadAllText(Path.Combine(m.Merged, "moved", "sub", "deep.txt")));
        Assert.False(Directory.Exists(Path.Combine(m.Merged, "dir")));
        Assert.True(Directory.Exists(Path.Combine(m.Lower(1), "dir")));
    }

    [MountFact]
    public void Inode_numbers_survive_copy_up()
    {
        using var m = Layers().Mount();
        string path = Path.Combine(m.Merged, "base.txt");
        Sys.LStatxAt(Sys.AT_FDCWD, path, out var before);
        File.AppendAllText(path, "x");
        Sys.LStatxAt(Sys.AT_FDCWD, path, out var after);
        Assert.Equal(before.Ino, after.Ino);
    }

    [MountFact]
    public void Markers_are_never_visible_through_the_union()
    {
        using var m = Layers().Mount();
        File.Delete(Path.Combine(m.Merged, "top.txt"));
        Directory.Delete(Path.Combine(m.Merged, "dir"), recursive: true);
        Directory.CreateDirectory(Path.Combine(m.Merged, "dir"));
        var listing = Cli.Shell($"ls -la {m.Merged}; ls -la {m.Merged}/dir; python3 -c \"import os; print(os.listxattr('{m.Merged}/dir'))\"");
        Assert.DoesNotContain("top.txt", listing.StdOut);
        Assert.DoesNotContain("overlay", listing.StdOut);
        Assert.DoesNotContain(".wh.", listing.StdOut);
    }

    [MountFact]
    public void Same_scenario_gives_the_same_tree_as_kernel_overlayfs()
    {
        string script = Path.Combine(AppContext.BaseDirectory, "scenario.sh");
        using var lamina = Layers();
        using var kernel = Layers();
        lamina.Mount();
        var mounted = Cli.Shell($"mount -t overlay overlay -o {kernel.Options()} {kernel.Merged}");
        Assert.True(mounted.ExitCode == 0, "kernel overlayfs mount failed: " + mounted.StdErr);
        try
        {
            var ours = Cli.Shell($"sh {script} {lamina.Merged}");
            var theirs = Cli.Shell($"sh {script} {kernel.Merged}");
            Assert.True(theirs.ExitCode == 0, theirs.StdErr);
            Assert.True(ours.ExitCode == 0, ours.StdErr);
            Assert.Equal(theirs.StdOut, ours.StdOut);
            Assert.Contains("renamed/sub/deep.txt", ours.StdOut);
        }
        finally
        {
            Sys.Umount2(kernel.Merged, 0);
        }
    }
}

/// <summary>A descriptor follows its file across copy-up; /proc shows union paths.</summary>
public class HandleAndPathTests
{
    private static LaminaMount OneFile() => new(1, m => File.WriteAllText(Path.Combine(m.Lower(0), "log.txt"), "first\n"));

    [MountFact] public void Read_only_descriptor_reads_data_written_after_copy_up_with_passthrough_upper() => ReadOnlyFollows("passthrough=upper");

    [MountFact] public void Read_only_descriptor_reads_data_written_after_copy_up_without_passthrough() => ReadOnlyFollows("passthrough=off");

    private static void ReadOnlyFollows(string options)
    {
        using var m = OneFile().Mount(options);
        string path = Path.Combine(m.Merged, "log.txt");
        using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buf = new byte[64];
        Assert.Equal("first\n", System.Text.Encoding.UTF8.GetString(buf, 0, RandomAccess.Read(reader.SafeFileHandle, buf, 0)));
        var w = Cli.Shell($"echo second >> {path}");
        Assert.True(w.ExitCode == 0, w.StdErr);
        Assert.True(File.Exists(Path.Combine(m.Upper, "log.txt")), "the write did not copy up");
        Assert.Equal("first\nsecond\n", System.Text.Encoding.UTF8.GetString(buf, 0, RandomAccess.Read(reader.SafeFileHandle, buf, 0)));
    }

    [MountFact] public void A_large_lower_file_reads_the_same_before_and_after_copy_up_with_passthrough_upper() => LargeReadOnlyFollows("passthrough=upper");

    [MountFact] public void A_large_lower_file_reads_the_same_before_and_after_copy_up_without_passthrough() => LargeReadOnlyFollows("passthrough=off");

    /// <summary>
    /// Reads of a lower file too large for one READ (the daemon splices them from the branch file),
    /// then a copy-up by another process that rewrites a middle range: the read-only descriptor
    /// reads the whole new content, from the upper copy.
    /// </summary>
    private static void LargeReadOnlyFollows(string options)
    {
        var data = new byte[(4 << 20) + 321];
        new Random(3).NextBytes(data);
        using var m = new LaminaMount(1, m => File.WriteAllBytes(Path.Combine(m.Lower(0), "big.bin"), data)).Mount(options);
        string path = Path.Combine(m.Merged, "big.bin");
        using var reader = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        Assert.True(data.AsSpan().SequenceEqual(ReadAll(reader, data.Length)), "the lower file read through the union differs");

        var patch = new byte[300_000];
        new Random(4).NextBytes(patch);
        const long at = 1_000_001;
        using (var writer = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
            RandomAccess.Write(writer, patch, at);
        Assert.True(File.Exists(Path.Combine(m.Upper, "big.bin")), "the write did not copy up");
        patch.CopyTo(data, at);
        Assert.True(data.AsSpan().SequenceEqual(ReadAll(reader, data.Length)), "the read-only descriptor does not read the copied-up file");
        Assert.True(data.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(m.Upper, "big.bin"))), "the upper copy differs");
        // A read-only open of a lower file is served by the daemon in these modes: by splice, the large READs.
        var status = Cli.Run("status", m.Merged);
        var served = System.Text.RegularExpressions.Regex.Match(status.StdOut, @"reads served: (\d+) spliced, (\d+) copied");
        Assert.True(served.Success, $"no 'reads served' line in:\n{status.StdOut}");
        Assert.True(long.Parse(served.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 30, served.Value); // 4 MiB in 128 KiB readahead READs
    }

    private static byte[] ReadAll(Microsoft.Win32.SafeHandles.SafeFileHandle h, int length)
    {
        var buf = new byte[length + 4096];
        int got = 0;
        while (true)
        {
            int n = RandomAccess.Read(h, buf.AsSpan(got, Math.Min(1 << 20, buf.Length - got)), got);
            if (n == 0) break;
            got += n;
        }
        Assert.Equal(length, got);
        return buf[..got];
    }

    [MountFact] public void A_write_open_while_the_lower_file_passes_through_is_served_default_mode() => WriterServedBesideLowerReader("");

    [MountFact] public void A_write_open_while_the_lower_file_passes_through_is_served_with_passthrough_on() => WriterServedBesideLowerReader("passthrough=on");

    /// <summary>
    /// A lower file open read-only passes through to the lower file, and the kernel binds the inode to it.
    /// An open for writing (another process, which copies the file up) is still served: on a new kernel
    /// inode that passes through to the upper copy. The old descriptor keeps reading the lower file, as
    /// on kernel overlayfs before 4.19; every open after the copy-up reads the new data, and both inodes
    /// are one file to locks and stat.
    /// </summary>
    private static void WriterServedBesideLowerReader(string options)
    {
        using var m = OneFile().Mount(options);
        string path = Path.Combine(m.Merged, "log.txt");
        using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buf = new byte[64];
        Assert.Equal("first\n", System.Text.Encoding.UTF8.GetString(buf, 0, RandomAccess.Read(reader.SafeFileHandle, buf, 0)));
        var w = Cli.Shell($"echo second >> {path}");
        Assert.True(w.ExitCode == 0, w.StdErr);
        Assert.Equal("first\nsecond\n", File.ReadAllText(Path.Combine(m.Upper, "log.txt")));
        Assert.Equal("first\n", System.Text.Encoding.UTF8.GetString(buf, 0, RandomAccess.Read(reader.SafeFileHandle, buf, 0)));
        Assert.Equal("first\nsecond\n", File.ReadAllText(path));
        Assert.Equal(0, Sys.FStatx(reader.SafeFileHandle.DangerousGetHandle().ToInt32(), out var old));
        Assert.Equal(0, Sys.LStatxAt(Sys.AT_FDCWD, path, out var now));
        Assert.Equal(old.Ino, now.Ino);
        // Nothing of it went through the daemon: the lower read and the later ones pass through.
        var status = Cli.Run("status", m.Merged).StdOut;
        Assert.Contains("reads served: 0 spliced, 0 copied", status);
    }

    [MountFact] public void Proc_fd_and_maps_show_the_union_path_default_mode() => ProcPaths("");

    [MountFact] public void Proc_fd_and_maps_show_the_union_path_with_passthrough_on() => ProcPaths("passthrough=on");

    private static void ProcPaths(string options)
    {
        using var m = new LaminaMount(1, m => File.WriteAllBytes(Path.Combine(m.Lower(0), "data.bin"), new byte[8192])).Mount(options);
        File.WriteAllBytes(Path.Combine(m.Merged, "upper.bin"), new byte[8192]);
        foreach (var name in new[] { "data.bin", "upper.bin" })
        {
            string path = Path.Combine(m.Merged, name);
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read);
            string link = new FileInfo($"/proc/self/fd/{fs.SafeFileHandle.DangerousGetHandle()}").LinkTarget!;
            Assert.Equal(path, link);
            using var map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            using var view = map.CreateViewAccessor(0, 4096, MemoryMappedFileAccess.Read);
            Assert.Equal(0, view.ReadByte(100));
            string maps = File.ReadAllText("/proc/self/maps");
            Assert.Contains(path, maps);
            Assert.DoesNotContain(m.Lower(0), maps);
            Assert.DoesNotContain(m.Upper, maps);
        }
    }

    [MountFact]
    public void Mountinfo_shows_the_union_mount_point_and_type()
    {
        using var m = OneFile().Mount("fsname=lamina-test");
        var line = File.ReadLines("/proc/self/mountinfo").Single(l => l.Contains(" " + m.Merged + " ", StringComparison.Ordinal));
        Assert.Contains(" - fuse.lamina lamina-test ", line);
        Assert.DoesNotContain(m.Upper, line);
    }
}
