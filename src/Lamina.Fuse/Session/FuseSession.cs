using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Lamina.Fuse.Mounting;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

/// <summary>
/// Serves one mount: negotiates INIT, then runs worker threads that each read requests from
/// their own clone of the mount's /dev/fuse descriptor, call the <see cref="IFuseFileSystem"/>,
/// and write the reply back on the descriptor the request came from (the kernel keeps the
/// requests in flight per descriptor).
/// </summary>
public sealed unsafe class FuseSession : IDisposable
{
    private readonly IFuseFileSystem _fs;
    private readonly FuseSessionOptions _options;
    private readonly List<SafeFd> _clones = new();
    private readonly List<Thread> _threads = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<ulong, CancellationTokenSource> _waiting = new();
    private int _ended;
    private int _destroyed;

    public FuseSession(FuseMount mount, IFuseFileSystem fs, FuseSessionOptions? options = null)
    {
        Mount = mount;
        _fs = fs;
        _options = options ?? new FuseSessionOptions();
        Notifier = new FuseNotifier(this);
    }

    public FuseMount Mount { get; }

    /// <summary>Set once INIT is done.</summary>
    public FuseConnectionInfo Connection { get; private set; } = new();

    /// <summary>Server-to-kernel notifications (cache invalidation, store, retrieve).</summary>
    public FuseNotifier Notifier { get; }

    /// <summary>Completes when the kernel ends the session (unmount, abort) or the session is stopped.</summary>
    public Task Completion => _completion.Task;

    internal int DeviceFd => Mount.Device.Fd;
    internal FuseSessionOptions Options => _options;
    internal IFuseFileSystem FileSystem => _fs;
    internal int RequestBufferSize => _options.MaxPages * 4096 + 4096;

    /// <summary>The filesystem answered ENOSYS to <see cref="IFuseFileSystem.ReadSource"/>: every READ is copied.</summary>
    internal volatile bool ReadSourceUnsupported;

    private readonly List<Worker> _workers = [];

    /// <summary>READ replies so far: spliced from a descriptor, and copied through the reply buffer.</summary>
    public (long Spliced, long Copied) ReadReplies
    {
        get
        {
            long spliced = 0, copied = 0;
            lock (_workers)
                foreach (var w in _workers) { spliced += Volatile.Read(ref w.SplicedReads); copied += Volatile.Read(ref w.CopiedReads); }
            return (spliced, copied);
        }
    }

    /// <summary>Answers INIT, then starts the workers. Throws if the kernel's protocol is too old.</summary>
    public void Start()
    {
        var initWorker = new Worker(this, Mount.Device.Fd);
        initWorker.ServeInit();
        _fs.Init(Connection);
        for (int i = 0; i < Math.Max(1, _options.Workers); i++)
        {
            int fd = Mount.Device.Fd;
            if (i > 0)
            {
                int clone = CloneDevice();
                if (clone >= 0) fd = clone;
            }
            var worker = i == 0 ? initWorker : new Worker(this, fd);
            lock (_workers) _workers.Add(worker);
            var t = new Thread(worker.Run) { IsBackground = true, Name = $"fuse-worker-{i}" };
            _threads.Add(t);
            t.Start();
        }
    }

    /// <summary>Starts serving and blocks until the session ends.</summary>
    public void Run()
    {
        Start();
        Completion.GetAwaiter().GetResult();
    }

    private int CloneDevice()
    {
        int fd = Sys.Open("/dev/fuse", Sys.O_RDWR | Sys.O_CLOEXEC);
        if (fd < 0) return -1;
        uint master = (uint)Mount.Device.Fd;
        if (Sys.Ioctl(fd, FuseConstants.DevIocClone, &master) != 0)
        {
            _options.Log?.Invoke($"FUSE_DEV_IOC_CLONE failed ({Sys.LastErrno}); workers share one descriptor");
            Sys.Close(fd);
            return -1;
        }
        lock (_clones) _clones.Add(new SafeFd(fd));
        return fd;
    }

