using Lamina.Native;

namespace Lamina;

/// <summary>Attribute changes for <see cref="UnionFileSystem.SetAttr"/>; null fields are left alone.</summary>
public sealed record SetAttrRequest
{
    public uint? Mode { get; init; }
    public uint? Uid { get; init; }
    public uint? Gid { get; init; }
    public long? Size { get; init; }
    public StatxTimestamp? ATime { get; init; }
    public StatxTimestamp? MTime { get; init; }
    public bool ATimeNow { get; init; }
    public bool MTimeNow { get; init; }
}

public sealed partial class UnionFileSystem
{
    /// <summary>
    /// Opens a node's file. Opening for writing (or with O_TRUNC) copies a lower file up first;
    /// with O_TRUNC the data is not copied at all.
    /// </summary>
    public Errno Open(UnionNode node, int openFlags, Caller caller, out UnionHandle? handle)
    {
        UnionHandle? h = null;
        var e = Guard(() =>
        {
            bool write = (openFlags & Sys.O_ACCMODE) != Sys.O_RDONLY || (openFlags & Sys.O_TRUNC) != 0;
            if (write)
            {
                using var scope = Write();
                return OpenLocked(node, openFlags, write, out h);
            }
            using (Read()) return OpenLocked(node, openFlags, write, out h);
        });
        handle = h;
        return e;
    }

    private Errno OpenLocked(UnionNode node, int openFlags, bool write, out UnionHandle? handle)
    {
        handle = null;
        var e = ResolveNode(node, out var res);
        if (e != Errno.None) return e;
        string path = _nodes.PathOf(node)!;
        if (write && (!res.Top.InPlaceWritable || res.Top.IsMetacopy))
        {
            if (res.Top.IsDir) { res.Dispose(); return Errno.EISDIR; }
            res.Dispose();
            e = EnsureWritable(path, withData: (openFlags & Sys.O_TRUNC) == 0, out res);
            if (e != Errno.None) return e;
        }
        using (res)
        {
            // A metadata-only copy is read from the lower file holding its data.
            var top = write ? res.Top : res.Data;
            if (top.IsDir && (openFlags & Sys.O_ACCMODE) != Sys.O_RDONLY) return Errno.EISDIR;
            int flags = (openFlags & ~(Sys.O_CREAT | Sys.O_EXCL | Sys.O_NOCTTY)) | Sys.O_NOFOLLOW;
            e = BranchIo.OpenAt(top.ParentFd, top.Name, flags, 0, out var fd);
            if (e != Errno.None) return e;
            handle = new UnionHandle(this, node, fd, openFlags, top.Branch);
            _nodes.AddHandle(node, handle);
            return Errno.None;
        }
    }

    internal void ReleaseHandle(UnionHandle h)
    {
        _nodes.RemoveHandle(h.Node, h);
        NotifyReleased(h); // observers: locks taken through this open file go with it
    }

    private static unsafe Errno SetAttrThroughHandle(UnionHandle handle, SetAttrRequest request, out Statx st)
    {
        st = default;
        var fd = handle.BackingFd;
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            if (request.Size is { } size && Sys.FTruncate(fd.Fd, size) != 0) return Sys.LastErrno;
            if ((request.Uid is not null || request.Gid is not null) && Sys.FChown(fd.Fd, request.Uid ?? uint.MaxValue, request.Gid ?? uint.MaxValue) != 0) return Sys.LastErrno;
            if (request.Mode is { } mode && Sys.FChmod(fd.Fd, mode & 0xFFF) != 0) return Sys.LastErrno;
            if (request.ATime is not null || request.MTime is not null || request.ATimeNow || request.MTimeNow)
            {
                var omit = new Sys.Timespec(0, Sys.UTIME_OMIT);
                var now = new Sys.Timespec(0, Sys.UTIME_NOW);
                var times = stackalloc Sys.Timespec[2];
                times[0] = request.ATimeNow ? now : request.ATime is { } at ? BranchIo.ToTimespec(at) : omit;
                times[1] = request.MTimeNow ? now : request.MTime is { } mt ? BranchIo.ToTimespec(mt) : omit;
                if (Sys.FUtimens(fd.Fd, times) != 0) return Sys.LastErrno;
            }
        }
        finally { if (added) fd.DangerousRelease(); }
        return handle.GetAttr(out st);
    }

    /// <summary>chmod/chown/truncate/utimens on a node, copying it up first. <paramref name="handle"/> (optional) is used for truncation.</summary>
    public Errno SetAttr(UnionNode node, UnionHandle? handle, SetAttrRequest request, Caller caller, out Statx st)
    {
        Statx result = default;
        var e = Guard(() =>
        {
            using var scope = Write();
            var re = ResolveNode(node, out var res);
            if (re != Errno.None)
            {
                // An unlinked but open file (ftruncate/fchmod after unlink) is changed through its handle.
                var open = handle ?? _nodes.HandlesOf(node).FirstOrDefault();
                return open is null ? re : SetAttrThroughHandle(open, request, out result);
            }
            string path = _nodes.PathOf(node)!;
            res.Dispose();
            re = EnsureWritable(path, withData: request.Size != 0, out res, metadataOnly: request.Size is null);
            if (re != Errno.None) return re;
            using (res)
            {
                var top = res.Top;
                if (request.Size is { } size)
                {
                    if (top.IsDir) return Errno.EISDIR;
                    if (handle is not null && (handle.Flags & Sys.O_ACCMODE) != Sys.O_RDONLY)
                        re = handle.Truncate(size);
                    else
                    {
                        re = BranchIo.OpenAt(top.ParentFd, top.Name, Sys.O_WRONLY | Sys.O_NOFOLLOW | Sys.O_NONBLOCK, 0, out var wfd);
                        if (re == Errno.None)
                            using (wfd) re = Sys.FTruncate(wfd.Fd, size) == 0 ? Errno.None : Sys.LastErrno;
                    }
                    if (re != Errno.None) return re;
                }
                if (request.Uid is not null || request.Gid is not null)
                {
                    re = BranchIo.Chown(top.ParentFd, top.Name, request.Uid ?? uint.MaxValue, request.Gid ?? uint.MaxValue);
                    if (re != Errno.None) return re;
                }
                if (request.Mode is { } mode)
                {
                    if (top.St.IsSymlink) return Errno.EOPNOTSUPP;
                    re = BranchIo.OpenPath(top.ParentFd, top.Name, out var pfd);
                    if (re != Errno.None) return re;
                    using (pfd) re = BranchIo.ChmodPath(pfd.Fd, mode);
                    if (re != Errno.None) return re;
                }
                if (request.ATime is not null || request.MTime is not null || request.ATimeNow || request.MTimeNow)
                {
                    var omit = new Sys.Timespec(0, Sys.UTIME_OMIT);
                    var now = new Sys.Timespec(0, Sys.UTIME_NOW);
                    var a = request.ATimeNow ? now : request.ATime is { } at ? BranchIo.ToTimespec(at) : omit;
                    var m = request.MTimeNow ? now : request.MTime is { } mt ? BranchIo.ToTimespec(mt) : omit;
                    re = BranchIo.SetTimes(top.ParentFd, top.Name, a, m);
                    if (re != Errno.None) return re;
                }
                if (top.IsDir) ShapeChanged(); // cached stacks carry the directory's mode and owner
                if (BranchIo.Stat(top.ParentFd, top.Name, out result) != Errno.None) return Sys.LastErrno;
                result.Ino = node.Ino;
                NotifyObject(node, SetAttrEvents(request)); // observers
                return Errno.None;
            }
        });
        st = result;
        return e;
    }
}
