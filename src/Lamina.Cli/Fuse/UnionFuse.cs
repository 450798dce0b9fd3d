using System.Collections.Concurrent;
using System.Text;
using Lamina.Fuse;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Cli.Fuse;

/// <summary>
/// Serves a <see cref="UnionFileSystem"/> over FUSE. FUSE node ids are the engine's node ids
/// (the root is always 1 to the kernel), file handles index open <see cref="UnionHandle"/>s, and
/// every request runs as the caller the kernel names.
///
/// Kernel caching: names and attributes under a directory the branch tracker follows
/// (<see cref="UnionNode.IsTracked"/>) are given the long tracked timeouts, including negative
/// entries, and such a directory's listing is kept by the kernel (FOPEN_CACHE_DIR + KEEP_CACHE)
/// unless a union watch asks for IN_ACCESS on it; the tracker tells the kernel of every change
/// made outside the union. Elsewhere the short timeouts apply and nothing missing is cached.
///
/// Passthrough and copy-up: the kernel gives a passthrough inode one backing file while any
/// passthrough open lasts, and reads through it never come back to the daemon. In the default mode
/// (<see cref="PassthroughMode.Auto"/>) every open passes through, lower files read-only included,
/// so a descriptor opened read-only on a lower file keeps reading the lower file after a copy-up
/// (as kernel overlayfs did before 4.19). The kernel refuses any other open of an inode bound to a
/// backing file, so an open that must not share it, such as the open for writing that copies the
/// file up, is answered ESTALE and retried by the kernel on a new inode of the same node, which
/// passes through to the upper copy (UnionFuse.Aliases.cs). <see cref="PassthroughMode.Upper"/> keeps
/// read-only opens of lower files in the page cache instead, where writes after a copy-up land too.
/// </summary>
public enum PassthroughMode
{
    /// <summary>No passthrough: all I/O through the daemon and the page cache.</summary>
    Off,
    /// <summary>Only files already in a writable branch pass through; read-only descriptors follow copy-up.</summary>
    Upper,
    /// <summary>Every open passes through where the kernel allows it (the default).</summary>
    Auto,
    /// <summary>The same as <see cref="Auto"/> (kept for the option's older meaning: every file).</summary>
    On,
}

public sealed partial class UnionFuse : IFuseFileSystem
{
    private readonly UnionFileSystem _union;
    private readonly ConcurrentDictionary<ulong, OpenFile> _files = new();
    private readonly ConcurrentDictionary<ulong, UnionDirHandle> _dirs = new();
    private readonly ConcurrentDictionary<ulong, NodeIo> _io = new();
    private long _nextFh;
    private long _copyUps;
    private readonly TimeSpan _entryTimeout, _attrTimeout;

    /// <summary>How a handle's I/O is done: page cache or kernel passthrough; or not at all (the open is retried on a new inode).</summary>
    private enum IoKind { Cached, Passthrough, Retry }

    /// <summary>An open file: its handle, how its I/O is done, and the kernel inode (id) it was opened on.</summary>
    private sealed record OpenFile(UnionHandle Handle, IoKind Kind, ulong KernelId);

    /// <summary>How the kernel currently does I/O on one kernel inode: the rules of fs/fuse/iomode.c.</summary>
    private sealed class NodeIo
    {
        public int BackingId = -1;
        public (ulong Dev, ulong Ino) File;
        public bool LowerBacking; // the backing file is in a read-only branch: a copy-up leaves it behind
        public int PassthroughOpens;
        public int CachedOpens;
        public (long Sec, uint Nsec, ulong Size) LastSeen;
    }

    public UnionFuse(UnionFileSystem union, TimeSpan entryTimeout, TimeSpan attrTimeout)
    {
        _union = union;
        _union.Observe(new EngineEvents(this));
        _entryTimeout = entryTimeout;
        _attrTimeout = attrTimeout;
    }

    private sealed class EngineEvents(UnionFuse fuse) : IUnionObserver
    {
        public void AfterPublish(UnionNode node) => Interlocked.Increment(ref fuse._copyUps);
        public void NodeDropped(UnionNode node) => fuse.DropAliases(node);
    }

