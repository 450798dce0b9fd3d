using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Lamina.Fuse.Tests.Infrastructure;
using Lamina.Native;
using Microsoft.Win32.SafeHandles;
using Xunit.Abstractions;

namespace Lamina.Fuse.Tests;

/// <summary>
/// Real syscalls from this process against lamina-loopback running as its own process; every
/// result is checked through the mount and in the source directory underneath. The same tests
/// run with kernel passthrough and without it (the subclasses at the end).
/// </summary>
public abstract class LoopbackIoTests
{
    private readonly ServerFixture _fixture;
    protected readonly ITestOutputHelper Output;

    protected LoopbackIoTests(ServerFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        Output = output;
    }

    protected abstract bool ExpectPassthrough { get; }

    protected virtual bool ExpectWriteback => false;

    protected LoopbackServer S => _fixture.Server;

    /// <summary>A fresh directory for one test, made through the mount: (path in the mount, path in the source).</summary>
    protected (string Mnt, string Src) Dir([CallerMemberName] string name = "")
    {
        string m = Path.Combine(S.MountPoint, name);
        Directory.CreateDirectory(m);
        return (m, Path.Combine(S.Source, name));
    }

    [FuseFact]
    public void Ready_line_reports_the_mode_and_protocol()
    {
        Output.WriteLine(S.ReadyLine);
        Assert.Matches(LoopbackServer.ReadyRegex(), S.ReadyLine);
        Assert.Equal(ExpectPassthrough && Conditions.IsRoot, S.Passthrough);
        Assert.Equal(ExpectWriteback, S.ReadyLine.Contains("writeback=True", StringComparison.Ordinal));
        Assert.Equal(Conditions.IsRoot, S.ReadyLine.Contains("handles=True", StringComparison.Ordinal)); // CAP_DAC_READ_SEARCH: file handles
        Assert.InRange(S.ProtocolMinor, 31, 45);
        Assert.True(S.Mounted, "the mount point is not in /proc/self/mountinfo");
        Assert.Contains("fuse.lamina-loopback", File.ReadAllText("/proc/self/mountinfo"));
    }

