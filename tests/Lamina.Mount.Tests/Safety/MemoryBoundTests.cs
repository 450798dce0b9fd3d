using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace Lamina.Mount.Tests.Safety;

/// <summary>
/// Issue 4, bounded resources: walking a large tree through the mount does not make the daemon
/// keep what it walked. The kernel's FORGETs drop the nodes (the node count falls back to a handful
/// once the kernel lets go of its dentries and inodes), and the daemon's memory grows with what the
/// kernel holds at once, not with how many files have been walked.
/// </summary>
/// <remarks>
/// The tree (50,000 empty files in 500 directories of one lower layer) is walked in five parts of
/// 10,000 files, each with lstat of every file, and the kernel's dentry and inode caches are dropped
/// after each part (what memory pressure does during a real walk of millions of files). Measured on
/// the 2-core CI machine: the node count is back to 1 after every part; VmRSS grows ~60 MB over the
/// first two parts (the runtime warming up and the GC heap reaching its working size) and ~2 MB over
/// the last three.
/// </remarks>
public class MemoryBoundTests(ITestOutputHelper output)
{
    private const int Dirs = 500, FilesPerDir = 100, Parts = 5;
    private const int TotalFiles = Dirs * FilesPerDir;
    /// <summary>Nodes the daemon may keep once the kernel's caches are dropped: 1% of the files walked.</summary>
    private const int NodeLimit = TotalFiles / 100;
    /// <summary>VmRSS growth over the whole walk, per file walked (measured: ~1.3 KB).</summary>
    private const long MaxBytesPerFile = 3 * 1024;
    /// <summary>VmRSS growth over the last three parts (30,000 files nobody had walked before), as a share of the growth over the first two (measured: ~3%).</summary>
    private const double MaxLateGrowthShare = 0.25;

    private const string Generate = """
        import os, sys
        root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        for d in range(dirs):
            p = os.path.join(root, "d%03d" % d)
            os.mkdir(p)
            for f in range(files):
                os.close(os.open(os.path.join(p, "f%03d" % f), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        """;

    private const string Walk = """
        import os, sys
        root, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        n = 0
        for d in range(first, last):
            for top, subdirs, files in os.walk(os.path.join(root, "d%03d" % d)):
                for f in files:
                    os.lstat(os.path.join(top, f))
                    n += 1
        print(n)
        """;

    [MountFact(Needs = "python3")]
    public void Walking_a_large_tree_keeps_neither_its_nodes_nor_memory_once_the_kernel_forgets_them()
    {
        var sw = Stopwatch.StartNew();
        using var m = new LaminaMount(1, mm => Python(Generate, mm.Lower(0), $"{Dirs}", $"{FilesPerDir}"));
        double generated = sw.Elapsed.TotalSeconds;
        m.Mount();
        int pid = m.DaemonPid() ?? throw new InvalidOperationException("the daemon does not report its pid");
        string Say(string line) { output.WriteLine(line); Console.WriteLine(line); return line; }
        Say($"memory bound: {TotalFiles} files in {Dirs} directories made in {generated:F1} s; daemon {pid}");

        long rss0 = RssBytes(pid);
        var rss = new List<long>();
        int dirsPerPart = Dirs / Parts;
        for (int part = 0; part < Parts; part++)
        {
            var walked = Python(Walk, m.Merged, $"{part * dirsPerPart}", $"{(part + 1) * dirsPerPart}").Trim();
            Assert.Equal($"{dirsPerPart * FilesPerDir}", walked);
            int nodesWalked = Nodes(m);
            long rssWalked = RssBytes(pid);
            // The walk made the daemon know the files (else there is nothing to forget, and the test proves nothing).
            Assert.True(nodesWalked > dirsPerPart * FilesPerDir / 2, $"part {part}: only {nodesWalked} nodes after walking {dirsPerPart * FilesPerDir} files");

            int nodesAfter = DropCachesUntil(m, NodeLimit);
            long rssAfter = RssBytes(pid);
            rss.Add(rssAfter);
            Say($"memory bound: part {part + 1}/{Parts}: {walked} files walked, nodes {nodesWalked} -> {nodesAfter} after drop_caches; VmRSS {Mb(rssWalked)} -> {Mb(rssAfter)} (start {Mb(rss0)})");
            Assert.True(nodesAfter < NodeLimit,
                $"part {part + 1}: the daemon still has {nodesAfter} nodes after the kernel dropped its caches (limit {NodeLimit}, 1% of {TotalFiles}): FORGET is not honoured");
        }

        long total = rss[^1] - rss0;
        long early = rss[1] - rss0, late = rss[^1] - rss[1];
        Say($"memory bound: VmRSS grew {Mb(total)} over {TotalFiles} files ({(double)total / TotalFiles:F0} bytes per file, limit {MaxBytesPerFile}); " +
            $"{Mb(early)} over the first {2 * dirsPerPart * FilesPerDir} files, {Mb(late)} over the last {(Parts - 2) * dirsPerPart * FilesPerDir} (limit {MaxLateGrowthShare:P0} of the first); {sw.Elapsed.TotalSeconds:F1} s in all");
        Assert.True(total < MaxBytesPerFile * TotalFiles, $"VmRSS grew {Mb(total)} walking {TotalFiles} files, more than {MaxBytesPerFile} bytes per file");
        Assert.True(late < Math.Max(early, 0) * MaxLateGrowthShare,
            $"VmRSS grew {Mb(late)} over the last {Parts - 2} parts against {Mb(early)} over the first two: memory grows with the files walked");
        Assert.Equal(pid, m.DaemonPid()); // the same daemon lived through it and still answers
    }

    /// <summary>Asks the kernel to drop dentries and inodes (which sends the FORGETs) until the daemon's node count is below <paramref name="limit"/>; returns the last count.</summary>
    private static int DropCachesUntil(LaminaMount m, int limit)
    {
        int nodes = int.MaxValue;
        for (int attempt = 0; attempt < 20 && nodes >= limit; attempt++)
        {
            File.WriteAllText("/proc/sys/vm/drop_caches", "2\n");
            Thread.Sleep(250);
            nodes = Nodes(m);
        }
        return nodes;
    }

    /// <summary>The node count `lamina status` prints.</summary>
    private static int Nodes(LaminaMount m)
    {
        var r = Cli.Run("status", m.Merged);
        Assert.True(r.ExitCode == 0, r.StdErr);
        var line = r.StdOut.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("nodes: ", StringComparison.Ordinal));
        Assert.True(line is not null, "lamina status prints no node count:\n" + r.StdOut);
        return int.Parse(line["nodes: ".Length..], CultureInfo.InvariantCulture);
    }

    private static long RssBytes(int pid)
    {
        var line = File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    private static string Mb(long bytes) => $"{bytes / (1024.0 * 1024):F1} MB";

    private static string Python(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(); Assert.Fail("python3 did not finish in 120 s"); }
        Assert.True(p.ExitCode == 0, $"python3 exited {p.ExitCode}: {err.Result}");
        return stdout;
    }
}