    public FuseSession? Session { get; set; }
    public PassthroughMode Passthrough { get; set; } = PassthroughMode.Auto;

    /// <summary>The branch tracker serving this mount, if any (for status).</summary>
    public Tracking.BranchTracker? Tracker { get; set; }

    /// <summary>Entry timeout for names in a tracked directory (default: the untracked one).</summary>
    public TimeSpan TrackedEntryTimeout { get => _trackedEntry ?? _entryTimeout; init => _trackedEntry = value; }
    private readonly TimeSpan? _trackedEntry;

    /// <summary>Attribute timeout for objects in a tracked directory (default: the untracked one).</summary>
    public TimeSpan TrackedAttrTimeout { get => _trackedAttr ?? _attrTimeout; init => _trackedAttr = value; }
    private readonly TimeSpan? _trackedAttr;

    /// <summary>Whether what the kernel caches under <paramref name="dir"/> is kept coherent by the branch tracker.</summary>
    private static bool Tracked(UnionNode? dir) => dir is { IsTracked: true };

    private TimeSpan EntryTimeoutIn(bool tracked) => tracked ? TrackedEntryTimeout : _entryTimeout;
    private TimeSpan AttrTimeoutIn(bool tracked) => tracked ? TrackedAttrTimeout : _attrTimeout;

    /// <summary>The attribute timeout for a node: long when its directory is tracked (the root: when it is).</summary>
    private TimeSpan AttrTimeoutOf(UnionNode node) => AttrTimeoutIn(Tracked(node.Parent ?? node));

    /// <summary>LOOKUP and GETATTR requests served (what the kernel did not answer from its caches).</summary>
    public long Lookups => Interlocked.Read(ref _lookups);
    public long GetAttrs => Interlocked.Read(ref _getattrs);
    private long _lookups, _getattrs;

    /// <summary>Objects whose backing file moved to a writable branch since the mount.</summary>
    public long CopyUps => Interlocked.Read(ref _copyUps);

    /// <summary>Open files and directories right now.</summary>
    public int OpenFiles => _files.Count;
    public int OpenDirectories => _dirs.Count;

    private ulong RootId => _union.Root.NodeId;

    private static string Str(ReadOnlySpan<byte> s) => Encoding.UTF8.GetString(s);

    /// <summary>
    /// ID mapping (uidmapping=, gidmapping=, squash_to_*): null when ids pass unchanged. The engine
    /// works in stored ids throughout; this adapter translates where the kernel's ids come in
    /// (request headers, chown, ACL values) and go out (attributes, ACL values).
    /// </summary>
    public OwnerMap? Owners
    {
        get => _owners;
        init => _owners = value is { IsIdentity: false } ? value : null;
    }
    private readonly OwnerMap? _owners;

    /// <summary>The caller as the engine sees it: with ID mapping, the ids its files get on the branches.</summary>
    private Caller CallerOf(in RequestContext ctx)
    {
        if (_owners is not { } map) return new(ctx.Uid, ctx.Gid, (int)ctx.Pid, ctx.SupplementaryGroups);
        uint[]? groups = ctx.SupplementaryGroups is { } g
            ? g.Select(map.StoreGroup).Where(x => x is not null).Select(x => x!.Value).ToArray()
            : null;
        return new(map.StoreUid(ctx.Uid), map.StoreGid(ctx.Gid), (int)ctx.Pid, groups);
    }

    /// <summary>Attributes for the kernel: with ID mapping, the owner as shown through the mount.</summary>
    private FuseAttr Shown(in Statx st)
    {
        var attr = FuseAttr.FromStatx(st);
        if (_owners is { } map)
        {
            attr.Uid = map.ShowUid(st.Uid);
            attr.Gid = map.ShowGid(st.Gid);
        }
        return attr;
    }

    /// <summary>Fills an entry for a node the engine has just counted one lookup of.</summary>
    private Errno Entry(UnionNode node, out EntryOut entry)
    {
        entry = default;
        var e = _union.GetAttr(node, out var st);
        if (e != Errno.None)
        {
            _union.Forget(node, 1);
            return e;
        }
        entry = EntryOf(node, st);
        return Errno.None;
    }

