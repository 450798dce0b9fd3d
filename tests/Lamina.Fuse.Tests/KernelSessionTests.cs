using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Lamina.Fuse.Mounting;
using Lamina.Fuse.Tests.Infrastructure;
using Lamina.Fuse.Wire;
using Lamina.Native;
using Xunit.Abstractions;

namespace Lamina.Fuse.Tests;

/// <summary>A two-entry filesystem served in-process to the real kernel: for paths the loopback does not take (locks answered by the server, notifications).</summary>
public sealed class KernelFs : IFuseFileSystem
{
    public static readonly byte[] Data = Encoding.ASCII.GetBytes("hello world, from memory\n");
    public readonly ConcurrentQueue<(ulong Unique, TaskCompletionSource<Errno> Tcs, CancellationToken Token, LkIn Request)> Waits = new();
    public int Reads;

    /// <summary>
    /// Node 3, "spliced": READs answered from <see cref="SpliceSource"/> (set by the test), a file
    /// shorter than the <see cref="SplicedSize"/> declared here, so reads past its end come back
    /// short or empty. Every <see cref="ReadSourceDone"/> is recorded.
    /// </summary>
    public const ulong SplicedSize = 1 << 20;
    public SafeFd? SpliceSource;
    public readonly ConcurrentQueue<(ulong Offset, uint Size, int Count)> SplicedReads = new();

    private static FuseAttr Attr(ulong node) => node switch
    {
        1 => new FuseAttr { Ino = 1, Mode = ModeBits.S_IFDIR | 0x1ed, NLink = 2, BlkSize = 4096 },
        3 => new FuseAttr { Ino = 3, Mode = ModeBits.S_IFREG | 0x1b6, NLink = 1, Size = SplicedSize, Blocks = SplicedSize / 512, BlkSize = 4096 },
        _ => new FuseAttr { Ino = 2, Mode = ModeBits.S_IFREG | 0x1b6, NLink = 1, Size = (ulong)Data.Length, Blocks = 1, BlkSize = 4096 },
    };

    public Errno Lookup(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, out EntryOut entry)
    {
        entry = default;
        ulong node = parent != 1 ? 0 : name.SequenceEqual("hello"u8) ? 2UL : name.SequenceEqual("spliced"u8) ? 3UL : 0;
        if (node == 0) return Errno.ENOENT;
        entry.NodeId = node;
        entry.SetTimeouts(TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(60));
        entry.Attr = Attr(node);
        return Errno.None;
    }

    public Errno GetAttr(in RequestContext ctx, ulong nodeId, ulong? fh, out AttrOut attr)
    {
        attr = default;
        if (nodeId is not (1 or 2 or 3)) return Errno.ENOENT;
        attr.SetTimeout(TimeSpan.FromSeconds(60));
        attr.Attr = Attr(nodeId);
        return Errno.None;
    }

    public Errno Open(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = new OpenOut { Fh = 7, OpenFlags = OpenReplyFlags.KeepCache };
        return nodeId is 2 or 3 ? Errno.None : Errno.EISDIR;
    }

    public Errno ReadSource(in RequestContext ctx, ulong nodeId, in ReadIn request, out SafeFd? source)
    {
        source = nodeId == 3 ? SpliceSource : null;
        return Errno.None;
    }

    public void ReadSourceDone(in RequestContext ctx, ulong nodeId, in ReadIn request, int count) =>
        SplicedReads.Enqueue((request.Offset, request.Size, count));

    public Errno Read(in RequestContext ctx, ulong nodeId, in ReadIn request, Span<byte> buffer, out int count)
    {
        Interlocked.Increment(ref Reads);
        if (nodeId == 3)
        {
            // Requests too small to splice: read the source as a plain read would.
            nint n = Sys.PRead(SpliceSource!.Fd, buffer, (long)request.Offset);
            count = (int)Math.Max(0, n);
            return n < 0 ? Sys.LastErrno : Errno.None;
        }
        int off = (int)Math.Min(request.Offset, (ulong)Data.Length);
        count = Math.Min(buffer.Length, Data.Length - off);
        Data.AsSpan(off, count).CopyTo(buffer);
        return Errno.None;
    }

    public Errno Flush(in RequestContext ctx, ulong nodeId, ulong fh, ulong lockOwner) => Errno.None;

    public Errno OpenDir(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open) { open = default; return Errno.None; }

    public Errno ReadDir(in RequestContext ctx, ulong nodeId, ulong fh, long offset, ref DirEntryBuffer entries)
    {
        string[] names = [".", "..", "hello"];
        for (int i = (int)offset; i < names.Length; i++)
        {
            var name = Encoding.ASCII.GetBytes(names[i]);
            ulong ino = i == 2 ? 2UL : 1UL;
            bool ok = entries.IsPlus
                ? entries.TryAddPlus(new EntryOut { Attr = new FuseAttr { Ino = ino, Mode = (i == 2 ? ModeBits.S_IFREG : ModeBits.S_IFDIR) } }, i + 1, i == 2 ? 8u : 4u, name)
                : entries.TryAdd(ino, i + 1, i == 2 ? 8u : 4u, name);
            if (!ok) break;
        }
        return Errno.None;
    }

