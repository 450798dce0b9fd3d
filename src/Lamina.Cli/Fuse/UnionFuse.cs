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
/// Passthrough: all opens of one inode must share one backing file while any is open. A node's
/// backing file changes at copy-up, so an open after copy-up of a node whose lower file is still
/// open with passthrough is served through the daemon (FOPEN_DIRECT_IO) instead.
/// </summary>
public sealed class UnionFuse : IFuseFileSystem
{
    private readonly UnionFileSystem _union;
    private readonly ConcurrentDictionary<ulong, UnionHandle> _files = new();
    private readonly ConcurrentDictionary<ulong, UnionDirHandle> _dirs = new();
    private readonly ConcurrentDictionary<ulong, Backing> _backings = new();
    private long _nextFh;
    private long _copyUps;
    private readonly TimeSpan _entryTimeout, _attrTimeout;

    private sealed class Backing
    {
        public int Id = -1;
        public (ulong Dev, ulong Ino) File;
        public int Opens;
    }

    public UnionFuse(UnionFileSystem union, TimeSpan entryTimeout, TimeSpan attrTimeout)
    {
        _union = union;
        _union.NodeBackingChanged += _ => Interlocked.Increment(ref _copyUps);
        _entryTimeout = entryTimeout;
        _attrTimeout = attrTimeout;
    }

    public FuseSession? Session { get; set; }
    public bool UsePassthrough { get; set; } = true;

    /// <summary>Objects whose backing file moved to a writable branch since the mount.</summary>
    public long CopyUps => Interlocked.Read(ref _copyUps);

    /// <summary>Open files and directories right now.</summary>
    public int OpenFiles => _files.Count;
    public int OpenDirectories => _dirs.Count;

    private ulong RootId => _union.Root.NodeId;

    private UnionNode? Node(ulong fuseId) => fuseId == FuseConstants.RootId ? _union.Root : _union.FindNode(fuseId);

    private ulong FuseId(UnionNode n) => n.NodeId == RootId ? FuseConstants.RootId : n.NodeId;

    private static string Str(ReadOnlySpan<byte> s) => Encoding.UTF8.GetString(s);

    private static Caller CallerOf(in RequestContext ctx) => new(ctx.Uid, ctx.Gid, (int)ctx.Pid, ctx.SupplementaryGroups);

    internal static void ToAttr(in Statx st, out FuseAttr a)
    {
        a = new FuseAttr
        {
            Ino = st.Ino, Size = st.Size, Blocks = st.Blocks, Mode = st.Mode, NLink = st.NLink,
            Uid = st.Uid, Gid = st.Gid, RDev = st.RDev, BlkSize = st.BlkSize == 0 ? 4096 : st.BlkSize,
            ATime = (ulong)st.ATime.Sec, ATimeNsec = st.ATime.Nsec,
            MTime = (ulong)st.MTime.Sec, MTimeNsec = st.MTime.Nsec,
            CTime = (ulong)st.CTime.Sec, CTimeNsec = st.CTime.Nsec,
        };
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
        entry.NodeId = FuseId(node);
        entry.SetTimeouts(_entryTimeout, _attrTimeout);
        ToAttr(st, out entry.Attr);
        return Errno.None;
    }

    public Errno Lookup(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, out EntryOut entry)
    {
        entry = default;
        var p = Node(parent);
        if (p is null) return Errno.ESTALE;
        var e = _union.Lookup(p, Str(name), out var node);
        if (e != Errno.None) return e;
        return Entry(node!, out entry);
    }

    public void Forget(ulong nodeId, ulong nlookup)
    {
        if (nodeId == FuseConstants.RootId) return;
        _union.Forget(nodeId, nlookup);
    }

    public Errno GetAttr(in RequestContext ctx, ulong nodeId, ulong? fh, out AttrOut attr)
    {
        attr = default;
        Statx st;
        Errno e;
        if (fh is ulong h && _files.TryGetValue(h, out var handle)) e = handle.GetAttr(out st);
        else
        {
            var node = Node(nodeId);
            if (node is null) return Errno.ESTALE;
            e = _union.GetAttr(node, out st);
        }
        if (e != Errno.None) return e;
        attr.SetTimeout(_attrTimeout);
        ToAttr(st, out attr.Attr);
        return Errno.None;
    }