    private EntryOut EntryOf(UnionNode node, in Statx st, bool tracked)
    {
        var entry = new EntryOut { NodeId = FuseId(node), Attr = Shown(st) };
        entry.SetTimeouts(EntryTimeoutIn(tracked), AttrTimeoutIn(tracked));
        return entry;
    }

    private EntryOut EntryOf(UnionNode node, in Statx st) => EntryOf(node, st, Tracked(node.Parent));

    public Errno Lookup(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, out EntryOut entry)
    {
        entry = default;
        Interlocked.Increment(ref _lookups);
        var p = Node(parent);
        if (p is null) return Errno.ESTALE;
        // Read before the lookup: a directory tracked from before it began reports every change since.
        Tracker?.TrackNow(p);
        bool tracked = Tracked(p);
        var e = _union.Lookup(p, Str(name), out var node, out var st);
        if (e == Errno.ENOENT && tracked)
        {
            // A negative entry the kernel may keep: a name made later in a branch is told to it.
            entry.SetTimeouts(TrackedEntryTimeout, TimeSpan.Zero);
            return Errno.None;
        }
        if (e != Errno.None) return e;
        entry = EntryOf(node!, st, tracked);
        return Errno.None;
    }

    public void Forget(ulong nodeId, ulong nlookup)
    {
        if (nodeId == FuseConstants.RootId) return;
        if (Node(nodeId) is { } node) _union.Forget(node, nlookup);
    }

    public Errno GetAttr(in RequestContext ctx, ulong nodeId, ulong? fh, out AttrOut attr)
    {
        attr = default;
        Interlocked.Increment(ref _getattrs);
        var node = Node(nodeId);
        // Read before the attributes: a directory tracked from before reports every change since.
        var timeout = node is null ? _attrTimeout : AttrTimeoutOf(node);
        Statx st;
        Errno e;
        if (fh is ulong h && _files.TryGetValue(h, out var file)) e = file.Handle.GetAttr(out st);
        else
        {
            if (node is null) return Errno.ESTALE;
            e = _union.GetAttr(node, out st);
        }
        if (e != Errno.None) return e;
        attr.SetTimeout(timeout);
        attr.Attr = Shown(st);
        return Errno.None;
    }

    public Errno SetAttr(in RequestContext ctx, ulong nodeId, in SetAttrIn c, out AttrOut attr)
    {
        attr = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        UnionHandle? handle = (c.Valid & SetAttrValid.Fh) != 0 ? _files.GetValueOrDefault(c.Fh)?.Handle : null;
        var timeout = AttrTimeoutOf(node);
        if ((c.Valid & SetAttrValid.Size) != 0 && MandatoryTruncate(in ctx, node, handle, (long)c.Size) is var me && me != Errno.None) return me; // locks=mandatory
        var request = new SetAttrRequest
        {
            Mode = (c.Valid & SetAttrValid.Mode) != 0 ? c.Mode : null,
            Uid = (c.Valid & SetAttrValid.Uid) != 0 ? (_owners?.StoreUid(c.Uid) ?? c.Uid) : null,
            Gid = (c.Valid & SetAttrValid.Gid) != 0 ? (_owners?.StoreGid(c.Gid) ?? c.Gid) : null,
            Size = (c.Valid & SetAttrValid.Size) != 0 ? (long)c.Size : null,
            ATime = (c.Valid & SetAttrValid.ATime) != 0 ? new StatxTimestamp((long)c.ATime, c.ATimeNsec) : null,
            MTime = (c.Valid & SetAttrValid.MTime) != 0 ? new StatxTimestamp((long)c.MTime, c.MTimeNsec) : null,
            ATimeNow = (c.Valid & SetAttrValid.ATimeNow) != 0,
            MTimeNow = (c.Valid & SetAttrValid.MTimeNow) != 0,
        };
        var e = _union.SetAttr(node, handle, request, CallerOf(ctx), out var st);
        if (e != Errno.None) return e;
        attr.SetTimeout(timeout);
        attr.Attr = Shown(st);
        return Errno.None;
    }

