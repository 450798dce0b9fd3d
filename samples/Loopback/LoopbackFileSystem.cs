using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Lamina.Fuse;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Samples.Loopback;

/// <summary>
/// Mirrors one directory. Each node the kernel knows holds an O_PATH descriptor of the real
/// object, so nothing is ever resolved through a joined path, and renames underneath do not
/// confuse it. With CAP_DAC_READ_SEARCH, nodes other than directories keep the object's file
/// handle instead (name_to_handle_at) and open it when asked (open_by_handle_at), so the number of
/// files the kernel may know is not bounded by the descriptor limit. Open files are real
/// descriptors; with passthrough the kernel does the I/O.
/// </summary>
public sealed unsafe class LoopbackFileSystem : IFuseFileSystem
{
    private sealed class Node
    {
        public SafeFd? Fd;          // directories, and everything when file handles are not usable
        public byte[]? Handle;      // struct file_handle of an object that keeps no descriptor
        public required ulong Id;
        public required (ulong Dev, ulong Ino) Key;
        public long Lookups;
        public int Opens;
        public int BackingId = -1;
        public readonly List<SafeFd> OpenFiles = []; // under lock (node): its open files, for GetXattr
    }

    private readonly ConcurrentDictionary<ulong, Node> _nodes = new();
    private readonly Dictionary<(ulong, ulong), Node> _byInode = new();
    private readonly object _lock = new();
    private long _nextId = 1;
    private int _nodeCount = 1; // nodes holding a descriptor, under _lock
    private readonly SafeFd _mountFd; // a readable descriptor of the source: open_by_handle_at refuses O_PATH ones
    private readonly bool _handles;
    private readonly TimeSpan _entryTimeout;
    private readonly TimeSpan _attrTimeout;
    private FuseSession? _session;

    public LoopbackFileSystem(string source, TimeSpan entryTimeout, TimeSpan attrTimeout)
    {
        var root = SafeFd.FromResult(Sys.Open(source, Sys.O_PATH | Sys.O_DIRECTORY | Sys.O_CLOEXEC), "open", source);
        Sys.FStatx(root.Fd, out var st);
        var node = new Node { Fd = root, Id = FuseConstants.RootId, Key = (st.Dev, st.Ino), Lookups = 1 };
        _nodes[node.Id] = node;
        _byInode[node.Key] = node;
        _entryTimeout = entryTimeout;
        _attrTimeout = attrTimeout;
        _mountFd = SafeFd.FromResult(Sys.Open(source, Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_CLOEXEC), "open", source);
        _handles = HandleOf(root.Fd) is { } h && OpenHandle(h, Sys.O_PATH) is var probe and >= 0 && Sys.Close(probe) == 0;
    }

    /// <summary>Whether nodes other than directories keep file handles instead of descriptors.</summary>
    public bool UsesFileHandles => _handles;

    private static byte[]? HandleOf(int fd)
    {
        Span<byte> buf = stackalloc byte[8 + Sys.MAX_HANDLE_SZ];
        int n = HandleOf(fd, buf);
        return n < 0 ? null : buf[..n].ToArray();
    }

    /// <summary>Writes the object's file handle (with its 8-byte header) into <paramref name="buf"/>; its length, or -1.</summary>
    private static int HandleOf(int fd, Span<byte> buf)
    {
        fixed (byte* p = buf)
        {
            *(uint*)p = Sys.MAX_HANDLE_SZ;
            return Sys.NameToHandleAt(fd, "", p, out _, Sys.AT_EMPTY_PATH) != 0 ? -1 : 8 + (int)*(uint*)p;
        }
    }

    private int OpenHandle(byte[] handle, int flags)
    {
        fixed (byte* h = handle) return Sys.OpenByHandleAt(_mountFd.Fd, h, flags | Sys.O_CLOEXEC);
    }

