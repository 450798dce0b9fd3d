using System.Runtime.InteropServices;
using System.Text;
using Lamina.Fuse.Tests.Infrastructure;
using Lamina.Native;
using Xunit.Abstractions;

namespace Lamina.Fuse.Tests;

/// <summary>100,000 entries made directly in the source directory, then listed through the mount.</summary>
public sealed class LargeDirectoryFixture : IDisposable
{
    public const int Count = 100_000;
    private readonly Lazy<LoopbackServer> _server = new(() => LoopbackServer.Start(prepare: src =>
    {
        string dir = Path.Combine(src, "many");
        Directory.CreateDirectory(dir);
        int dfd = Sys.Open(dir, Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_CLOEXEC);
        if (dfd < 0) throw new ErrnoException(Sys.LastErrno, "open", dir);
        try
        {
            for (int i = 0; i < Count; i++)
            {
                int fd = Sys.OpenAt(dfd, Name(i), Sys.O_CREAT | Sys.O_EXCL | Sys.O_WRONLY | Sys.O_CLOEXEC, 0x1a4);
                if (fd < 0) throw new ErrnoException(Sys.LastErrno, "create", Name(i));
                Sys.Close(fd);
            }
        }
        finally { Sys.Close(dfd); }
    }), LazyThreadSafetyMode.ExecutionAndPublication);

    public static string Name(int i) => $"entry-{i:D6}-{(i * 2654435761u) % 1000003:D7}";

    public LoopbackServer Server => _server.Value;

    public string Many => Path.Combine(Server.MountPoint, "many");

    public void Dispose()
    {
        if (_server.IsValueCreated) _server.Value.Dispose();
    }
}

public sealed class LargeDirectoryTests(LargeDirectoryFixture fx, ITestOutputHelper output) : IClassFixture<LargeDirectoryFixture>
{
    private static HashSet<string> Expected() => Enumerable.Range(0, LargeDirectoryFixture.Count).Select(LargeDirectoryFixture.Name).ToHashSet();

    /// <summary>Reads a directory with getdents64 in small buffers: every entry with the d_off that resumes after it.</summary>
    private static List<(string Name, long Off)> GetDents(int fd, int bufferSize = 4096, int? limit = null)
    {
        var list = new List<(string, long)>();
        var buf = new byte[bufferSize];
        while (limit is null || list.Count < limit)
        {
            int n = Sys.GetDents64(fd, buf);
            if (n < 0) throw new ErrnoException(Sys.LastErrno, "getdents64");
            if (n == 0) break;
            for (int pos = 0; pos < n;)
            {
                long off = MemoryMarshal.Read<long>(buf.AsSpan(pos + 8));
                ushort reclen = MemoryMarshal.Read<ushort>(buf.AsSpan(pos + 16));
                var name = buf.AsSpan(pos + 19, reclen - 19);
                name = name[..name.IndexOf((byte)0)];
                list.Add((Encoding.UTF8.GetString(name), off));
                pos += reclen;
            }
        }
        return list;
    }

    [FuseFact]
    public void Listing_returns_every_entry_exactly_once()
    {
        string many = fx.Many; // starts the server (and makes the 100,000 files) on first use
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var names = Directory.EnumerateFileSystemEntries(many).Select(Path.GetFileName).ToList();
        output.WriteLine($"listed {names.Count} entries in {sw.ElapsedMilliseconds} ms");
        Assert.Equal(LargeDirectoryFixture.Count, names.Count);
        Assert.True(Expected().SetEquals(names!), "the listing differs from the names made in the source");
    }

