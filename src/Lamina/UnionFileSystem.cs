using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// The union engine. Node-based, thread-safe, errno-returning API for a transport (FUSE), plus a
/// path-based facade (<see cref="Paths"/>) for in-process use. See docs/engine.md.
/// </summary>
/// <remarks>
/// Locking: one reader/writer lock over the namespace. Lookups, getattr, readdir snapshots and xattr
/// reads take it shared; anything that changes a branch (create, remove, rename, copy-up, setattr,
/// setxattr) takes it exclusive. File data I/O on open handles takes no engine lock at all.
/// </remarks>
public sealed partial class UnionFileSystem : IDisposable
{
    private readonly UnionOptions _options;
    private readonly Markers _markers;
    private readonly ReaderWriterLockSlim _ns = new(LockRecursionPolicy.SupportsRecursion);
    private readonly NodeTable _nodes;
    private volatile BranchSet _branches;
    private readonly DirStacks _dirStacks;

    /// <summary>The engine changed the shape of the tree (a directory made, removed, moved or re-marked): cached directory stacks are stale.</summary>
    private void ShapeChanged() => _dirStacks.Invalidate();

    /// <summary>Cached directory stacks (for tests and diagnostics).</summary>
    public int CachedDirectoryCount => _dirStacks.Count;

    private UnionFileSystem(UnionOptions options, BranchSet branches)
    {
        _options = options;
        _markers = new Markers(options.UserXattr);
        _branches = branches;
        _dirStacks = new DirStacks(this)
        {
            Enabled = options.CacheDirectories,
            TrustFor = (long)options.TrustDirectoriesFor.TotalMilliseconds,
        };
        UseDeviceWhiteouts = !options.ForceAufsWhiteouts && CanMakeDeviceWhiteouts();
        using (Resolve("", out var root) == Errno.None ? root : null)
        {
            _nodes = new NodeTable(root is { Exists: true } ? ComputeIno(root) : 1);
        }
        _nodes.Added = NotifyNodeAdded;
        _nodes.Dropped = NotifyNodeDropped;
        Paths = new UnionPaths(this);
    }

    /// <summary>Opens and validates the branches of <paramref name="options"/>. Throws <see cref="UnionConfigException"/>.</summary>
    public static UnionFileSystem Mount(UnionOptions options) => new(options, BranchSet.Open(options));

    /// <summary>Mounts from overlayfs option syntax.</summary>
    public static UnionFileSystem MountOverlay(string overlayOptions) => Mount(OptionParser.ParseOverlay(overlayOptions));

    public UnionOptions Options => _options;
    public IReadOnlyList<Branch> Branches => _branches.Branches;

    /// <summary>True when whiteouts are written as 0/0 character devices (root); otherwise as aufs ".wh." files.</summary>
    public bool UseDeviceWhiteouts { get; }

    /// <summary>The path-based in-process API.</summary>
    public UnionPaths Paths { get; }

    public UnionNode Root => _nodes.Root;

    /// <summary>Live node count (for tests and diagnostics).</summary>
    public int NodeCount => _nodes.Count;

    private bool CanMakeDeviceWhiteouts()
    {
        var b = _branches.Branches.FirstOrDefault(x => x.WorkFd is not null);
        if (b is null) return Sys.GetEUid() == 0;
        string tmp = b.NextTempName();
        if (Sys.MknodAt(b.WorkFd!.Fd, tmp, ModeBits.S_IFCHR, 0) != 0) return false;
        Sys.UnlinkAt(b.WorkFd.Fd, tmp, 0);
        return true;
    }

    // ---- locking helpers -------------------------------------------------------------------

    private ReadScope Read() { _ns.EnterReadLock(); return new ReadScope(_ns); }
    private WriteScope Write() { _ns.EnterWriteLock(); return new WriteScope(_ns); }

    private readonly struct ReadScope(ReaderWriterLockSlim l) : IDisposable { public void Dispose() => l.ExitReadLock(); }
    private readonly struct WriteScope(ReaderWriterLockSlim l) : IDisposable { public void Dispose() => l.ExitWriteLock(); }

    /// <summary>Raised for an unexpected exception inside an operation (a bug); the caller got EIO.</summary>
    public static event Action<Exception>? InternalError;

