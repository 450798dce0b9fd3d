using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// create, mkdir, mknod, symlink and link. New objects are built in the work dir with the caller's
/// owner and final mode, then renamed into place, so nothing is ever visible with the daemon's
/// identity. Over a whiteout the new object replaces it atomically; a directory made there is opaque.
/// </summary>
public sealed partial class UnionFileSystem
{
    private enum NewKind { File, Directory, Node, Symlink }

    public Errno Create(UnionNode parent, string name, uint mode, uint umask, int openFlags, Caller caller, out UnionNode? node, out UnionHandle? handle) =>
        CreateEntry(parent, name, NewKind.File, ModeBits.S_IFREG | (mode & 0xFFF), umask, 0, null, openFlags, caller, out node, out handle);

    public Errno Mkdir(UnionNode parent, string name, uint mode, uint umask, Caller caller, out UnionNode? node) =>
        CreateEntry(parent, name, NewKind.Directory, ModeBits.S_IFDIR | (mode & 0xFFF), umask, 0, null, 0, caller, out node, out _);

    /// <summary>mknod: <paramref name="mode"/> carries the file type (S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK, S_IFREG).</summary>
    public Errno Mknod(UnionNode parent, string name, uint mode, uint rdev, uint umask, Caller caller, out UnionNode? node)
    {
        uint type = mode & ModeBits.S_IFMT;
        if (type == 0) type = ModeBits.S_IFREG;
        if (type == ModeBits.S_IFDIR || type == ModeBits.S_IFLNK) { node = null; return Errno.EINVAL; }
        if (type == ModeBits.S_IFCHR && rdev == 0) { node = null; return Errno.EPERM; } // would read as a whiteout
        var e = CreateEntry(parent, name, NewKind.Node, type | (mode & 0xFFF), umask, rdev, null, 0, caller, out node, out var h);
        h?.Release();
        return e;
    }

    public Errno Symlink(UnionNode parent, string name, string target, Caller caller, out UnionNode? node) =>
        CreateEntry(parent, name, NewKind.Symlink, ModeBits.S_IFLNK | 0x1FF, 0, 0, target, 0, caller, out node, out _);

    private Errno CreateEntry(UnionNode parent, string name, NewKind kind, uint mode, uint umask, uint rdev, string? target,
        int openFlags, Caller caller, out UnionNode? node, out UnionHandle? handle)
    {
        UnionNode? n = null;
        UnionHandle? h = null;
        var result = Guard(() =>
        {
            var ve = UnionPath.ValidateName(name);
            if (ve != Errno.None) return ve;
            if (Markers.IsMarkerName(name)) return Errno.EINVAL;
            using var scope = Write();
            string? parentPath = _nodes.PathOf(parent);
            if (parentPath is null) return Errno.ESTALE;
            string path = UnionPath.Join(parentPath, name);
            var e = Resolve(path, out var res);
            if (e != Errno.None) return e;
            List<Branch> order;
            Statx parentSt;
            using (res)
            {
                if (res.Exists) return Errno.EEXIST;
                if (res.ParentLayers.Count == 0) return Errno.ENOENT;
                parentSt = res.ParentLayers[0].St;
                var policy = kind == NewKind.Directory ? _options.Policies.Mkdir : _options.Policies.Create;
                order = policy.Order(Candidates(res));
            }
            bool setgidParent = (parentSt.Mode & ModeBits.S_ISGID) != 0;
            uint gid = setgidParent ? parentSt.Gid : caller.Gid;
            uint finalMode = mode & 0xFFF & ~(umask & 0x1FF);
            if (kind == NewKind.Directory && setgidParent) finalMode |= ModeBits.S_ISGID;
            SafeFd? openFd = null;
            e = TryBranches(order, b => CreateIn(b, parentPath, name, kind, mode & ModeBits.S_IFMT, finalMode, rdev, target, caller.Uid, gid, out openFd));
            if (e != Errno.None) return e;
            e = Resolve(path, out res);
            if (e != Errno.None) { openFd?.Dispose(); return e; }
            using (res)
            {
                if (!res.Exists) { openFd?.Dispose(); return Errno.EIO; }
                ulong ino = ComputeIno(res);
                n = _nodes.GetOrAdd(parent, name, ino, res.Top.St.FileType, 1, out _);
                n.BackingBranch = res.Top.Branch;
                NotifyCreated(parent, name, n); // observers
                if (openFd is not null)
                {
                    if ((openFlags & Sys.O_APPEND) != 0) Sys.Fcntl(openFd.Fd, Sys.F_SETFL, Sys.O_APPEND);
                    h = new UnionHandle(this, n, openFd, openFlags, res.Top.Branch);
                    _nodes.AddHandle(n, h);
                }
            }
            return Errno.None;
        });
        node = n;
        handle = h;
        return result;
    }