    internal void ApplyInit(in InitIn init, out InitOut reply)
    {
        InitFlags offered = (InitFlags)init.Flags;
        if ((offered & InitFlags.InitExt) != 0) offered |= (InitFlags)((ulong)init.Flags2 << 32);

        var want = InitFlags.AsyncRead | InitFlags.BigWrites | InitFlags.MaxPages | InitFlags.InitExt
            | InitFlags.HasIoctlDir | InitFlags.AsyncDio | InitFlags.NoOpendirSupport | InitFlags.HasExpireOnly
            | InitFlags.DirectIoAllowMmap; // a file served with FOPEN_DIRECT_IO can still be mapped shared
        if (_options.ParallelDirops) want |= InitFlags.ParallelDirops;
        if (_options.ReaddirPlus) want |= InitFlags.DoReaddirplus | InitFlags.ReaddirplusAuto;
        if (_options.ExportSupport) want |= InitFlags.ExportSupport;
        if (_options.AtomicOTrunc) want |= InitFlags.AtomicOTrunc;
        if (_options.WritebackCache) want |= InitFlags.WritebackCache;
        if (_options.PosixLocks) want |= InitFlags.PosixLocks;
        if (_options.FlockLocks) want |= InitFlags.FlockLocks;
        if (_options.HandleKillPriv) want |= InitFlags.HandleKillprivV2;
        if (_options.CreateSupplementaryGroup) want |= InitFlags.CreateSuppGroup;
        if (_options.CacheSymlinks) want |= InitFlags.CacheSymlinks;
        // Passthrough registers backing files, which needs CAP_SYS_ADMIN; the kernel refuses it with the writeback cache.
        if (_options.Passthrough && !_options.WritebackCache && Sys.GetEUid() == 0) want |= InitFlags.Passthrough;

        InitFlags agreed = want & offered;
        uint minor = Math.Min(init.Minor, FuseConstants.KernelMinorVersion);
        reply = new InitOut
        {
            Major = FuseConstants.KernelVersion,
            Minor = minor,
            MaxReadahead = init.MaxReadahead,
            Flags = (uint)((ulong)agreed & 0xffffffff),
            Flags2 = (offered & InitFlags.InitExt) != 0 ? (uint)((ulong)agreed >> 32) : 0,
            MaxBackground = 64,
            CongestionThreshold = 48,
            MaxWrite = (uint)_options.MaxPages * 4096,
            TimeGran = 1,
            MaxPages = _options.MaxPages,
            MaxStackDepth = (agreed & InitFlags.Passthrough) != 0 ? _options.PassthroughStackDepth : 0,
        };
        Connection = new FuseConnectionInfo
        {
            ProtocolMajor = init.Major,
            ProtocolMinor = minor,
            KernelFlags = offered,
            Flags = agreed,
            MaxWrite = reply.MaxWrite,
            MaxReadahead = reply.MaxReadahead,
        };
    }

    /// <summary>
    /// Registers an open file as a passthrough backing file (FUSE_DEV_IOC_BACKING_OPEN) and
    /// returns its backing id, or a negative errno. All opens of one inode must share one backing
    /// file while any of them is open.
    /// </summary>
    public int OpenBacking(int fd)
    {
        if (!Connection.Passthrough) return -(int)Errno.EOPNOTSUPP;
        var map = new BackingMap { Fd = fd };
        int id = Sys.Ioctl(Mount.Device.Fd, FuseConstants.DevIocBackingOpen, &map);
        return id >= 0 ? id : Sys.NegErrno;
    }

    /// <summary>
    /// As <see cref="OpenBacking(int)"/>, with the filesystem identity of <paramref name="uid"/> and
    /// <paramref name="gid"/>: the kernel does passthrough I/O with the credentials of whoever
    /// registered the backing file, so registering it as the caller makes the branch filesystem
    /// judge that I/O as the caller's (root-reserved blocks, and with
    /// <see cref="FuseSessionOptions.CallerResourceLimits"/> quotas), not as the daemon's.
    /// </summary>
    public int OpenBacking(int fd, uint uid, uint gid)
    {
        var saved = Sys.SwapFsIdentity(uid, gid);
        try { return OpenBacking(fd); }
        finally { Sys.SwapFsIdentity(saved.Uid, saved.Gid); }
    }

    /// <summary>Releases a backing id; the kernel keeps the file while opens still use it.</summary>
    public Errno CloseBacking(int backingId)
    {
        uint id = (uint)backingId;
        return Sys.Ioctl(Mount.Device.Fd, FuseConstants.DevIocBackingClose, &id) == 0 ? Errno.None : Sys.LastErrno;
    }

    internal void RegisterWaiter(ulong unique, CancellationTokenSource cts) => _waiting[unique] = cts;
    internal void UnregisterWaiter(ulong unique) => _waiting.TryRemove(unique, out _);
    internal bool Interrupt(ulong unique)
    {
        if (!_waiting.TryGetValue(unique, out var cts)) return false;
        try { cts.Cancel(); } catch (ObjectDisposedException) { }
        return true;
    }

    internal void Destroyed()
    {
        if (Interlocked.Exchange(ref _destroyed, 1) == 0) _fs.Destroy();
    }

    internal void Ended(Errno reason)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0) return;
        Destroyed();
        foreach (var cts in _waiting.Values) { try { cts.Cancel(); } catch (ObjectDisposedException) { } }
        if (reason is Errno.None or Errno.ENODEV) _completion.TrySetResult();
        else _completion.TrySetException(new ErrnoException(reason, "read /dev/fuse"));
    }

    /// <summary>Unmounts (lazily) and waits for the workers to see the end of the session.</summary>
    public void Stop(TimeSpan? wait = null)
    {
        if (_ended == 0)
        {
            try { Mount.Unmount(lazy: true); } catch (FuseMountException) { }
        }
        Completion.Wait(wait ?? TimeSpan.FromSeconds(10));
    }

    public void Dispose()
    {
        foreach (var c in _clones) c.Dispose();
    }

    internal static int SizeOf<T>() where T : unmanaged => sizeof(T);

    internal static T Read<T>(ReadOnlySpan<byte> span) where T : unmanaged => MemoryMarshal.Read<T>(span);
}