    public Errno ReadLink(in RequestContext ctx, ulong nodeId, Span<byte> target, out int length)
    {
        length = 0;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        var e = _union.ReadLink(node, out var text);
        if (e != Errno.None) return e;
        length = Encoding.UTF8.GetBytes(text, target);
        return Errno.None;
    }

    public Errno Mkdir(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out EntryOut entry)
    {
        entry = default;
        var p = Node(parent);
        if (p is null) return Errno.ESTALE;
        var e = _union.Mkdir(p, Str(name), mode, umask, CallerOf(ctx), out var node);
        return e != Errno.None ? e : Entry(node!, out entry);
    }

    public Errno Mknod(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out EntryOut entry)
    {
        entry = default;
        var p = Node(parent);
        if (p is null) return Errno.ESTALE;
        var e = _union.Mknod(p, Str(name), mode, rdev, umask, CallerOf(ctx), out var node);
        return e != Errno.None ? e : Entry(node!, out entry);
    }

    public Errno Symlink(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out EntryOut entry)
    {
        entry = default;
        var p = Node(parent);
        if (p is null) return Errno.ESTALE;
        var e = _union.Symlink(p, Str(name), Str(target), CallerOf(ctx), out var node);
        return e != Errno.None ? e : Entry(node!, out entry);
    }

    public Errno Link(in RequestContext ctx, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out EntryOut entry)
    {
        entry = default;
        var n = Node(nodeId);
        var p = Node(newParent);
        if (n is null || p is null) return Errno.ESTALE;
        var e = _union.Link(n, p, Str(newName), CallerOf(ctx), out var node);
        return e != Errno.None ? e : Entry(node!, out entry);
    }

    public Errno Unlink(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name)
    {
        var p = Node(parent);
        return p is null ? Errno.ESTALE : _union.Unlink(p, Str(name), CallerOf(ctx));
    }

    public Errno Rmdir(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name)
    {
        var p = Node(parent);
        return p is null ? Errno.ESTALE : _union.Rmdir(p, Str(name), CallerOf(ctx));
    }

    public Errno Rename(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        var p = Node(parent);
        var np = Node(newParent);
        if (p is null || np is null) return Errno.ESTALE;
        return _union.Rename(p, Str(name), np, Str(newName), flags, CallerOf(ctx));
    }

    public Errno Open(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        // An open that will copy up a file this inode passes through to below goes to a new inode at once.
        if (_io.TryGetValue(nodeId, out var io) && MustMoveOff(io, node, flags)) { Realias(node); return Errno.ESTALE; }
        var e = _union.Open(node, flags, CallerOf(ctx), out var handle);
        return e != Errno.None ? e : Publish(in ctx, nodeId, handle!, ref open);
    }

    /// <summary>Whether an open of a kernel inode bound to a lower backing file cannot share it (it writes, or the node was copied up).</summary>
    private static bool MustMoveOff(NodeIo io, UnionNode node, int flags)
    {
        lock (io)
            return io.PassthroughOpens > 0 && io.LowerBacking
                && (UnionFileSystem.OpenForWriting(flags) || (flags & Native.Sys.O_TRUNC) != 0 || node.BackingBranch is { IsWritable: true });
    }

    public Errno Create(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out EntryOut entry, out OpenOut open)
    {
        entry = default; open = default;
        var p = Node(parent);
        if (p is null) return Errno.ESTALE;
        var e = _union.Create(p, Str(name), mode, umask, flags, CallerOf(ctx), out var node, out var handle);
        if (e != Errno.None) return e;
        e = Entry(node!, out entry);
        if (e != Errno.None) { handle!.Release(); return e; }
        e = Publish(in ctx, entry.NodeId, handle!, ref open);
        if (e != Errno.None) _union.Forget(node!, 1);
        return e;
    }