    private Errno CreateIn(Branch b, string parentPath, string name, NewKind kind, uint type, uint finalMode, uint rdev, string? target,
        uint uid, uint gid, out SafeFd? openFd)
    {
        openFd = null;
        var e = PrepareDirectory(parentPath, b);
        if (e != Errno.None) return e;
        e = Resolve(UnionPath.Join(parentPath, name), out var res);
        if (e != Errno.None) return e;
        using (res)
        {
            if (res.Exists) return Errno.EEXIST;
            var dst = res.ParentLayerIn(b);
            if (dst is null) return Errno.EIO;
            int work = b.WorkFd!.Fd;
            string tmp = b.NextTempName();
            SafeFd? fd = null;
            switch (kind)
            {
                case NewKind.File:
                    e = BranchIo.OpenAt(work, tmp, Sys.O_RDWR | Sys.O_CREAT | Sys.O_EXCL | Sys.O_NOFOLLOW, 0x180, out fd);
                    break;
                case NewKind.Directory:
                    e = Sys.MkdirAt(work, tmp, 0x1C0) == 0 ? Errno.None : Sys.LastErrno;
                    break;
                case NewKind.Node:
                    e = Sys.MknodAt(work, tmp, type | 0x180, rdev) == 0 ? Errno.None : Sys.LastErrno;
                    break;
                case NewKind.Symlink:
                    e = Sys.SymlinkAt(target!, work, tmp) == 0 ? Errno.None : Sys.LastErrno;
                    break;
            }
            if (e == Errno.None) e = SetOwnerAndMode(work, tmp, uid, gid, kind == NewKind.Symlink ? null : finalMode);
            if (e == Errno.None && kind == NewKind.Directory && (res.WhiteoutBranch >= 0 || LowerHasName(res, b.Index)))
                e = SetOpaque(b, work, tmp);
            if (e == Errno.None) e = PlaceNew(b, work, tmp, dst.DirFd!.Fd, name, kind == NewKind.Directory);
            if (kind == NewKind.Directory) ShapeChanged();
            if (e != Errno.None)
            {
                fd?.Dispose();
                BranchIo.RemoveTree(work, tmp);
                return e;
            }
            openFd = fd;
            return Errno.None;
        }
    }

    /// <summary>Gives a freshly built object its owner, then its mode (chown may clear set-id bits).</summary>
    private static Errno SetOwnerAndMode(int dirFd, string name, uint uid, uint gid, uint? mode)
    {
        var e = BranchIo.Chown(dirFd, name, uid, gid);
        if (e == Errno.EPERM && uid == Sys.GetEUid()) e = Errno.None; // unprivileged: it already is ours
        if (e != Errno.None || mode is null) return e;
        e = BranchIo.OpenPath(dirFd, name, out var pfd);
        if (e != Errno.None) return e;
        using (pfd) return BranchIo.ChmodPath(pfd.Fd, mode.Value);
    }