    [FuseFact]
    public void Getdents_offsets_resume_where_they_left_off()
    {
        List<(string Name, long Off)> all;
        using (var fd = Posix.Open(fx.Many, Sys.O_RDONLY | Sys.O_DIRECTORY))
            all = GetDents(fd.Fd);
        Assert.Equal(LargeDirectoryFixture.Count + 2, all.Count);            // with . and ..
        Assert.Equal(all.Count, all.Select(e => e.Name).Distinct().Count()); // no duplicates
        Assert.True(Expected().IsSubsetOf(all.Select(e => e.Name)));

        // seekdir to the cookie of entry k-1 (telldir after it) and the next entry is entry k.
        foreach (int k in new[] { 1, 2, 3, 1000, 4097, 50_000, all.Count - 1 })
        {
            using var fd = Posix.Open(fx.Many, Sys.O_RDONLY | Sys.O_DIRECTORY);
            Assert.Equal(all[k - 1].Off, Sys.LSeek(fd.Fd, all[k - 1].Off, Sys.SEEK_SET));
            var next = GetDents(fd.Fd, 1024, limit: 5);
            Assert.True(next.Count > 0, $"nothing after seeking to the cookie of entry {k - 1}");
            Assert.True(next[0].Name == all[k].Name, $"after the cookie of entry {k - 1} came {next[0].Name}, expected {all[k].Name}");
            Assert.Equal(all.Skip(k).Take(next.Count).Select(e => e.Name), next.Select(e => e.Name));
        }

        // The rest of the directory from the middle, in tiny buffers, is exactly the rest.
        using (var fd = Posix.Open(fx.Many, Sys.O_RDONLY | Sys.O_DIRECTORY))
        {
            int mid = all.Count / 2;
            Sys.LSeek(fd.Fd, all[mid - 1].Off, Sys.SEEK_SET);
            var rest = GetDents(fd.Fd, 512);
            Assert.Equal(all.Skip(mid).Select(e => e.Name), rest.Select(e => e.Name));
        }
    }

    [FuseFact]
    public void Ls_f_counts_every_entry()
    {
        string ls = Conditions.FindOnPath("ls") ?? throw new InvalidOperationException("ls is missing");
        string outp = Posix.Run(ls, out int rc, "-f", fx.Many);
        Assert.Equal(0, rc);
        var lines = outp.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(LargeDirectoryFixture.Count + 2, lines.Length);
    }

    /// <summary>
    /// A listing that also stats every entry as it goes (ls -l order, find -size) makes the kernel
    /// use READDIRPLUS for every chunk, which hands the server a node per entry. The loopback holds
    /// one descriptor per node, so past RLIMIT_NOFILE it cannot make more: the listing must still
    /// name every entry (it used to end silently at the limit, ~20,000 here), and only the stat
    /// calls may fail, with EMFILE.
    /// </summary>
    [FuseFact]
    public void Listing_while_stating_every_entry_still_names_them_all()
    {
        string many = fx.Many;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var names = new List<string>();
        var failures = new Dictionary<Errno, int>();
        int regularEmpty = 0;
        using (var fd = Posix.Open(fx.Many, Sys.O_RDONLY | Sys.O_DIRECTORY))
        {
            var buf = new byte[32 * 1024];
            while (true)
            {
                int n = Sys.GetDents64(fd.Fd, buf);
                if (n < 0) throw new ErrnoException(Sys.LastErrno, "getdents64");
                if (n == 0) break;
                for (int pos = 0; pos < n;)
                {
                    ushort reclen = MemoryMarshal.Read<ushort>(buf.AsSpan(pos + 16));
                    var raw = buf.AsSpan(pos + 19, reclen - 19);
                    string name = Encoding.UTF8.GetString(raw[..raw.IndexOf((byte)0)]);
                    pos += reclen;
                    if (name is "." or "..") continue;
                    names.Add(name);
                    if (Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(fx.Many, name), out var st) == 0)
                    {
                        if (st.IsRegular && st.Size == 0) regularEmpty++;
                    }
                    else failures[Sys.LastErrno] = failures.GetValueOrDefault(Sys.LastErrno) + 1;
                }
            }
        }
        output.WriteLine($"listed {names.Count} entries, stat'ed each, in {sw.ElapsedMilliseconds} ms; " +
            $"{regularEmpty} stat calls worked, failures: {(failures.Count == 0 ? "none" : string.Join(", ", failures.Select(f => $"{f.Key} x{f.Value}")))}");
        Assert.Equal(LargeDirectoryFixture.Count, names.Count);
        Assert.True(Expected().SetEquals(names), "the listing differs from the names made in the source");
        Assert.True(failures.Keys.All(e => e == Errno.EMFILE), "stat failed with something other than EMFILE (the server's descriptor limit)");
        Assert.Equal(LargeDirectoryFixture.Count, regularEmpty + failures.GetValueOrDefault(Errno.EMFILE));
    }
}