    public Errno GetLk(in RequestContext ctx, ulong nodeId, in LkIn request, out FileLock conflict)
    {
        conflict = new FileLock { Type = 2 /* F_UNLCK */ };
        return Errno.None;
    }

    /// <summary>Non-blocking attempts are granted (.NET's FileStream takes a LOCK_SH|LOCK_NB flock on every open).</summary>
    public Errno SetLk(in RequestContext ctx, ulong nodeId, in LkIn request) => Errno.None;

    /// <summary>Blocking attempts wait until the test grants them or the caller is interrupted.</summary>
    public ValueTask<Errno> SetLkWait(RequestContext ctx, ulong nodeId, LkIn request, CancellationToken cancel)
    {
        // flock(LOCK_UN) without LOCK_NB arrives as SETLKW with F_UNLCK: an unlock never waits.
        if (request.Lk.Type == 2) return ValueTask.FromResult(Errno.None);
        var tcs = new TaskCompletionSource<Errno>(TaskCreationOptions.RunContinuationsAsynchronously);
        cancel.Register(() => tcs.TrySetCanceled(cancel));
        Waits.Enqueue((ctx.Unique, tcs, cancel, request));
        return new ValueTask<Errno>(tcs.Task);
    }

    public void ReleaseAll()
    {
        foreach (var w in Waits) w.Tcs.TrySetResult(Errno.None);
    }
}