    /// <summary>Marks a directory (by name in <paramref name="dirFd"/>) so lower layers are not merged into it.</summary>
    private Errno SetOpaque(Branch b, int dirFd, string name)
    {
        ShapeChanged();
        var e = BranchIo.OpenPath(dirFd, name, out var pfd);
        if (e != Errno.None) return e;
        using (pfd)
        {
            var xe = BranchIo.SetXattr(pfd.Fd, _markers.Opaque, "y"u8);
            if (UseDeviceWhiteouts) return xe;
        }
        // aufs form, readable without xattr support.
        MarkAufsFormat(b);
        e = BranchIo.OpenAt(dirFd, name, BranchIo.DirPathFlags, 0, out var dir);
        if (e != Errno.None) return e;
        using (dir)
        {
            e = BranchIo.OpenAt(dir.Fd, Markers.AufsOpaque, Sys.O_WRONLY | Sys.O_CREAT | Sys.O_NOFOLLOW, 0x180, out var marker);
            if (e == Errno.None) marker.Dispose();
            return e;
        }
    }

    /// <summary>True when some branch below <paramref name="belowIndex"/> has something visible at the name.</summary>
    private bool LowerHasName(Resolution res, int belowIndex)
    {
        foreach (var pl in res.ParentLayers)
        {
            if (pl.Branch.Index <= belowIndex) continue;
            var e = BranchIo.Stat(pl.DirFd!.Fd, res.Name, out var st);
            if (e == Errno.ENOENT)
            {
                if (pl.Branch.AufsFormat && BranchIo.Stat(pl.DirFd.Fd, Markers.AufsWhiteoutPrefix + res.Name, out _) == Errno.None) return false;
                continue;
            }
            if (e != Errno.None) continue;
            return !IsWhiteout(pl, res.Name, st);
        }
        // Lower layers reached through a redirect of the object itself.
        return res.Layers.Any(l => l.Branch.Index > belowIndex);
    }

    /// <summary>Renames a built object into place, atomically replacing a whiteout of the same name.</summary>
    private Errno PlaceNew(Branch b, int work, string tmp, int dirFd, string name, bool isDir)
    {
        var e = BranchIo.Stat(dirFd, name, out var st);
        if (e == Errno.ENOENT)
        {
            e = BranchIo.Rename(work, tmp, dirFd, name, Sys.RENAME_NOREPLACE);
            if (e == Errno.None) RemoveAufsWhiteout(b, dirFd, name);
            return e;
        }
        if (e != Errno.None) return e;
        if (!BranchIo.IsWhiteoutDevice(st)) return Errno.EEXIST;
        if (!isDir) return BranchIo.Rename(work, tmp, dirFd, name);
        e = BranchIo.Rename(work, tmp, dirFd, name, Sys.RENAME_EXCHANGE);
        if (e == Errno.None) BranchIo.Unlink(work, tmp);
        return e;
    }

    /// <summary>Records at the branch root that it now holds aufs markers, so lookups look for them.</summary>
    private static void MarkAufsFormat(Branch b)
    {
        if (b.AufsFormat) return;
        if (BranchIo.OpenAt(b.RootFd.Fd, Markers.AufsBranchMarker, Sys.O_WRONLY | Sys.O_CREAT | Sys.O_NOFOLLOW, 0x180, out var fd) == Errno.None)
        {
            fd.Dispose();
            b.AufsFormat = true;
        }
    }

    private static void RemoveAufsWhiteout(Branch b, int dirFd, string name)
    {
        if (!b.AufsFormat) return;
        string wh = Markers.AufsWhiteoutPrefix + name;
        if (wh.Length <= 255) Sys.UnlinkAt(dirFd, wh, 0);
    }