    /// <summary>A descriptor of a node's object for one call: its own, or one opened from its file handle and closed on Dispose.</summary>
    private readonly ref struct Use
    {
        public readonly int Fd;
        private readonly bool _owned;

        public Use(LoopbackFileSystem fs, Node node)
        {
            if (node.Fd is { } own) { Fd = own.Fd; return; }
            Fd = fs.OpenHandle(node.Handle!, Sys.O_PATH);
            _owned = Fd >= 0;
        }

        public string ProcPath => "/proc/self/fd/" + Fd;

        public void Dispose()
        {
            if (_owned) Sys.Close(Fd);
        }
    }

    /// <summary>Set before the session starts, so opens can register passthrough backing files.</summary>
    public FuseSession? Session { get => _session; set => _session = value; }

    public bool UsePassthrough { get; set; } = true;

    /// <summary>Reads not passed through are spliced from the backing file to the kernel (<see cref="ReadSource"/>).</summary>
    public bool SpliceReads { get; set; } = true;

    // The open backing files by handle (ReadSource, GetXattr): each closed once released and no call uses it any more.
    private readonly ConcurrentDictionary<ulong, SafeFd> _openFiles = new();

    private void AddOpenFile(Node node, int fd)
    {
        var file = new SafeFd(fd);
        _openFiles[(ulong)fd] = file;
        lock (node) node.OpenFiles.Add(file);
    }

    /// <summary>
    /// The kernel caches writes and sends them later (FUSE_WRITEBACK_CACHE): it may then read a page
    /// of a file opened write-only to fill it, and it keeps the file size itself, so backing files
    /// are opened read-write and without O_APPEND.
    /// </summary>
    public bool WritebackCache { get; set; }

    private int BackingFlags(int flags)
    {
        if (!WritebackCache) return flags;
        if ((flags & Sys.O_ACCMODE) == Sys.O_WRONLY) flags = (flags & ~Sys.O_ACCMODE) | Sys.O_RDWR;
        return flags & ~Sys.O_APPEND;
    }

    /// <summary>
    /// Most nodes (each holds an O_PATH descriptor) kept at once; past it LOOKUP and friends answer
    /// EMFILE. Set it below the descriptor limit: the runtime needs descriptors of its own (every new
    /// thread makes a pipe, and fails fatally without one), and so do open files and directories.
    /// </summary>
    public int MaxNodes { get; set; } = int.MaxValue;

    private Node Get(ulong id) => _nodes.TryGetValue(id, out var n) ? n : throw new KeyNotFoundException($"node {id}");


    private static string Str(ReadOnlySpan<byte> name) => Encoding.UTF8.GetString(name);

    /// <summary>Finds or makes the node for an object, taking one kernel reference.</summary>
    private Errno Remember(int fd, out EntryOut entry)
    {
        entry = default;
        if (Sys.FStatx(fd, out var st) != 0) { var e = Sys.LastErrno; Sys.Close(fd); return e; }
        Span<byte> handleBuf = stackalloc byte[8 + Sys.MAX_HANDLE_SZ];
        int handleLength = _handles && (st.Mode & ModeBits.S_IFMT) != ModeBits.S_IFDIR ? HandleOf(fd, handleBuf) : -1;
        ReadOnlySpan<byte> handle = handleLength < 0 ? default : handleBuf[..handleLength];
        Node node;
        lock (_lock)
        {
            // A node that keeps a descriptor keeps its object, and so its inode number. One that keeps a
            // file handle does not: once the object is removed, the filesystem may give its number to a
            // new object at once (ext4 does), while the kernel has not yet forgotten the old node. The
            // handles then differ (the inode's generation), and the new object gets a node of its own.
            if (_byInode.TryGetValue((st.Dev, st.Ino), out var existing) && (existing.Handle is null || handle.SequenceEqual(existing.Handle)))
            {
                Sys.Close(fd);
                node = existing;
            }
            else
            {
                if (handleLength >= 0) { Sys.Close(fd); fd = -1; }
                else if (_nodeCount >= MaxNodes) { Sys.Close(fd); return Errno.EMFILE; }
                else _nodeCount++;
                node = new Node
                {
                    Fd = fd >= 0 ? new SafeFd(fd) : null, Handle = handleLength >= 0 ? handle.ToArray() : null,
                    Id = (ulong)Interlocked.Increment(ref _nextId), Key = (st.Dev, st.Ino),
                };
                _byInode[node.Key] = node; // replaces a node whose object is gone; that one lives on until forgotten
                _nodes[node.Id] = node;
            }
            node.Lookups++;
        }
        entry.NodeId = node.Id;
        entry.SetTimeouts(_entryTimeout, _attrTimeout);
        entry.Attr = FuseAttr.FromStatx(st);
        return Errno.None;
    }