/// <summary>The session served in this process, to the real kernel (root and /dev/fuse).</summary>
public sealed class KernelSessionTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("lamina-kernel-session-").FullName;
    private FuseMount? _mount;
    private FuseSession? _session;
    private readonly KernelFs _fs = new();
    private readonly ConcurrentQueue<string> _log = new();

    private int? _connection;
    private Timer? _watchdog;
    private volatile bool _aborted;

    private string Mnt => Path.Combine(_root, "mnt");
    private string Hello => Path.Combine(Mnt, "hello");

    private void Serve()
    {
        Directory.CreateDirectory(Mnt);
        _mount = FuseMount.Mount(Mnt, new FuseMountOptions { Subtype = "lamina-test" });
        _connection = FuseControl.ConnectionOf(Mnt);
        // This process serves the mount it uses: if a test wedges it, fail every request rather than hang for ever.
        _watchdog = new Timer(_ => Abort("the test ran for 60 s"), null, TimeSpan.FromSeconds(60), Timeout.InfiniteTimeSpan);
        _session = new FuseSession(_mount, _fs, new FuseSessionOptions
        {
            Workers = 2, PosixLocks = true, FlockLocks = true, Passthrough = false, Log = _log.Enqueue,
        });
        _session.Start();
        Assert.True(_session.Connection.Flags.HasFlag(InitFlags.FlockLocks), "the kernel did not take FUSE_FLOCK_LOCKS");
    }

    private void Abort(string why)
    {
        if (_connection is int c && !_aborted)
        {
            _aborted = true;
            _log.Enqueue($"aborting FUSE connection {c}: {why}: {(FuseControl.Abort(c) ? "done" : "failed")}");
        }
    }

    public void Dispose()
    {
        _watchdog?.Dispose();
        _fs.ReleaseAll();
        try
        {
            if (_session is not null)
            {
                _session.Stop(TimeSpan.FromSeconds(5));
                if (!_session.Completion.IsCompleted)
                {
                    Abort("the session did not end 5 s after the unmount");
                    _session.Completion.Wait(TimeSpan.FromSeconds(5));
                }
                _session.Dispose();
            }
        }
        finally
        {
            if (LoopbackServer.IsMounted(Mnt)) FuseMount.Unmount(Mnt, lazy: true);
            if (_session is null || _session.Completion.IsCompleted) _mount?.Device.Dispose();
            if (!LoopbackServer.IsMounted(Mnt)) Directory.Delete(_root, recursive: true);
        }
        foreach (var l in _log) output.WriteLine("session: " + l);
        Assert.False(_aborted, "the FUSE connection had to be aborted: " + string.Join(" | ", _log));
    }

    private static Process StartFlock(params string[] args)
    {
        string flock1 = Conditions.FindOnPath("flock") ?? throw new InvalidOperationException("flock(1) (util-linux) is missing");
        var psi = new ProcessStartInfo(flock1) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private async Task<(TaskCompletionSource<Errno> Tcs, CancellationToken Token, LkIn Request)> WaitForSetLkW()
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            var open = _fs.Waits.FirstOrDefault(w => !w.Tcs.Task.IsCompleted);
            if (open.Tcs is not null) return (open.Tcs, open.Token, open.Request);
            await Task.Delay(20);
        }
        throw new TimeoutException("no SETLKW reached the filesystem");
    }

    [FuseFact]
    public async Task A_blocking_flock_waits_in_the_server_and_is_granted_later()
    {
        Serve();
        Assert.Equal(KernelFs.Data, File.ReadAllBytes(Hello));
        using var p = StartFlock(Hello, "true");
        var w = await WaitForSetLkW();
        Assert.Equal(FuseConstants.LkFlock, w.Request.LkFlags & FuseConstants.LkFlock);
        Assert.Equal(1u, w.Request.Lk.Type); // F_WRLCK for LOCK_EX
        await Task.Delay(200);
        Assert.False(p.HasExited, "flock returned before the server granted the lock");
        w.Tcs.SetResult(Errno.None);        // granted, from a test thread: the reply goes out on the worker's descriptor
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(0, p.ExitCode);
    }

    [FuseFact]
    public async Task A_signal_interrupts_a_waiting_lock_through_the_kernels_INTERRUPT()
    {
        Serve();
        using var p = StartFlock(Hello, "true");
        var w = await WaitForSetLkW();
        Sys.Kill(p.Id, 2); // SIGINT: the kernel sends FUSE_INTERRUPT for the waiting SETLKW
        bool exited = await Task.WhenAny(p.WaitForExitAsync(), Task.Delay(15_000)) is Task t && t.IsCompletedSuccessfully && p.HasExited;
        if (!exited) _fs.ReleaseAll(); // let it go, or it would hang in the kernel for ever
        Assert.True(exited, "the interrupted flock did not return: the INTERRUPT was not honoured");
        Assert.True(w.Token.IsCancellationRequested, "the SETLKW wait was not cancelled by the INTERRUPT");
        Assert.True(w.Tcs.Task.IsCanceled);
        Assert.NotEqual(0, p.ExitCode);
        // The session goes on.
        Assert.Equal(KernelFs.Data, File.ReadAllBytes(Hello));
    }

    [FuseFact]
    public void A_spliced_read_tells_the_filesystem_how_many_bytes_it_carried()
    {
        // The source holds 100 KiB of the 1 MiB the attributes declare: a READ inside it carries all
        // it asks for, one across its end less, one past its end nothing (and the kernel then takes
        // that as the end of the file). The filesystem hears each count, and only after a splice.
        const int sourceLength = 100 * 1024;
        var bytes = new byte[sourceLength];
        new Random(7).NextBytes(bytes);
        string sourcePath = Path.Combine(_root, "source");
        File.WriteAllBytes(sourcePath, bytes);
        _fs.SpliceSource = new SafeFd(Sys.Open(sourcePath, Sys.O_RDONLY | Sys.O_CLOEXEC));
        Serve();
        string spliced = Path.Combine(Mnt, "spliced");

        using (var f = File.OpenHandle(spliced))
        {
            var buffer = new byte[256 * 1024];
            Assert.Equal(0, RandomAccess.Read(f, buffer, 512 * 1024)); // past the source's end first
            var read = new MemoryStream();
            int n;
            while ((n = RandomAccess.Read(f, buffer, read.Length)) > 0) read.Write(buffer, 0, n);
            Assert.Equal(bytes, read.ToArray());
        }

        var calls = _fs.SplicedReads.ToArray();
        output.WriteLine("spliced READs (offset, size, count): " + string.Join(" ", calls.Select(c => $"({c.Offset}, {c.Size}, {c.Count})")));
        Assert.NotEmpty(calls);
        foreach (var c in calls)
            Assert.Equal((int)Math.Min(c.Size, (ulong)Math.Max(0L, sourceLength - (long)c.Offset)), c.Count);
        Assert.Contains(calls, c => c.Offset >= sourceLength && c.Count == 0);
        Assert.Contains(calls, c => c.Count > 0);
    }

    [FuseFact]
    public async Task Notifications_are_accepted_by_the_kernel()
    {
        Serve();
        Assert.Equal(KernelFs.Data, File.ReadAllBytes(Hello)); // now in the page cache (FOPEN_KEEP_CACHE)
        var n = _session!.Notifier;

        var cached = await n.Retrieve(2, 0, KernelFs.Data.Length).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(KernelFs.Data, cached);

        Assert.Equal(Errno.None, n.Store(2, 0, "HELLO"u8));
        int reads = _fs.Reads;
        var after = File.ReadAllBytes(Hello);
        Assert.Equal("HELLO world, from memory\n", Encoding.ASCII.GetString(after));
        Assert.Equal(reads, _fs.Reads); // served from the page cache the store filled

        Assert.Equal(Errno.None, n.InvalidateInode(2));
        Assert.Equal(KernelFs.Data, File.ReadAllBytes(Hello)); // data asked again
        Assert.True(_fs.Reads > reads, "the invalidated data was not read again");
        Assert.Equal(Errno.ENOENT, n.InvalidateInode(424242));  // an inode the kernel does not know
        Assert.Equal(Errno.None, n.InvalidateEntry(1, "hello"u8));
        Assert.Equal(Errno.None, Posix.LStatErrno(Hello));       // looked up again
    }
}