    /// <summary>Writes a whiteout for <paramref name="name"/> in <paramref name="dirFd"/> of branch <paramref name="b"/>.</summary>
    private Errno MakeWhiteout(Branch b, int dirFd, string name)
    {
        if (UseDeviceWhiteouts)
        {
            string tmp = b.NextTempName();
            if (Sys.MknodAt(b.WorkFd!.Fd, tmp, ModeBits.S_IFCHR, 0) != 0) return Sys.LastErrno;
            var e = BranchIo.Rename(b.WorkFd.Fd, tmp, dirFd, name);
            if (e != Errno.None) BranchIo.Unlink(b.WorkFd.Fd, tmp);
            return e;
        }
        string wh = Markers.AufsWhiteoutPrefix + name;
        if (System.Text.Encoding.UTF8.GetByteCount(wh) > 255) return Errno.ENAMETOOLONG;
        MarkAufsFormat(b);
        var oe = BranchIo.OpenAt(dirFd, wh, Sys.O_WRONLY | Sys.O_CREAT | Sys.O_NOFOLLOW, 0x180, out var fd);
        if (oe == Errno.None) fd.Dispose();
        return oe;
    }

    /// <summary>Hard link: the source is copied up (once) into the branch that will hold the new name.</summary>
    public Errno Link(UnionNode node, UnionNode newParent, string newName, Caller caller, out UnionNode? newNode)
    {
        UnionNode? n = null;
        var result = Guard(() =>
        {
            var ve = UnionPath.ValidateName(newName);
            if (ve != Errno.None) return ve;
            if (Markers.IsMarkerName(newName)) return Errno.EINVAL;
            using var scope = Write();
            string? srcPath = _nodes.PathOf(node);
            string? parentPath = _nodes.PathOf(newParent);
            if (srcPath is null || parentPath is null || node.IsDetached) return Errno.ESTALE;
            string dstPath = UnionPath.Join(parentPath, newName);
            var e = ResolveNode(node, out var src);
            if (e != Errno.None) return e;
            List<Branch> order;
            using (src)
            {
                e = Resolve(dstPath, out var dst);
                if (e != Errno.None) return e;
                using (dst)
                {
                    if (dst.Exists) return Errno.EEXIST;
                    if (src.Top.IsDir) return Errno.EPERM;
                    var top = src.Top;
                    order = _options.Policies.Create.Order(Candidates(dst)
                        .Where(c => top.InPlaceWritable ? c.Branch == top.Branch : top.IsIndex ? c.Branch == top.Branch : c.Branch.Index < top.Branch.Index)
                        .ToList());
                }
                if (order.Count == 0 && src.Top.InPlaceWritable && !src.Top.Branch.CanCreate)
                    order = [src.Top.Branch];
                if (order.Count == 0) return Errno.EXDEV;
            }
            e = TryBranches(order, b => LinkIn(b, srcPath, parentPath, newName));
            if (e != Errno.None) return e;
            n = _nodes.GetOrAdd(newParent, newName, node.Ino, node.FileType, 1, out _);
            NotifyLinkCount(node); // observers
            NotifyCreated(newParent, newName, n); // observers
            return Errno.None;
        });
        newNode = n;
        return result;
    }

    private Errno LinkIn(Branch b, string srcPath, string parentPath, string newName)
    {
        var e = CopyUpTo(srcPath, b, withData: true);
        if (e != Errno.None) return e;
        e = PrepareDirectory(parentPath, b);
        if (e != Errno.None) return e;
        e = Resolve(srcPath, out var src);
        if (e != Errno.None) return e;
        using (src)
        {
            e = Resolve(UnionPath.Join(parentPath, newName), out var dst);
            if (e != Errno.None) return e;
            using (dst)
            {
                if (dst.Exists) return Errno.EEXIST;
                var dir = dst.ParentLayerIn(b);
                if (dir is null || src.Top.Branch != b) return Errno.EIO;
                string tmp = b.NextTempName();
                if (Sys.LinkAt(src.Top.ParentFd, src.Top.Name, b.WorkFd!.Fd, tmp, 0) != 0) return Sys.LastErrno;
                e = PlaceNew(b, b.WorkFd.Fd, tmp, dir.DirFd!.Fd, newName, isDir: false);
                if (e != Errno.None) BranchIo.Unlink(b.WorkFd.Fd, tmp);
                else MarkImpure(dir.DirFd.Fd);
                return e;
            }
        }
    }
}
