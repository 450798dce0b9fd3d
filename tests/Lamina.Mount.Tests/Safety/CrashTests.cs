using System.Diagnostics;
using Lamina.Native;
using Xunit.Abstractions;

namespace Lamina.Mount.Tests.Safety;

/// <summary>
/// kill -9 of the daemon at random points of copy-up-heavy work: every branch stays consistent,
/// the next mount cleans the work directory, and nothing half-made is ever visible.
/// </summary>
public class CrashTests(ITestOutputHelper output)
{
    private const int Files = 40;
    // Large enough that a copy-up takes a while, so kills land inside copies.
    private static readonly byte[] LowerContent = Enumerable.Range(0, 4 << 20).Select(i => (byte)(i * 7 + 3)).ToArray();
    private static readonly byte[] Appended = "appended\n"u8.ToArray();

    [MountFact]
    public void Kill_9_at_random_points_never_leaves_a_half_made_file()
    {
        using var m = new LaminaMount(1, m =>
        {
            Directory.CreateDirectory(Path.Combine(m.Lower(0), "d"));
            for (int i = 0; i < Files; i++)
            {
                File.WriteAllBytes(Path.Combine(m.Lower(0), "d", $"f{i}"), LowerContent);
                File.WriteAllText(Path.Combine(m.Lower(0), "d", $"r{i}"), $"rename me {i}\n");
                File.WriteAllText(Path.Combine(m.Lower(0), "d", $"x{i}"), $"delete me {i}\n");
            }
        });
        var random = new Random(20261121);
        int rounds = 6;
        for (int round = 0; round < rounds; round++)
        {
            m.Mount();
            int pid = m.DaemonPid() ?? throw new InvalidOperationException("no daemon pid");
            // Copy-ups, renames of lower files and deletions, in a separate process, until the daemon dies.
            var worker = Process.Start(new ProcessStartInfo("/bin/sh")
            {
                ArgumentList =
                {
                    "-c",
                    $"cd {m.Merged}/d && for i in $(seq 0 {Files - 1}); do echo appended >> f$i; mv r$i moved$i 2>/dev/null; rm -f x$i; mkdir -p new$i && echo new > new$i/file; done",
                },
                RedirectStandardError = true,
                UseShellExecute = false,
            })!;
            Thread.Sleep(random.Next(20, 400));
            Sys.Kill(pid, Sys.SIGKILL);
            Assert.True(LaminaMount.WaitForExit(pid, TimeSpan.FromSeconds(10)));
            worker.WaitForExit(30_000);
            var r = Cli.Run("umount", m.Merged);
            Assert.True(r.ExitCode == 0, r.StdErr);

            CheckBranches(m, round);
        }

        // A last clean mount: the work directory is emptied, and the merged view is whole.
        m.Mount();
        foreach (var dir in Directory.GetDirectories(m.Work))
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        CheckView(Path.Combine(m.Merged, "d"));
        m.Unmount();
    }

    /// <summary>The upper branch holds only whole objects: full copies, plus whole appends.</summary>
    private void CheckBranches(LaminaMount m, int round)
    {
        string upper = Path.Combine(m.Upper, "d");
        int copies = 0;
        if (Directory.Exists(upper))
        {
            foreach (var path in Directory.GetFileSystemEntries(upper))
            {
                string name = Path.GetFileName(path);
                Sys.LStatxAt(Sys.AT_FDCWD, path, out var st);
                if (st.FileType == ModeBits.S_IFCHR) { Assert.Equal((0u, 0u), (st.RDevMajor, st.RDevMinor)); continue; } // whiteout
                if (name.StartsWith('f'))
                {
                    CheckCopiedFile(path);
                    copies++;
                }
            }
        }
        output.WriteLine($"round {round}: {copies} copied-up files in the upper branch, all whole");
        // The lower branch is never touched.
        for (int i = 0; i < Files; i++)
            Assert.Equal(LowerContent.Length, new FileInfo(Path.Combine(m.Lower(0), "d", $"f{i}")).Length);
    }

    private static void CheckCopiedFile(string path)
    {
        var data = File.ReadAllBytes(path);
        Assert.True(data.Length >= LowerContent.Length, $"{path} is a half-made copy ({data.Length} of {LowerContent.Length} bytes)");
        Assert.True(data.AsSpan(0, LowerContent.Length).SequenceEqual(LowerContent), $"{path} does not start with the lower content");
        var tail = data.AsSpan(LowerContent.Length);
        Assert.True(tail.Length % Appended.Length == 0, $"{path} has a partial append");
        for (int k = 0; k < tail.Length; k += Appended.Length)
            Assert.True(tail.Slice(k, Appended.Length).SequenceEqual(Appended), $"{path} has foreign bytes after the lower content");
    }

    private static void CheckView(string merged)
    {
        var names = Directory.GetFileSystemEntries(merged).Select(Path.GetFileName).ToHashSet();
        for (int i = 0; i < Files; i++)
        {
            CheckCopiedFile(Path.Combine(merged, $"f{i}"));
            Assert.True(names.Contains($"r{i}") ^ names.Contains($"moved{i}"), $"r{i} and moved{i}: exactly one must exist");
        }
        Assert.DoesNotContain(names, n => n!.StartsWith(".wh.", StringComparison.Ordinal) || n.StartsWith('#'));
    }
}