    private static int OpenChild(int dirfd, ReadOnlySpan<byte> name, int flags)
    {
        Span<byte> buf = stackalloc byte[name.Length + 1];
        name.CopyTo(buf);
        buf[name.Length] = 0;
        fixed (byte* p = buf) return Sys.OpenAt(dirfd, p, flags, 0);
    }

    public Errno Lookup(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, out EntryOut entry)
    {
        entry = default;
        int fd = OpenChild(Get(parent).Fd!.Fd, name, Sys.O_PATH | Sys.O_NOFOLLOW | Sys.O_CLOEXEC);
        if (fd < 0) return Sys.LastErrno;
        return Remember(fd, out entry);
    }

    public void Forget(ulong nodeId, ulong nlookup)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(nodeId, out var node)) return;
            node.Lookups -= (long)nlookup;
            if (node.Lookups > 0 || nodeId == FuseConstants.RootId) return;
            _nodes.TryRemove(nodeId, out _);
            if (_byInode.TryGetValue(node.Key, out var current) && current == node) _byInode.Remove(node.Key);
            if (node.Fd is { } fd) { _nodeCount--; fd.Dispose(); }
        }
    }

    public Errno GetAttr(in RequestContext ctx, ulong nodeId, ulong? fh, out AttrOut attr)
    {
        attr = default;
        if (fh is ulong h) return AttrOf((int)h, out attr);
        using var u = new Use(this, Get(nodeId));
        return u.Fd < 0 ? Sys.LastErrno : AttrOf(u.Fd, out attr);
    }

    private Errno AttrOf(int fd, out AttrOut attr)
    {
        attr = default;
        if (Sys.FStatx(fd, out var st) != 0) return Sys.LastErrno;
        attr.SetTimeout(_attrTimeout);
        attr.Attr = FuseAttr.FromStatx(st);
        return Errno.None;
    }

    public Errno SetAttr(in RequestContext ctx, ulong nodeId, in SetAttrIn c, out AttrOut attr)
    {
        attr = default;
        var node = Get(nodeId);
        bool hasFh = (c.Valid & SetAttrValid.Fh) != 0;
        using var u = new Use(this, node);
        if (u.Fd < 0) return Sys.LastErrno;
        string proc = u.ProcPath;
        if ((c.Valid & SetAttrValid.Mode) != 0)
        {
            int r = hasFh ? Sys.FChmod((int)c.Fh, c.Mode) : Sys.FChmodAt(Sys.AT_FDCWD, proc, c.Mode, 0);
            if (r != 0) return Sys.LastErrno;
        }
        if ((c.Valid & (SetAttrValid.Uid | SetAttrValid.Gid)) != 0)
        {
            uint uid = (c.Valid & SetAttrValid.Uid) != 0 ? c.Uid : uint.MaxValue;
            uint gid = (c.Valid & SetAttrValid.Gid) != 0 ? c.Gid : uint.MaxValue;
            if (Sys.FChownAt(u.Fd, "", uid, gid, Sys.AT_EMPTY_PATH | Sys.AT_SYMLINK_NOFOLLOW) != 0) return Sys.LastErrno;
        }
        if ((c.Valid & SetAttrValid.Size) != 0)
        {
            int r = hasFh ? Sys.FTruncate((int)c.Fh, (long)c.Size) : Sys.Truncate(proc, (long)c.Size);
            if (r != 0) return Sys.LastErrno;
        }
        if ((c.Valid & (SetAttrValid.ATime | SetAttrValid.MTime | SetAttrValid.ATimeNow | SetAttrValid.MTimeNow)) != 0)
        {
            var times = stackalloc Sys.Timespec[2];
            times[0] = (c.Valid & SetAttrValid.ATimeNow) != 0 ? new(0, Sys.UTIME_NOW)
                : (c.Valid & SetAttrValid.ATime) != 0 ? new((long)c.ATime, c.ATimeNsec) : new(0, Sys.UTIME_OMIT);
            times[1] = (c.Valid & SetAttrValid.MTimeNow) != 0 ? new(0, Sys.UTIME_NOW)
                : (c.Valid & SetAttrValid.MTime) != 0 ? new((long)c.MTime, c.MTimeNsec) : new(0, Sys.UTIME_OMIT);
            int r = hasFh ? Sys.FUtimens((int)c.Fh, times) : Sys.UtimensAt(Sys.AT_FDCWD, proc, times, 0);
            if (r != 0) return Sys.LastErrno;
        }
        return GetAttr(ctx, nodeId, hasFh ? c.Fh : null, out attr);
    }

    public Errno ReadLink(in RequestContext ctx, ulong nodeId, Span<byte> target, out int length)
    {
        length = 0;
        using var u = new Use(this, Get(nodeId));
        if (u.Fd < 0) return Sys.LastErrno;
        fixed (byte* p = target)
        {
            nint n = Sys.ReadlinkAt(u.Fd, "", p, (nuint)target.Length);
            if (n < 0) return Sys.LastErrno;
            length = (int)n;
        }
        return Errno.None;
    }

    /// <summary>Runs a creating call with the caller's filesystem identity, so new objects belong to the caller from the start.</summary>
    private static Errno AsCaller(in RequestContext ctx, Func<int> create)
    {
        int oldUid = Sys.SetFsUid(ctx.Uid), oldGid = Sys.SetFsGid(ctx.Gid);
        try { return create() == 0 ? Errno.None : Sys.LastErrno; }
        finally { Sys.SetFsGid((uint)oldGid); Sys.SetFsUid((uint)oldUid); }
    }

    private Errno LookupCreated(ulong parent, ReadOnlySpan<byte> name, out EntryOut entry)
    {
        entry = default;
        int fd = OpenChild(Get(parent).Fd!.Fd, name, Sys.O_PATH | Sys.O_NOFOLLOW | Sys.O_CLOEXEC);
        return fd < 0 ? Sys.LastErrno : Remember(fd, out entry);
    }

    /// <summary>
    /// The object was made but its node could not be (out of nodes or descriptors): take the new
    /// name away again, so a caller told "failed" finds nothing made.
    /// </summary>
    private static Errno Unmake(int dir, string name, bool directory, Errno failure)
    {
        Sys.UnlinkAt(dir, name, directory ? Sys.AT_REMOVEDIR : 0);
        return failure;
    }

    public Errno Mkdir(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out EntryOut entry)
    {
        int dir = Get(parent).Fd!.Fd; string n = Str(name);
        var e = AsCaller(ctx, () => Sys.MkdirAt(dir, n, mode & ~umask));
        if (e != Errno.None) { entry = default; return e; }
        e = LookupCreated(parent, name, out entry);
        return e == Errno.None ? e : Unmake(dir, n, directory: true, e);
    }

    public Errno Mknod(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out EntryOut entry)
    {
        int dir = Get(parent).Fd!.Fd; string n = Str(name);
        var e = AsCaller(ctx, () => Sys.MknodAt(dir, n, mode & ~umask, rdev));
        if (e != Errno.None) { entry = default; return e; }
        e = LookupCreated(parent, name, out entry);
        return e == Errno.None ? e : Unmake(dir, n, directory: false, e);
    }

    public Errno Symlink(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out EntryOut entry)
    {
        int dir = Get(parent).Fd!.Fd; string n = Str(name), t = Str(target);
        var e = AsCaller(ctx, () => Sys.SymlinkAt(t, dir, n));
        if (e != Errno.None) { entry = default; return e; }
        e = LookupCreated(parent, name, out entry);
        return e == Errno.None ? e : Unmake(dir, n, directory: false, e);
    }

    public Errno Link(in RequestContext ctx, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out EntryOut entry)
    {
        entry = default;
        int dir = Get(newParent).Fd!.Fd; string n = Str(newName);
        using (var u = new Use(this, Get(nodeId)))
            if (u.Fd < 0 || Sys.LinkAt(u.Fd, "", dir, n, Sys.AT_EMPTY_PATH) != 0) return Sys.LastErrno;
        var e = LookupCreated(newParent, newName, out entry);
        return e == Errno.None ? e : Unmake(dir, n, directory: false, e);
    }

    public Errno Unlink(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name) =>
        Sys.UnlinkAt(Get(parent).Fd!.Fd, Str(name), 0) == 0 ? Errno.None : Sys.LastErrno;

    public Errno Rmdir(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name) =>
        Sys.UnlinkAt(Get(parent).Fd!.Fd, Str(name), Sys.AT_REMOVEDIR) == 0 ? Errno.None : Sys.LastErrno;

    public Errno Rename(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags) =>
        Sys.RenameAt2(Get(parent).Fd!.Fd, Str(name), Get(newParent).Fd!.Fd, Str(newName), flags) == 0 ? Errno.None : Sys.LastErrno;

    public Errno Open(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = default;
        var node = Get(nodeId);
        int backing = BackingFlags(flags & ~(Sys.O_NOFOLLOW | Sys.O_CREAT | Sys.O_EXCL | Sys.O_NOCTTY));
        int fd = node.Handle is { } handle ? OpenHandle(handle, backing) : Sys.Open("/proc/self/fd/" + node.Fd!.Fd, backing | Sys.O_CLOEXEC);
        if (fd < 0) return Sys.LastErrno;
        open.Fh = (ulong)fd;
        AddOpenFile(node, fd);
        AttachBacking(node, fd, ref open);
        return Errno.None;
    }

    public Errno Create(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out EntryOut entry, out OpenOut open)
    {
        entry = default; open = default;
        int dir = Get(parent).Fd!.Fd; string n = Str(name);
        int fd = -1;
        bool made = false;
        var e = AsCaller(ctx, () =>
        {
            // Exclusive first, so that it is known whether this call made the file (and may take it away again).
            int common = BackingFlags(flags | Sys.O_NOFOLLOW | Sys.O_CLOEXEC) & ~(Sys.O_NOCTTY | Sys.O_CREAT | Sys.O_EXCL);
            fd = Sys.OpenAt(dir, n, common | Sys.O_CREAT | Sys.O_EXCL, mode & ~umask);
            if (fd >= 0) { made = true; return 0; }
            if (Sys.LastErrno != Errno.EEXIST || (flags & Sys.O_EXCL) != 0) return -1;
            fd = Sys.OpenAt(dir, n, common, 0);
            return fd < 0 ? -1 : 0;
        });
        if (e != Errno.None) return e;
        e = LookupCreated(parent, name, out entry);
        if (e != Errno.None) { Sys.Close(fd); return made ? Unmake(dir, n, directory: false, e) : e; }
        open.Fh = (ulong)fd;
        AddOpenFile(Get(entry.NodeId), fd);
        AttachBacking(Get(entry.NodeId), fd, ref open);
        return Errno.None;
    }

    /// <summary>All opens of one inode share the backing file registered by the first.</summary>
    private void AttachBacking(Node node, int fd, ref OpenOut open)
    {
        var session = _session;
        lock (node)
        {
            node.Opens++;
            if (!UsePassthrough || session is null || !session.Connection.Passthrough) return;
            if (node.BackingId < 0)
            {
                int id = session.OpenBacking(fd);
                if (id < 0) return;
                node.BackingId = id;
            }
            open.OpenFlags |= OpenReplyFlags.Passthrough;
            open.BackingId = node.BackingId;
        }
    }

    public Errno Read(in RequestContext ctx, ulong nodeId, in ReadIn request, Span<byte> buffer, out int count)
    {
        nint n = Sys.PRead((int)request.Fh, buffer, (long)request.Offset);
        count = (int)Math.Max(n, 0);
        return n < 0 ? Sys.LastErrno : Errno.None;
    }

    public Errno Write(in RequestContext ctx, ulong nodeId, in WriteIn request, ReadOnlySpan<byte> data, out uint written)
    {
        nint n = Sys.PWrite((int)request.Fh, data, (long)request.Offset);
        written = (uint)Math.Max(n, 0);
        return n < 0 ? Sys.LastErrno : Errno.None;
    }

    public Errno Flush(in RequestContext ctx, ulong nodeId, ulong fh, ulong lockOwner) => Errno.None;

    public Errno ReadSource(in RequestContext ctx, ulong nodeId, in ReadIn request, out SafeFd? source)
    {
        source = null;
        if (!SpliceReads) return Errno.ENOSYS;
        _openFiles.TryGetValue(request.Fh, out source);
        return Errno.None;
    }

    public Errno Release(in RequestContext ctx, ulong nodeId, in ReleaseIn request)
    {
        // Every file open is registered (AddOpenFile); the descriptor closes once no call uses it.
        _nodes.TryGetValue(nodeId, out var node);
        if (_openFiles.TryRemove(request.Fh, out var file))
        {
            if (node is not null) lock (node) node.OpenFiles.Remove(file);
            file.Dispose();
        }
        if (node is not null)
        {
            lock (node)
            {
                if (--node.Opens == 0 && node.BackingId >= 0)
                {
                    _session?.CloseBacking(node.BackingId);
                    node.BackingId = -1;
                }
            }
        }
        return Errno.None;
    }

    public Errno Fsync(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) =>
        (dataOnly ? Sys.FDataSync((int)fh) : Sys.FSync((int)fh)) == 0 ? Errno.None : Sys.LastErrno;

    public Errno Fallocate(in RequestContext ctx, ulong nodeId, in FallocateIn r) =>
        Sys.FAllocate((int)r.Fh, (int)r.Mode, (long)r.Offset, (long)r.Length) == 0 ? Errno.None : Sys.LastErrno;

    public Errno Lseek(in RequestContext ctx, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        result = Sys.LSeek((int)fh, offset, whence);
        return result < 0 ? Sys.LastErrno : Errno.None;
    }

    public Errno StatFs(in RequestContext ctx, ulong nodeId, out KStatFs statfs)
    {
        statfs = default;
        using var u = new Use(this, Get(nodeId));
        if (u.Fd < 0 || Sys.FStatFs(u.Fd, out var s) != 0) return Sys.LastErrno;
        statfs = new KStatFs
        {
            Blocks = s.Blocks, BFree = s.BFree, BAvail = s.BAvail, Files = s.Files, FFree = s.FFree,
            BSize = (uint)s.BSize, NameLen = (uint)s.NameLen, FrSize = (uint)s.FrSize,
        };
        return Errno.None;
    }

    public Errno GetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> value, out int size)
    {
        // Before every write the kernel asks for security.capability (killpriv): a file that is open
        // is asked through its descriptor, with no path and no descriptor to open and close.
        var node = Get(nodeId);
        SafeFd? open;
        lock (node) open = node.OpenFiles.Count > 0 ? node.OpenFiles[0] : null;
        if (open is not null && open.TryAddRef())
        {
            try
            {
                nint r = Sys.FGetXattr(open.Fd, XattrNames.Decode(name), value);
                size = (int)Math.Max(r, 0);
                return r < 0 ? Sys.LastErrno : Errno.None;
            }
            finally { open.DangerousRelease(); }
        }
        using var u = new Use(this, node);
        nint n = u.Fd < 0 ? -1 : Sys.GetXattr(u.ProcPath, XattrNames.Decode(name), value);
        size = (int)Math.Max(n, 0);
        return n < 0 ? Sys.LastErrno : Errno.None;
    }

    public Errno SetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        using var u = new Use(this, Get(nodeId));
        return u.Fd >= 0 && Sys.SetXattr(u.ProcPath, XattrNames.Decode(name), value, flags) == 0 ? Errno.None : Sys.LastErrno;
    }

    public Errno ListXattr(in RequestContext ctx, ulong nodeId, Span<byte> list, out int size)
    {
        using var u = new Use(this, Get(nodeId));
        nint n = u.Fd < 0 ? -1 : Sys.ListXattr(u.ProcPath, list);
        size = (int)Math.Max(n, 0);
        return n < 0 ? Sys.LastErrno : Errno.None;
    }

    public Errno RemoveXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name)
    {
        using var u = new Use(this, Get(nodeId));
        return u.Fd >= 0 && Sys.RemoveXattr(u.ProcPath, XattrNames.Decode(name)) == 0 ? Errno.None : Sys.LastErrno;
    }

    public Errno OpenDir(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = default;
        int fd = Sys.OpenAt(Get(nodeId).Fd!.Fd, ".", Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_CLOEXEC);
        if (fd < 0) return Sys.LastErrno;
        open.Fh = (ulong)fd;
        return Errno.None;
    }

    public Errno ReadDir(in RequestContext ctx, ulong nodeId, ulong fh, long offset, ref DirEntryBuffer entries)
    {
        int fd = (int)fh;
        byte[] buf = System.Buffers.ArrayPool<byte>.Shared.Rent(32 * 1024);
        try
        {
            if (Sys.LSeek(fd, offset, Sys.SEEK_SET) < 0) return Sys.LastErrno;
            while (true)
            {
                int n = Sys.GetDents64(fd, buf);
                if (n < 0) return Sys.LastErrno;
                if (n == 0) return Errno.None;
                for (int pos = 0; pos < n;)
                {
                    ulong ino = MemoryMarshal.Read<ulong>(buf.AsSpan(pos));
                    long next = MemoryMarshal.Read<long>(buf.AsSpan(pos + 8));
                    ushort reclen = MemoryMarshal.Read<ushort>(buf.AsSpan(pos + 16));
                    byte type = buf[pos + 18];
                    var name = buf.AsSpan(pos + 19, reclen - 19);
                    name = name[..Math.Max(0, name.IndexOf((byte)0))];
                    pos += reclen;
                    if (!AddEntry(ref entries, nodeId, ino, next, type, name))
                        return Errno.None;
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buf);
        }
    }

    private bool AddEntry(ref DirEntryBuffer entries, ulong dirNode, ulong ino, long next, byte type, ReadOnlySpan<byte> name)
    {
        if (!entries.IsPlus) return entries.TryAdd(ino, next, type, name);
        // Node id 0: the name without attributes or a kernel reference (the kernel looks it up when it needs it).
        var bare = new EntryOut();
        bare.Attr.Ino = ino;
        bare.Attr.Mode = (uint)type << 12;
        bool dot = name.SequenceEqual("."u8) || name.SequenceEqual(".."u8);
        if (dot) return entries.TryAddPlus(bare, next, type, name);
        int fd = OpenChild(Get(dirNode).Fd!.Fd, name, Sys.O_PATH | Sys.O_NOFOLLOW | Sys.O_CLOEXEC);
        if (fd < 0)
        {
            if (Sys.LastErrno == Errno.ENOENT) return true; // gone since getdents: skip it
            // No node for it now (e.g. EMFILE: one descriptor per known inode): list it bare, never drop it.
            return entries.TryAddPlus(bare, next, type, name);
        }
        // The entry carries a kernel reference only if it fits; a full buffer means the kernel asks again.
        if (Remember(fd, out var entry) != Errno.None) return entries.TryAddPlus(bare, next, type, name);
        if (entries.TryAddPlus(entry, next, type, name)) return true;
        Forget(entry.NodeId, 1);
        return false;
    }

    public Errno ReleaseDir(in RequestContext ctx, ulong nodeId, ulong fh)
    {
        Sys.Close((int)fh);
        return Errno.None;
    }

    public Errno FsyncDir(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) =>
        (dataOnly ? Sys.FDataSync((int)fh) : Sys.FSync((int)fh)) == 0 ? Errno.None : Sys.LastErrno;
}