    /// <summary>Gives the handle a file handle number and an I/O mode on kernel inode <paramref name="kernelId"/>.</summary>
    private Errno Publish(in RequestContext ctx, ulong kernelId, UnionHandle handle, ref OpenOut open)
    {
        var kind = ChooseIo(in ctx, kernelId, handle, ref open);
        if (kind == IoKind.Retry)
        {
            // The inode passes through to a file this handle must not use: retried on a new inode (UnionFuse.Aliases.cs).
            handle.Release();
            Realias(handle.Node);
            return Errno.ESTALE;
        }
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        open.Fh = fh;
        _files[fh] = new OpenFile(handle, kind, kernelId);
        return Errno.None;
    }

    private IoKind ChooseIo(in RequestContext ctx, ulong kernelId, UnionHandle handle, ref OpenOut open)
    {
        var session = Session;
        var io = _io.GetOrAdd(kernelId, _ => new NodeIo());
        bool canPassthrough = session is not null && session.Connection.Passthrough && Passthrough != PassthroughMode.Off;
        bool lower = !handle.BackingBranch.IsWritable;
        // A lower file passes through unless a union watch asks for IN_ACCESS on it: reads the kernel passes
        // through never reach the engine to raise one.
        bool wantPassthrough = canPassthrough && (!lower || (Passthrough != PassthroughMode.Upper && !AccessWatched(handle.Node)));
        lock (io)
        {
            var file = handle.BackingId;
            if (io.PassthroughOpens > 0)
            {
                // The inode is in passthrough mode: the kernel accepts only opens that share its
                // backing file. After a copy-up that file is the lower one, which this handle must not use.
                if (io.File != file) return IoKind.Retry;
                io.PassthroughOpens++;
                open.OpenFlags |= OpenReplyFlags.Passthrough;
                open.BackingId = io.BackingId;
                return IoKind.Passthrough;
            }
            if (wantPassthrough && io.CachedOpens == 0)
            {
                // Registered as the caller: the kernel's passthrough I/O then runs with the caller's
                // filesystem identity, so root-reserved blocks stay root's (the first opener's
                // identity serves every later open of the node while it stays in passthrough mode).
                int id = session!.OpenBacking(handle.BackingFd.Fd, ctx.Uid, ctx.Gid);
                if (id >= 0)
                {
                    io.BackingId = id;
                    io.File = file;
                    io.LowerBacking = !handle.BackingBranch.IsWritable;
                    io.PassthroughOpens = 1;
                    open.OpenFlags |= OpenReplyFlags.Passthrough;
                    open.BackingId = id;
                    return IoKind.Passthrough;
                }
            }
            // Cached I/O through the daemon. Keep the page cache when the file is as it was at the last open.
            io.CachedOpens++;
            if (handle.GetAttr(out var st) == Errno.None)
            {
                var seen = (st.MTime.Sec, st.MTime.Nsec, st.Size);
                if (seen == io.LastSeen) open.OpenFlags |= OpenReplyFlags.KeepCache;
                io.LastSeen = seen;
            }
            return IoKind.Cached;
        }
    }

    private bool AccessWatched(UnionNode node) =>
        _union.WatchesWant(node, Lamina.Watches.InotifyMask.Access) || (node.Parent is { } p && _union.WatchesWant(p, Lamina.Watches.InotifyMask.Access));

    private void ReleaseIo(OpenFile file)
    {
        if (!_io.TryGetValue(file.KernelId, out var io)) return;
        lock (io)
        {
            if (file.Kind == IoKind.Cached)
            {
                io.CachedOpens--;
                if (file.Handle.GetAttr(out var st) == Errno.None) io.LastSeen = (st.MTime.Sec, st.MTime.Nsec, st.Size);
                return;
            }
            if (--io.PassthroughOpens > 0 || io.BackingId < 0) return;
            Session?.CloseBacking(io.BackingId);
            io.BackingId = -1;
        }
    }

    public Errno Read(in RequestContext ctx, ulong nodeId, in ReadIn request, Span<byte> buffer, out int count)
    {
        count = 0;
        return _files.TryGetValue(request.Fh, out var f) ? f.Handle.Read(buffer, (long)request.Offset, out count) : Errno.EBADF;
    }