    [FuseFact]
    public void Create_read_write_append_and_truncate()
    {
        var (mnt, src) = Dir();
        string f = Path.Combine(mnt, "file.txt");
        File.WriteAllText(f, "hello, world\n");
        Assert.Equal("hello, world\n", File.ReadAllText(f));
        Assert.Equal("hello, world\n", File.ReadAllText(Path.Combine(src, "file.txt")));

        File.AppendAllText(f, "more\n");
        Assert.Equal("hello, world\nmore\n", File.ReadAllText(Path.Combine(src, "file.txt")));

        using (var h = File.OpenHandle(f, FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.Write(h, "HELLO"u8, 0);
            RandomAccess.SetLength(h, 9);                       // ftruncate through the open file
            Assert.Equal(9, RandomAccess.GetLength(h));
        }
        Assert.Equal("HELLO, wo", File.ReadAllText(f));
        Assert.Equal("HELLO, wo", File.ReadAllText(Path.Combine(src, "file.txt")));

        Posix.Check(Sys.Truncate(f, 100_000), "truncate", f);      // truncate by path: a sparse extension
        Assert.Equal(100_000, new FileInfo(f).Length);
        Assert.Equal(100_000, new FileInfo(Path.Combine(src, "file.txt")).Length);
        var all = File.ReadAllBytes(f);
        Assert.True(all.AsSpan(9).IndexOfAnyExcept((byte)0) < 0, "the extension must read as zeros");

        using (Posix.Open(f, Sys.O_WRONLY | Sys.O_TRUNC)) { }
        Assert.Equal(0, new FileInfo(Path.Combine(src, "file.txt")).Length);

        // O_EXCL on an existing name fails, unlink removes it underneath.
        Assert.Equal(Errno.EEXIST, Sys.Open(f, Sys.O_CREAT | Sys.O_EXCL | Sys.O_WRONLY, 0x1a4) < 0 ? Sys.LastErrno : Errno.None);
        File.Delete(f);
        Assert.False(File.Exists(Path.Combine(src, "file.txt")));
        Assert.Equal(Errno.ENOENT, Posix.LStatErrno(f));
    }

    [FuseFact]
    public void Mkdir_rmdir_and_chmod()
    {
        var (mnt, src) = Dir();
        string d = Path.Combine(mnt, "sub", "deeper");
        Directory.CreateDirectory(d);
        Assert.True(Directory.Exists(Path.Combine(src, "sub", "deeper")));
        File.SetUnixFileMode(d, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead);
        Assert.Equal(0x1e0u, Posix.LStat(Path.Combine(src, "sub", "deeper")).Mode & 0xfffu);
        File.WriteAllText(Path.Combine(d, "x"), "x");
        Assert.Equal(Errno.ENOTEMPTY, Sys.UnlinkAt(Sys.AT_FDCWD, Path.Combine(mnt, "sub"), Sys.AT_REMOVEDIR) == 0 ? Errno.None : Sys.LastErrno);
        Directory.Delete(Path.Combine(mnt, "sub"), recursive: true);
        Assert.False(Directory.Exists(Path.Combine(src, "sub")));
    }

    [FuseFact]
    public void Rename_plain_noreplace_and_exchange()
    {
        var (mnt, src) = Dir();
        string a = Path.Combine(mnt, "a"), b = Path.Combine(mnt, "b"), c = Path.Combine(mnt, "c");
        File.WriteAllText(a, "A");
        File.WriteAllText(b, "B");

        Assert.Equal(Errno.EEXIST, Posix.Rename(a, b, Sys.RENAME_NOREPLACE));
        Assert.Equal("A", File.ReadAllText(Path.Combine(src, "a")));
        Assert.Equal(Errno.None, Posix.Rename(a, c, Sys.RENAME_NOREPLACE));
        Assert.False(File.Exists(Path.Combine(src, "a")));
        Assert.Equal("A", File.ReadAllText(Path.Combine(src, "c")));

        Assert.Equal(Errno.None, Posix.Rename(b, c, Sys.RENAME_EXCHANGE));
        Assert.Equal("B", File.ReadAllText(c));
        Assert.Equal("A", File.ReadAllText(b));
        Assert.Equal("B", File.ReadAllText(Path.Combine(src, "c")));
        Assert.Equal("A", File.ReadAllText(Path.Combine(src, "b")));
        Assert.Equal(Errno.ENOENT, Posix.Rename(a, c, Sys.RENAME_EXCHANGE)); // both must exist

        // Across directories, replacing.
        Directory.CreateDirectory(Path.Combine(mnt, "other"));
        Assert.Equal(Errno.None, Posix.Rename(b, Path.Combine(mnt, "other", "c2"), 0));
        Assert.Equal("A", File.ReadAllText(Path.Combine(src, "other", "c2")));
    }

    [FuseFact]
    public void Rename_whiteout_leaves_a_0_0_character_device()
    {
        var (mnt, src) = Dir();
        File.WriteAllText(Path.Combine(mnt, "w"), "W");
        Assert.Equal(Errno.None, Posix.Rename(Path.Combine(mnt, "w"), Path.Combine(mnt, "moved"), Sys.RENAME_WHITEOUT));
        Assert.Equal("W", File.ReadAllText(Path.Combine(src, "moved")));
        var st = Posix.LStat(Path.Combine(src, "w"));
        Assert.Equal(ModeBits.S_IFCHR, st.FileType);
        Assert.Equal(0u, st.RDevMajor);
        Assert.Equal(0u, st.RDevMinor);
        var through = Posix.LStat(Path.Combine(mnt, "w"));
        Assert.Equal(ModeBits.S_IFCHR, through.FileType);
    }

    [FuseFact]
    public void Hard_links_and_symlinks()
    {
        var (mnt, src) = Dir();
        string f = Path.Combine(mnt, "target");
        File.WriteAllText(f, "data");
        Posix.Check(Sys.LinkAt(Sys.AT_FDCWD, f, Sys.AT_FDCWD, Path.Combine(mnt, "hard"), 0), "link");
        var s1 = Posix.LStat(f);
        var s2 = Posix.LStat(Path.Combine(mnt, "hard"));
        Assert.Equal(s1.Ino, s2.Ino);
        Assert.Equal(2u, s2.NLink);
        Assert.Equal(2u, Posix.LStat(Path.Combine(src, "target")).NLink);
        Assert.Equal(Posix.LStat(Path.Combine(src, "target")).Ino, Posix.LStat(Path.Combine(src, "hard")).Ino);
        File.AppendAllText(Path.Combine(mnt, "hard"), "+");
        Assert.Equal("data+", File.ReadAllText(f));

        File.CreateSymbolicLink(Path.Combine(mnt, "sym"), "target");
        File.CreateSymbolicLink(Path.Combine(mnt, "dangling"), "/nowhere/at/all");
        Assert.Equal("target", Sys.ReadLink(Sys.AT_FDCWD, Path.Combine(mnt, "sym")));
        Assert.Equal("target", Sys.ReadLink(Sys.AT_FDCWD, Path.Combine(src, "sym")));
        Assert.Equal("/nowhere/at/all", Sys.ReadLink(Sys.AT_FDCWD, Path.Combine(mnt, "dangling")));
        Assert.Equal(ModeBits.S_IFLNK, Posix.LStat(Path.Combine(mnt, "sym")).FileType);
        Assert.Equal("data+", File.ReadAllText(Path.Combine(mnt, "sym"))); // followed
        Assert.Equal(Errno.ENOENT, Sys.Open(Path.Combine(mnt, "dangling"), Sys.O_RDONLY) < 0 ? Sys.LastErrno : Errno.None);
    }

    [FuseFact]
    public void Xattrs_set_get_list_remove()
    {
        var (mnt, src) = Dir();
        string f = Path.Combine(mnt, "x");
        File.WriteAllText(f, "");
        var value = new byte[] { 0, 1, 2, 255, 0, 7 };
        Posix.Check(Sys.SetXattr(f, "user.one", value, 0), "setxattr");
        Posix.Check(Sys.SetXattr(f, "user.two", "2"u8, 1 /* XATTR_CREATE */), "setxattr");
        Assert.Equal(Errno.EEXIST, Sys.SetXattr(f, "user.two", "x"u8, 1) == 0 ? Errno.None : Sys.LastErrno);
        Assert.Equal(Errno.ENODATA, Sys.SetXattr(f, "user.three", "x"u8, 2 /* XATTR_REPLACE */) == 0 ? Errno.None : Sys.LastErrno);

        Assert.Equal(value, Posix.GetXattr(f, "user.one", out _));
        Assert.Equal(value, Posix.GetXattr(Path.Combine(src, "x"), "user.one", out _));
        Assert.Equal(6, (int)Sys.GetXattr(f, "user.one", Span<byte>.Empty));        // size query
        Assert.Equal(-1, (int)Sys.GetXattr(f, "user.one", new byte[2]));
        Assert.Equal(Errno.ERANGE, Sys.LastErrno);
        Assert.Null(Posix.GetXattr(f, "user.none", out var e));
        Assert.Equal(Errno.ENODATA, e);

        var names = Posix.ListXattr(f);
        Assert.Contains("user.one", names);
        Assert.Contains("user.two", names);
        Assert.True(Sys.ListXattr(f, Span<byte>.Empty) >= "user.one\0user.two\0".Length);

        Posix.Check(Sys.RemoveXattr(f, "user.one"), "removexattr");
        Assert.DoesNotContain("user.one", Posix.ListXattr(f));
        Assert.DoesNotContain("user.one", Posix.ListXattr(Path.Combine(src, "x")));
        Assert.Equal(Errno.ENODATA, Sys.RemoveXattr(f, "user.one") == 0 ? Errno.None : Sys.LastErrno);

        // Large values travel too.
        var big = RandomNumberGenerator.GetBytes(4000);
        Posix.Check(Sys.SetXattr(f, "user.big", big, 0), "setxattr");
        Assert.Equal(big, Posix.GetXattr(f, "user.big", out _));
    }

    [FuseFact]
    public void Mknod_fifo_and_character_device()
    {
        var (mnt, src) = Dir();
        Posix.Check(Sys.MknodAt(Sys.AT_FDCWD, Path.Combine(mnt, "fifo"), ModeBits.S_IFIFO | 0x1a4, 0), "mknod fifo");
        Assert.Equal(ModeBits.S_IFIFO, Posix.LStat(Path.Combine(src, "fifo")).FileType);
        Assert.Equal(ModeBits.S_IFIFO, Posix.LStat(Path.Combine(mnt, "fifo")).FileType);

        // The fifo works through the mount (the kernel handles it; the server only made the node).
        using (var r = Posix.Open(Path.Combine(mnt, "fifo"), Sys.O_RDONLY | Sys.O_NONBLOCK))
        using (var w = Posix.Open(Path.Combine(mnt, "fifo"), Sys.O_WRONLY | Sys.O_NONBLOCK))
        {
            Assert.Equal(3, (int)Sys.Write(w.Fd, "abc"u8));
            var buf = new byte[8];
            Assert.Equal(3, (int)Sys.Read(r.Fd, buf));
            Assert.Equal("abc", Encoding.ASCII.GetString(buf, 0, 3));
        }

        // A character device (root only): /dev/null's 1:3.
        Posix.Check(Sys.MknodAt(Sys.AT_FDCWD, Path.Combine(mnt, "null"), ModeBits.S_IFCHR | 0x1b6, Sys.MakeDev(1, 3)), "mknod chr");
        var st = Posix.LStat(Path.Combine(src, "null"));
        Assert.Equal(ModeBits.S_IFCHR, st.FileType);
        Assert.Equal((1u, 3u), (st.RDevMajor, st.RDevMinor));
        var through = Posix.LStat(Path.Combine(mnt, "null"));
        Assert.Equal((1u, 3u), (through.RDevMajor, through.RDevMinor));
    }

    [FuseFact]
    public void Mmap_reads_and_writes_reach_the_source_file()
    {
        var (mnt, src) = Dir();
        const int size = 256 * 1024;
        var initial = RandomNumberGenerator.GetBytes(size);
        File.WriteAllBytes(Path.Combine(src, "m"), initial); // made underneath, read through the mount
        string f = Path.Combine(mnt, "m");
        using (var mmf = MemoryMappedFile.CreateFromFile(f, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite))
        using (var view = mmf.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite))
        {
            var seen = new byte[size];
            view.ReadArray(0, seen, 0, size);
            Assert.True(initial.AsSpan().SequenceEqual(seen), "mapped contents differ from the source file");
            var patch = Encoding.ASCII.GetBytes("written through a shared mapping");
            view.WriteArray(100_000, patch, 0, patch.Length);
            view.Write(size - 8, 0x1122334455667788UL);
            view.Flush(); // msync
            patch.CopyTo(initial, 100_000);
            BitConverter.GetBytes(0x1122334455667788UL).CopyTo(initial, size - 8);
        }
        Assert.True(initial.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(src, "m"))), "the source file lacks the mapped writes");
        Assert.True(initial.AsSpan().SequenceEqual(File.ReadAllBytes(f)), "the mount lacks the mapped writes");
    }

    [FuseFact]
    public void Ofd_fcntl_and_flock_locks_conflict_between_open_files_and_processes()
    {
        var (mnt, _) = Dir();
        string f = Path.Combine(mnt, "lockme");
        File.WriteAllBytes(f, new byte[4096]);
        using var one = Posix.Open(f, Sys.O_RDWR);
        using var two = Posix.Open(f, Sys.O_RDWR);

        // Open-file-description locks: conflicts between two opens in one process.
        var wr = Posix.Lock(Sys.F_WRLCK, 0, 100);
        Posix.Check(Sys.FcntlLock(one.Fd, Sys.F_OFD_SETLK, ref wr), "F_OFD_SETLK");
        var other = Posix.Lock(Sys.F_RDLCK, 50, 10);
        Assert.Equal(-1, Sys.FcntlLock(two.Fd, Sys.F_OFD_SETLK, ref other));
        Assert.Equal(Errno.EAGAIN, Sys.LastErrno);
        var probe = Posix.Lock(Sys.F_WRLCK, 0, 0);
        Posix.Check(Sys.FcntlLock(two.Fd, Sys.F_OFD_GETLK, ref probe), "F_OFD_GETLK");
        Assert.Equal(Sys.F_WRLCK, probe.Type);
        Assert.Equal(0, probe.Start);
        Assert.Equal(100, probe.Len);
        var beyond = Posix.Lock(Sys.F_WRLCK, 100, 10);
        Posix.Check(Sys.FcntlLock(two.Fd, Sys.F_OFD_SETLK, ref beyond), "F_OFD_SETLK beyond the range");

        // A blocking lock waits until the holder lets go.
        var waiter = new Thread(() =>
        {
            var l = Posix.Lock(Sys.F_WRLCK, 0, 100);
            Posix.Check(Sys.FcntlLock(two.Fd, Sys.F_OFD_SETLKW, ref l), "F_OFD_SETLKW");
        });
        waiter.Start();
        Assert.False(waiter.Join(300), "F_OFD_SETLKW did not wait for the conflicting lock");
        var un = Posix.Lock(Sys.F_UNLCK, 0, 0);
        Posix.Check(Sys.FcntlLock(one.Fd, Sys.F_OFD_SETLK, ref un), "unlock");
        Assert.True(waiter.Join(10_000), "F_OFD_SETLKW was not granted after the unlock");
        Posix.Check(Sys.FcntlLock(two.Fd, Sys.F_OFD_SETLK, ref un), "unlock");

        // flock: per open file, and across processes (flock(1)).
        Posix.Check(Sys.Flock(one.Fd, Sys.LOCK_EX | Sys.LOCK_NB), "flock");
        Assert.Equal(-1, Sys.Flock(two.Fd, Sys.LOCK_SH | Sys.LOCK_NB));
        Assert.Equal(Errno.EAGAIN, Sys.LastErrno);
        if (Conditions.FindOnPath("flock") is string flock1)
        {
            Posix.Run(flock1, out int held, "-n", "-E", "42", f, "true");
            Assert.Equal(42, held); // another process cannot take it
            Posix.Check(Sys.Flock(one.Fd, Sys.LOCK_UN), "flock unlock");
            Posix.Run(flock1, out int free, "-n", "-E", "42", f, "true");
            Assert.Equal(0, free);
        }
        else
        {
            Output.WriteLine("flock(1) (util-linux) is missing: the cross-process flock check was not run");
            Posix.Check(Sys.Flock(one.Fd, Sys.LOCK_UN), "flock unlock");
        }
        Posix.Check(Sys.Flock(two.Fd, Sys.LOCK_SH | Sys.LOCK_NB), "flock after unlock");
    }

    /// <summary>
    /// A file removed and another made at once may get the removed one's inode number (ext4 hands it
    /// out again) before the kernel has forgotten the old node. Reopening the new file must reach the
    /// new file: a server that found the old node by inode number answered ESTALE, or data of the other.
    /// </summary>
    [FuseFact]
    public void Files_made_in_place_of_removed_ones_reopen_as_themselves()
    {
        var (mnt, _) = Dir();
        const int threads = 2, rounds = 1500;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            for (int i = 0; i < rounds && errors.Count < 5; i++)
            {
                string f = Path.Combine(mnt, $"t{t}-{i}");
                byte[] data = Encoding.ASCII.GetBytes($"thread {t} round {i}");
                try
                {
                    File.WriteAllBytes(f, data);
                    using (var h = File.OpenHandle(f, FileMode.Open, FileAccess.ReadWrite))
                    {
                        var back = new byte[data.Length + 1];
                        int n = RandomAccess.Read(h, back, 0);
                        if (!back.AsSpan(0, n).SequenceEqual(data)) errors.Enqueue($"{f}: read \"{Encoding.ASCII.GetString(back, 0, n)}\"");
                    }
                    File.Delete(f);
                }
                catch (IOException e) { errors.Enqueue($"{f}: {e.Message}"); }
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.True(errors.IsEmpty, string.Join("\n", errors.Select(e => e.Replace(mnt, "MNT", StringComparison.Ordinal))));
    }

    [FuseFact]
    public void Sixteen_threads_of_mixed_io_on_distinct_files_verify()
    {
        var (mnt, src) = Dir();
        const int threads = 16, ops = 120, maxLen = 2 << 20;
        var models = new byte[threads][];
        var lengths = new int[threads];
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            try
            {
                var rnd = new Random(1000 + t);
                var model = models[t] = new byte[maxLen];
                ref int len = ref lengths[t];
                using var h = File.OpenHandle(Path.Combine(mnt, $"t{t}"), FileMode.CreateNew, FileAccess.ReadWrite);
                for (int i = 0; i < ops; i++)
                {
                    int op = rnd.Next(100);
                    if (op < 50)
                    {
                        int off = rnd.Next(maxLen - 1), n = Math.Min(rnd.Next(1, 256 * 1024), maxLen - off);
                        var data = new byte[n];
                        rnd.NextBytes(data);
                        RandomAccess.Write(h, data, off);
                        data.CopyTo(model, off);
                        if (off > len) Array.Clear(model, len, off - len);
                        len = Math.Max(len, off + n);
                    }
                    else if (op < 88)
                    {
                        int off = rnd.Next(maxLen), n = rnd.Next(1, 512 * 1024);
                        var buf = new byte[n];
                        int got = RandomAccess.Read(h, buf, off);
                        int expect = Math.Max(0, Math.Min(n, len - off));
                        if (got != expect || !buf.AsSpan(0, got).SequenceEqual(model.AsSpan(Math.Min(off, len), got)))
                            errors.Enqueue($"thread {t} op {i}: read {n} at {off}: got {got} bytes, expected {expect}, or different data");
                    }
                    else if (op < 96)
                    {
                        int newLen = rnd.Next(maxLen);
                        RandomAccess.SetLength(h, newLen);
                        if (newLen > len) Array.Clear(model, len, newLen - len);
                        len = newLen;
                    }
                    else if (Sys.FSync((int)h.DangerousGetHandle()) != 0) errors.Enqueue($"thread {t}: fsync: {Sys.LastErrno}");
                    if (RandomAccess.GetLength(h) != len) errors.Enqueue($"thread {t} op {i}: length {RandomAccess.GetLength(h)}, expected {len}");
                }
            }
            catch (Exception ex) { errors.Enqueue($"thread {t}: {ex}"); }
        })).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) Assert.True(w.Join(TimeSpan.FromMinutes(2)), "a worker thread hung");
        Assert.True(errors.IsEmpty, string.Join('\n', errors.Take(20)));
        for (int t = 0; t < threads; t++)
        {
            var expected = models[t].AsSpan(0, lengths[t]);
            Assert.True(expected.SequenceEqual(File.ReadAllBytes(Path.Combine(mnt, $"t{t}"))), $"t{t} through the mount differs");
            Assert.True(expected.SequenceEqual(File.ReadAllBytes(Path.Combine(src, $"t{t}"))), $"t{t} in the source differs");
        }
    }

    /// <summary>The chunk written at index <paramref name="i"/>: a fixed random MiB stamped with its index.</summary>
    private static void Chunk(byte[] pattern, byte[] into, long i)
    {
        pattern.CopyTo(into, 0);
        BitConverter.TryWriteBytes(into.AsSpan(0, 8), i);
        BitConverter.TryWriteBytes(into.AsSpan(into.Length - 8), ~i);
    }

    [FuseFact]
    public void One_GiB_file_written_and_read_back_with_a_checksum()
    {
        var (mnt, src) = Dir();
        const int chunk = 1 << 20, chunks = 1024;
        var pattern = new byte[chunk];
        new Random(42).NextBytes(pattern);
        var buf = new byte[chunk];
        var sw = System.Diagnostics.Stopwatch.StartNew();
        byte[] written;
        using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        using (var fs = new FileStream(Path.Combine(mnt, "big"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 0))
        {
            for (long i = 0; i < chunks; i++)
            {
                Chunk(pattern, buf, i);
                fs.Write(buf);
                hash.AppendData(buf);
            }
            written = hash.GetHashAndReset();
        }
        var writeTime = sw.Elapsed;
        Assert.Equal((long)chunk * chunks, new FileInfo(Path.Combine(src, "big")).Length);

        sw.Restart();
        byte[] read;
        var expect = new byte[chunk];
        using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        using (var fs = new FileStream(Path.Combine(mnt, "big"), FileMode.Open, FileAccess.Read, FileShare.Read, 0))
        {
            for (long i = 0; i < chunks; i++)
            {
                fs.ReadExactly(buf);
                Chunk(pattern, expect, i);
                Assert.True(expect.AsSpan().SequenceEqual(buf), $"MiB {i} read through the mount differs");
                hash.AppendData(buf);
            }
            Assert.Equal(0, fs.Read(buf));
            read = hash.GetHashAndReset();
        }
        Assert.Equal(Convert.ToHexString(written), Convert.ToHexString(read));
        Output.WriteLine($"1 GiB: write {writeTime.TotalSeconds:F1} s, read {sw.Elapsed.TotalSeconds:F1} s (passthrough={S.Passthrough})");

        // The bytes underneath are the same.
        using (var fs = new FileStream(Path.Combine(src, "big"), FileMode.Open, FileAccess.Read, FileShare.Read, 0))
            for (long i = 0; i < chunks; i += 37)
            {
                fs.Position = i * chunk;
                fs.ReadExactly(buf);
                Chunk(pattern, expect, i);
                Assert.True(expect.AsSpan().SequenceEqual(buf), $"MiB {i} in the source differs");
            }
        File.Delete(Path.Combine(mnt, "big"));
    }

    /// <summary>
    /// Reads of many sizes at many offsets, across the end of the file too, return the source's bytes.
    /// Without passthrough the large ones reach the server as READs it answers by splice (file to
    /// pipe to /dev/fuse); the small ones, and those that find the end of the file, through its buffer.
    /// </summary>
    [FuseFact]
    public void Reads_of_every_size_return_the_source_bytes_spliced_or_copied()
    {
        var (mnt, src) = Dir();
        var data = new byte[(5 << 20) + 777];
        new Random(7).NextBytes(data);
        // Never written through the mount: the kernel caches nothing of them.
        File.WriteAllBytes(Path.Combine(src, "seq"), data);
        File.WriteAllBytes(Path.Combine(src, "random"), data);
        var before = S.ReadReplies();
        var rng = new Random(11);
        var buf = new byte[3 << 20];
        // Sequential 1 MiB reads (kernel readahead: large READs).
        using (var h = File.OpenHandle(Path.Combine(mnt, "seq"), FileMode.Open, FileAccess.Read))
            for (long at = 0; at < data.Length; at += 1 << 20)
                Check(h, at, 1 << 20);
        // Random reads of any size, some reaching past the end, on a file not read before.
        using (var h = File.OpenHandle(Path.Combine(mnt, "random"), FileMode.Open, FileAccess.Read))
        {
            for (int i = 0; i < 300; i++)
            {
                long at = i % 10 == 0 ? data.Length - rng.Next(1, 200_000) : rng.NextInt64(data.Length);
                Check(h, at, rng.Next(1, buf.Length));
            }
            Assert.Equal(0, RandomAccess.Read(h, buf.AsSpan(0, 4096), data.Length + 10));
        }
        var after = S.ReadReplies();
        Output.WriteLine($"READ replies: {after.Spliced - before.Spliced} spliced, {after.Copied - before.Copied} copied");
        if (S.Passthrough)
            Assert.Equal(before, after); // the kernel read the backing file itself
        else
        {
            Assert.True(after.Spliced - before.Spliced >= 50, $"only {after.Spliced - before.Spliced} READs spliced; two 5 MiB files read cold should take dozens");
            Assert.True(after.Copied > before.Copied, "the reads that reach the end of the file are answered from the buffer");
        }

        void Check(SafeFileHandle h, long at, int length)
        {
            int expect = (int)Math.Clamp(data.Length - at, 0, length);
            int got = 0;
            while (got < expect)
            {
                int n = RandomAccess.Read(h, buf.AsSpan(got, length - got), at + got);
                if (n == 0) break;
                got += n;
            }
            Assert.Equal(expect, got);
            Assert.True(data.AsSpan((int)at, expect).SequenceEqual(buf.AsSpan(0, expect)), $"{length} bytes at {at} differ from the source");
        }
    }

    /// <summary>
    /// With passthrough the kernel reads the backing file itself: a read works while the server is
    /// stopped (SIGSTOP). Without it the same read waits for the server.
    /// </summary>
    [FuseFact]
    public async Task Reads_bypass_a_stopped_server_only_with_passthrough()
    {
        var (mnt, src) = Dir();
        var data = RandomNumberGenerator.GetBytes(1 << 20);
        File.WriteAllBytes(Path.Combine(src, "p"), data); // never read through the mount: nothing cached
        using var h = File.OpenHandle(Path.Combine(mnt, "p"), FileMode.Open, FileAccess.Read);
        var buf = new byte[data.Length];
        S.Stop();
        Task<int> read;
        bool finishedWhileStopped;
        try
        {
            read = Task.Factory.StartNew(() => RandomAccess.Read(h, buf, 0), TaskCreationOptions.LongRunning);
            finishedWhileStopped = await Task.WhenAny(read, Task.Delay(3000)) == read;
            if (finishedWhileStopped)
                Output.WriteLine(read.IsFaulted ? $"read failed while the server was stopped: {read.Exception}" : $"read returned {read.Result} while the server was stopped");
        }
        finally
        {
            S.Signal(Posix.SIGCONT);
        }
        Assert.Equal(data.Length, await read.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(data.AsSpan().SequenceEqual(buf));
        if (ExpectPassthrough && Conditions.IsRoot)
            Assert.True(finishedWhileStopped, "with passthrough the read should not need the (stopped) server");
        else
            Assert.False(finishedWhileStopped, "without passthrough the read finished while the server was stopped: the test does not see the server");
    }

    [FuseFact]
    public void Statfs_and_utimens_go_through()
    {
        var (mnt, src) = Dir();
        string f = Path.Combine(mnt, "t");
        File.WriteAllText(f, "t");
        var when = new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(f, when);
        Assert.Equal(when, File.GetLastWriteTimeUtc(Path.Combine(src, "t")));
        var drive = new DriveInfo(mnt);
        Assert.True(drive.TotalSize > 0);
        Assert.Equal(new DriveInfo(S.Source).TotalSize, drive.TotalSize);
    }
}

public sealed class PassthroughIoTests(PassthroughServer fixture, ITestOutputHelper output)
    : LoopbackIoTests(fixture, output), IClassFixture<PassthroughServer>
{
    protected override bool ExpectPassthrough => true;
}

public sealed class NoPassthroughIoTests(NoPassthroughServer fixture, ITestOutputHelper output)
    : LoopbackIoTests(fixture, output), IClassFixture<NoPassthroughServer>
{
    protected override bool ExpectPassthrough => false;
}

/// <summary>The same tests with the kernel's writeback cache (FUSE_WRITEBACK_CACHE), which the loopback offers without passthrough.</summary>
public sealed class WritebackIoTests(WritebackServer fixture, ITestOutputHelper output)
    : LoopbackIoTests(fixture, output), IClassFixture<WritebackServer>
{
    protected override bool ExpectPassthrough => false;
    protected override bool ExpectWriteback => true;
}