    public Errno SetAttr(in RequestContext ctx, ulong nodeId, in SetAttrIn c, out AttrOut attr)
    {
        attr = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        UnionHandle? handle = (c.Valid & SetAttrValid.Fh) != 0 ? _files.GetValueOrDefault(c.Fh) : null;
        var request = new SetAttrRequest
        {
            Mode = (c.Valid & SetAttrValid.Mode) != 0 ? c.Mode : null,
            Uid = (c.Valid & SetAttrValid.Uid) != 0 ? c.Uid : null,
            Gid = (c.Valid & SetAttrValid.Gid) != 0 ? c.Gid : null,
            Size = (c.Valid & SetAttrValid.Size) != 0 ? (long)c.Size : null,
            ATime = (c.Valid & SetAttrValid.ATime) != 0 ? new StatxTimestamp((long)c.ATime, c.ATimeNsec) : null,
            MTime = (c.Valid & SetAttrValid.MTime) != 0 ? new StatxTimestamp((long)c.MTime, c.MTimeNsec) : null,
            ATimeNow = (c.Valid & SetAttrValid.ATimeNow) != 0,
            MTimeNow = (c.Valid & SetAttrValid.MTimeNow) != 0,
        };
        var e = _union.SetAttr(node, handle, request, CallerOf(ctx), out var st);
        if (e != Errno.None) return e;
        attr.SetTimeout(_attrTimeout);
        ToAttr(st, out attr.Attr);
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
        var e = _union.Open(node, flags, CallerOf(ctx), out var handle);
        if (e != Errno.None) return e;
        Publish(handle!, ref open);
        return Errno.None;
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
        Publish(handle!, ref open);
        return Errno.None;
    }

    private void Publish(UnionHandle handle, ref OpenOut open)
    {
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        _files[fh] = handle;
        open.Fh = fh;
        AttachBacking(handle, ref open);
    }

    private void AttachBacking(UnionHandle handle, ref OpenOut open)
    {
        var session = Session;
        if (!UsePassthrough || session is null || !session.Connection.Passthrough) return;
        var backing = _backings.GetOrAdd(handle.Node.NodeId, _ => new Backing());
        lock (backing)
        {
            var file = handle.BackingId;
            if (backing.Opens > 0 && backing.Id >= 0 && backing.File != file)
            {
                // The node was copied up while its lower file is open with passthrough: the kernel
                // allows one backing file per inode, so this open goes through the daemon.
                open.OpenFlags |= OpenReplyFlags.DirectIo;
                return;
            }
            if (backing.Id < 0)
            {
                int id = session.OpenBacking(handle.BackingFd.Fd);
                if (id < 0) return;
                backing.Id = id;
                backing.File = file;
            }
            backing.Opens++;
            open.OpenFlags |= OpenReplyFlags.Passthrough;
            open.BackingId = backing.Id;
        }
    }

    private void DetachBacking(UnionHandle handle, bool wasPassthrough)
    {
        if (!wasPassthrough || !_backings.TryGetValue(handle.Node.NodeId, out var backing)) return;
        lock (backing)
        {
            if (--backing.Opens > 0 || backing.Id < 0) return;
            Session?.CloseBacking(backing.Id);
            backing.Id = -1;
        }
    }

    public Errno Read(in RequestContext ctx, ulong nodeId, in ReadIn request, Span<byte> buffer, out int count)
    {
        count = 0;
        return _files.TryGetValue(request.Fh, out var h) ? h.Read(buffer, (long)request.Offset, out count) : Errno.EBADF;
    }