    public Errno ReadSource(in RequestContext ctx, ulong nodeId, in ReadIn request, out SafeFd? source)
    {
        source = null;
        if (!_files.TryGetValue(request.Fh, out var f)) return Errno.EBADF;
        source = f.Handle.ReadSource();
        return Errno.None;
    }

    public void ReadSourceDone(in RequestContext ctx, ulong nodeId, in ReadIn request, int count)
    {
        if (_files.TryGetValue(request.Fh, out var f)) f.Handle.Spliced(count);
    }

    public Errno Write(in RequestContext ctx, ulong nodeId, in WriteIn request, ReadOnlySpan<byte> data, out uint written)
    {
        written = 0;
        if (!_files.TryGetValue(request.Fh, out var f)) return Errno.EBADF;
        if (MandatoryWrite(in ctx, in request, f.Handle) is var me && me != Errno.None) return me; // locks=mandatory (UnionFuse.Locks.cs)
        // Written as the caller, so the branch filesystem judges the space it takes as the caller's
        // (root-reserved blocks), as it does for passthrough writes.
        var saved = Sys.SwapFsIdentity(ctx.Uid, ctx.Gid);
        try
        {
            var e = f.Handle.Write(data, (long)request.Offset, out int n);
            written = (uint)n;
            return e;
        }
        finally { Sys.SwapFsIdentity(saved.Uid, saved.Gid); }
    }

    public Errno Flush(in RequestContext ctx, ulong nodeId, ulong fh, ulong lockOwner)
    {
        ReleaseLocksOnFlush(nodeId, lockOwner); // locks: a close drops the owner's POSIX locks (UnionFuse.Locks.cs)
        return _files.TryGetValue(fh, out var f) ? f.Handle.Flush() : Errno.EBADF;
    }

    public Errno Release(in RequestContext ctx, ulong nodeId, in ReleaseIn request)
    {
        if (!_files.TryRemove(request.Fh, out var f)) return Errno.EBADF;
        ReleaseIo(f);
        f.Handle.Release();
        return Errno.None;
    }

    public Errno Fsync(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) =>
        _files.TryGetValue(fh, out var f) ? f.Handle.Fsync(dataOnly) : Errno.EBADF;

    public Errno Fallocate(in RequestContext ctx, ulong nodeId, in FallocateIn r) =>
        _files.TryGetValue(r.Fh, out var f) ? f.Handle.Fallocate((int)r.Mode, (long)r.Offset, (long)r.Length) : Errno.EBADF;

    public Errno Lseek(in RequestContext ctx, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        return _files.TryGetValue(fh, out var f) ? f.Handle.Lseek(offset, whence, out result) : Errno.EBADF;
    }

    public Errno StatFs(in RequestContext ctx, ulong nodeId, out KStatFs statfs)
    {
        statfs = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        var e = _union.StatFs(node, out var s);
        if (e != Errno.None) return e;
        statfs = new KStatFs
        {
            Blocks = s.Blocks, BFree = s.BFree, BAvail = s.BAvail, Files = s.Files, FFree = s.FFree,
            BSize = (uint)s.BSize, NameLen = (uint)s.NameLen, FrSize = (uint)s.FrSize,
        };
        return Errno.None;
    }