    /// <summary>Turns exceptions into errno at the API boundary, so a transport only ever sees errno and never dies of one call.</summary>
    private static Errno Guard(Func<Errno> op)
    {
        try { return op(); }
        catch (ErrnoException ex) { return ex.Errno; }
        catch (OutOfMemoryException) { return Errno.ENOMEM; }
        catch (IOException) { return Errno.EIO; }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            InternalError?.Invoke(ex);
            return Errno.EIO;
        }
    }

    // ---- nodes -----------------------------------------------------------------------------

    public UnionNode? FindNode(ulong nodeId) => _nodes.Find(nodeId);

    /// <summary>Resolves a node's current path and checks that it still names the same object.</summary>
    internal Errno ResolveNode(UnionNode node, out Resolution res)
    {
        res = null!;
        string? path = _nodes.PathOf(node);
        if (path is null || node.IsDetached) return Errno.ESTALE;
        var e = Resolve(path, out res);
        if (e != Errno.None) return e == Errno.ENOENT ? Errno.ESTALE : e;
        if (!res.Exists) { res.Dispose(); return Errno.ESTALE; }
        if (node != _nodes.Root && ComputeIno(res) != node.Ino)
        {
            res.Dispose();
            NotifyBranchChanged(new BranchChange(node.Parent, node.Name, node, "object replaced in a branch"));
            return Errno.ESTALE;
        }
        NoteBacking(node, res);
        return Errno.None;
    }

    private void NoteBacking(UnionNode node, Resolution res)
    {
        var b = res.Top.Branch;
        var old = node.BackingBranch;
        node.BackingBranch = b;
        if (old is not null && old != b && !_copyUpInProgress)
            NotifyBranchChanged(new BranchChange(node.Parent, node.Name, node, "backing branch changed"));
    }

    [ThreadStatic] private static bool _copyUpInProgress;

    /// <summary>Finds <paramref name="name"/> in <paramref name="parent"/>; the node's lookup count grows by one.</summary>
    public Errno Lookup(UnionNode parent, string name, out UnionNode? node) => Lookup(parent, name, out node, out _);

    /// <summary>Finds <paramref name="name"/> in <paramref name="parent"/> with its attributes (st_ino is the union inode).</summary>
    public Errno Lookup(UnionNode parent, string name, out UnionNode? node, out Statx st)
    {
        UnionNode? found = null;
        Statx attrs = default;
        var result = Guard(() =>
        {
            if (name is "." or "..")
            {
                var n = name == "." ? parent : parent.Parent ?? parent;
                var ge = GetAttr(n, out attrs);
                if (ge != Errno.None) return ge;
                _nodes.AddRef(n, 1);
                found = n;
                return Errno.None;
            }
            var ve = UnionPath.ValidateName(name);
            if (ve != Errno.None) return ve == Errno.EINVAL ? Errno.ENOENT : ve;
            using var scope = Read();
            return LookupLocked(parent, name, 1, out found, out attrs);
        });
        node = found;
        st = attrs;
        return result;
    }

    private Errno LookupLocked(UnionNode parent, string name, long lookups, out UnionNode? node, out Statx st)
    {
        node = null;
        st = default;
        if (!parent.IsDirectory) return Errno.ENOTDIR;
        string? parentPath = _nodes.PathOf(parent);
        if (parentPath is null) return Errno.ESTALE;
        var e = Resolve(UnionPath.Join(parentPath, name), out var res);
        if (e != Errno.None) return e;
        using (res)
        {
            if (!res.Exists) return Errno.ENOENT;
            ulong ino = ComputeIno(res);
            var existing = _nodes.FindByIno(ino);
            node = _nodes.GetOrAdd(parent, name, ino, res.Top.St.FileType, lookups, out bool moved);
            if (moved && existing is not null && existing.IsDirectory)
                NotifyBranchChanged(new BranchChange(parent, name, node, "directory moved in a branch"));
            NoteBacking(node, res);
            st = res.Top.St;
            st.Ino = ino;
            if (res.Top.IsMetacopy) st.Blocks = res.Data.St.Blocks;
            return Errno.None;
        }
    }

    /// <summary>Drops <paramref name="count"/> lookups of a node (FUSE FORGET).</summary>
    public void Forget(UnionNode node, ulong count) => _nodes.Forget(node, (long)Math.Min(count, long.MaxValue));

    public void Forget(ulong nodeId, ulong count)
    {
        var n = _nodes.Find(nodeId);
        if (n is not null) Forget(n, count);
    }

    /// <summary>Attributes of a node; st_ino is the union inode.</summary>
    public Errno GetAttr(UnionNode node, out Statx st)
    {
        Statx result = default;
        var e = Guard(() =>
        {
            using var scope = Read();
            var re = ResolveNode(node, out var res);
            if (re != Errno.None)
            {
                // An unlinked object stays reachable through its open handles.
                var h = _nodes.HandlesOf(node).FirstOrDefault();
                if (h is null) return re;
                return h.GetAttr(out result);
            }
            using (res)
            {
                result = res.Top.St;
                result.Ino = node.Ino;
                if (res.Top.IsMetacopy) result.Blocks = res.Data.St.Blocks;
                return Errno.None;
            }
        });
        st = result;
        return e;
    }

    public Errno ReadLink(UnionNode node, out string target)
    {
        string value = "";
        var e = Guard(() =>
        {
            using var scope = Read();
            var re = ResolveNode(node, out var res);
            if (re != Errno.None) return re;
            using (res)
            {
                if (!res.Top.St.IsSymlink) return Errno.EINVAL;
                var v = Sys.ReadLink(res.Top.ParentFd, res.Top.Name);
                if (v is null) return Sys.LastErrno;
                value = v;
                return Errno.None;
            }
        });
        target = value;
        return e;
    }

    /// <summary>access(2) check against the union attributes (F_OK=0, X=1, W=2, R=4).</summary>
    public Errno Access(UnionNode node, int mask, Caller caller)
    {
        var e = GetAttr(node, out var st);
        if (e != Errno.None || mask == 0) return e;
        if ((mask & 2) != 0 && _branches.Branches.All(b => !b.IsWritable)) return Errno.EROFS;
        if (caller.Uid == 0)
        {
            if ((mask & 1) != 0 && !st.IsDirectory && (st.Mode & 0x49) == 0) return Errno.EACCES;
            return Errno.None;
        }
        int shift = caller.Uid == st.Uid ? 6 : (caller.Gid == st.Gid || (caller.Groups?.Contains(st.Gid) ?? false)) ? 3 : 0;
        int granted = (st.Mode >> shift) & 7;
        return (granted & mask) == mask ? Errno.None : Errno.EACCES;
    }

    public void Dispose()
    {
        foreach (var o in Observers) o.Unmounting(); // observers: IN_UNMOUNT
        foreach (var b in _branches.Branches) b.Dispose();
        _ns.Dispose();
    }
}