    public Errno Write(in RequestContext ctx, ulong nodeId, in WriteIn request, ReadOnlySpan<byte> data, out uint written)
    {
        written = 0;
        if (!_files.TryGetValue(request.Fh, out var h)) return Errno.EBADF;
        var e = h.Write(data, (long)request.Offset, out int n);
        written = (uint)n;
        return e;
    }

    public Errno Flush(in RequestContext ctx, ulong nodeId, ulong fh, ulong lockOwner) =>
        _files.TryGetValue(fh, out var h) ? h.Flush() : Errno.EBADF;

    public Errno Release(in RequestContext ctx, ulong nodeId, in ReleaseIn request)
    {
        if (!_files.TryRemove(request.Fh, out var h)) return Errno.EBADF;
        bool passthrough = _backings.TryGetValue(h.Node.NodeId, out var b) && b.Id >= 0 && b.File == h.BackingId;
        h.Release();
        DetachBacking(h, passthrough);
        return Errno.None;
    }

    public Errno Fsync(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) =>
        _files.TryGetValue(fh, out var h) ? h.Fsync(dataOnly) : Errno.EBADF;

    public Errno Fallocate(in RequestContext ctx, ulong nodeId, in FallocateIn r) =>
        _files.TryGetValue(r.Fh, out var h) ? h.Fallocate((int)r.Mode, (long)r.Offset, (long)r.Length) : Errno.EBADF;

    public Errno Lseek(in RequestContext ctx, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        return _files.TryGetValue(fh, out var h) ? h.Lseek(offset, whence, out result) : Errno.EBADF;
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
        return node is null ? Errno.ESTALE : _union.GetXattr(node, Str(name), value, out size);
    }

    public Errno SetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        var node = Node(nodeId);
        return node is null ? Errno.ESTALE : _union.SetXattr(node, Str(name), value, flags, CallerOf(ctx));
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
        return node is null ? Errno.ESTALE : _union.RemoveXattr(node, Str(name), CallerOf(ctx));
    }

    public Errno OpenDir(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        var e = _union.OpenDir(node, CallerOf(ctx), out var dir);
        if (e != Errno.None) return e;
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        _dirs[fh] = dir!;
        open.Fh = fh;
        return Errno.None;
    }

    [ThreadStatic] private static List<(DirEntry Entry, long Next)>? t_batch;

    /// <summary>
    /// The engine lists names only; "." and ".." are added here as cookies 1 and 2, and the
    /// engine's own cookies are shifted by 2.
    /// </summary>
    public Errno ReadDir(in RequestContext ctx, ulong nodeId, ulong fh, long offset, ref DirEntryBuffer entries)
    {
        if (!_dirs.TryGetValue(fh, out var dir)) return Errno.EBADF;
        const long DotEntries = 2;
        if (offset < 1 && !Add(ref entries, dir, new DirEntry(".", Sys.DT_DIR, dir.Node.Ino), 1)) return Errno.None;
        if (offset < 2 && !Add(ref entries, dir, new DirEntry("..", Sys.DT_DIR, (dir.Node.Parent ?? dir.Node).Ino), 2)) return Errno.None;
        long engineOffset = Math.Max(0, offset - DotEntries);
        var batch = t_batch ??= new List<(DirEntry, long)>(512);
        while (true)
        {
            batch.Clear();
            // Ask for about as many entries as can fit; what does not fit is asked for again from its cookie.
            int room = entries.IsPlus ? 512 : 4096;
            var e = _union.ReadDir(dir, engineOffset, (entry, next) => { batch.Add((entry, next)); return batch.Count < room; });
            if (e != Errno.None) return e;
            if (batch.Count == 0) return Errno.None;
            foreach (var (entry, next) in batch)
            {
                if (!Add(ref entries, dir, entry, next + DotEntries)) return Errno.None;
                engineOffset = next;
            }
        }
    }

    private bool Add(ref DirEntryBuffer entries, UnionDirHandle dir, DirEntry entry, long next)
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
        e.SetTimeouts(_entryTimeout, _attrTimeout);
        ToAttr(st, out e.Attr);
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
        foreach (var h in _files.Values) h.Release();
        _files.Clear();
    }
}