    public Errno GetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> value, out int size)
    {
        size = 0;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        var e = _union.GetXattr(node, XattrNames.Decode(name), value, out size);
        if (e == Errno.None && _owners is { } map && value.Length > 0 && OwnerMap.IsAclName(name)) map.ShowAcl(value[..size]);
        return e;
    }

    public Errno SetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        if (_owners is { } map && OwnerMap.IsAclName(name))
        {
            var stored = value.ToArray();
            map.StoreAcl(stored);
            return _union.SetXattr(node, XattrNames.Decode(name), stored, flags, CallerOf(ctx));
        }
        return _union.SetXattr(node, XattrNames.Decode(name), value, flags, CallerOf(ctx));
    }

    public Errno ListXattr(in RequestContext ctx, ulong nodeId, Span<byte> list, out int size)
    {
        size = 0;
        var node = Node(nodeId);
        return node is null ? Errno.ESTALE : _union.ListXattr(node, list, out size);
    }

    public Errno RemoveXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name)
    {
        var node = Node(nodeId);
        return node is null ? Errno.ESTALE : _union.RemoveXattr(node, XattrNames.Decode(name), CallerOf(ctx));
    }

    public Errno OpenDir(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        Tracker?.TrackNow(node);
        bool tracked = Tracked(node);
        var e = _union.OpenDir(node, CallerOf(ctx), out var dir);
        if (e != Errno.None) return e;
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        _dirs[fh] = dir!;
        open.Fh = fh;
        // The kernel keeps a tracked directory's listing (the tracker drops it when a branch changes),
        // unless a union watch asks for IN_ACCESS on it: a listing served by the kernel never reaches
        // the engine to raise one.
        if (tracked && !_union.WatchesWant(node, Lamina.Watches.InotifyMask.Access))
            open.OpenFlags |= OpenReplyFlags.CacheDir | OpenReplyFlags.KeepCache;
        return Errno.None;
    }

    [ThreadStatic] private static List<(DirEntry Entry, long Next)>? t_batch;

    /// <summary>Lists from the engine's cookie <paramref name="offset"/>; the engine takes a fresh snapshot at offset 0.</summary>
    public Errno ReadDir(in RequestContext ctx, ulong nodeId, ulong fh, long offset, ref DirEntryBuffer entries)
    {
        if (!_dirs.TryGetValue(fh, out var dir)) return Errno.EBADF;
        bool tracked = Tracked(dir.Node);
        var batch = t_batch ??= new List<(DirEntry, long)>(512);
        while (true)
        {
            batch.Clear();
            // Ask for about as many entries as can fit; what does not fit is asked for again from its cookie.
            int room = entries.IsPlus ? 512 : 4096;
            var e = _union.ReadDir(dir, offset, (entry, next) => { batch.Add((entry, next)); return batch.Count < room; });
            if (e != Errno.None) return e;
            if (batch.Count == 0) return Errno.None;
            foreach (var (entry, next) in batch)
            {
                if (!Add(ref entries, dir, entry, next, tracked)) return Errno.None;
                offset = next;
            }
        }
    }

    private bool Add(ref DirEntryBuffer entries, UnionDirHandle dir, DirEntry entry, long next, bool tracked)
    {
        Span<byte> name = stackalloc byte[Encoding.UTF8.GetByteCount(entry.Name)];
        Encoding.UTF8.GetBytes(entry.Name, name);
        if (!entries.IsPlus) return entries.TryAdd(entry.Ino, next, entry.Type, name);
        if (entry.Name is "." or "..")
        {
            var bare = new EntryOut();
            bare.Attr.Ino = entry.Ino;
            bare.Attr.Mode = (uint)entry.Type << 12;
            return entries.TryAddPlus(bare, next, entry.Type, name);
        }
        if (_union.LookupEntry(dir, entry, out var node, out var st) != Errno.None || node is null)
            return true; // gone since the listing was taken: leave it out
        var e = new EntryOut { NodeId = FuseId(node) };
        e.SetTimeouts(EntryTimeoutIn(tracked), AttrTimeoutIn(tracked));
        e.Attr = Shown(st);
        if (entries.TryAddPlus(e, next, entry.Type, name)) return true;
        _union.Forget(node, 1);
        return false;
    }

    public Errno ReleaseDir(in RequestContext ctx, ulong nodeId, ulong fh)
    {
        if (_dirs.TryRemove(fh, out var dir)) _union.ReleaseDir(dir);
        return Errno.None;
    }

    public Errno FsyncDir(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) => Errno.None;

    public Errno Access(in RequestContext ctx, ulong nodeId, int mask)
    {
        var node = Node(nodeId);
        return node is null ? Errno.ESTALE : _union.Access(node, mask, CallerOf(ctx));
    }

    public void Destroy()
    {
        foreach (var f in _files.Values) f.Handle.Release();
        _files.Clear();
    }
}
