using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// rename, including lower directories, without EXDEV: the source is copied up (a directory alone,
/// not its contents), a moved directory that has lower layers gets a redirect to where they are
/// (overlayfs redirect_dir=on), a moved pure-upper directory landing over lower content is made
/// opaque, and the old name becomes a whiteout when a lower layer still has it (RENAME_WHITEOUT).
/// RENAME_NOREPLACE and RENAME_EXCHANGE are honoured; a caller's RENAME_WHITEOUT is a plain rename
/// in the union's view (the left-behind whiteout is, by definition, invisible).
/// </summary>
public sealed partial class UnionFileSystem
{
    public Errno Rename(UnionNode parent, string name, UnionNode newParent, string newName, uint flags, Caller caller) => Guard(() =>
    {
        const uint known = Sys.RENAME_NOREPLACE | Sys.RENAME_EXCHANGE | Sys.RENAME_WHITEOUT;
        if ((flags & ~known) != 0) return Errno.EINVAL;
        bool exchange = (flags & Sys.RENAME_EXCHANGE) != 0;
        bool noReplace = (flags & Sys.RENAME_NOREPLACE) != 0;
        if (exchange && (flags & (Sys.RENAME_NOREPLACE | Sys.RENAME_WHITEOUT)) != 0) return Errno.EINVAL;
        foreach (var n in new[] { name, newName })
        {
            var ve = UnionPath.ValidateName(n);
            if (ve != Errno.None) return ve == Errno.EINVAL ? Errno.ENOENT : ve;
        }
        if (Markers.IsMarkerName(newName)) return Errno.EINVAL;

        using var scope = Write();
        string? srcParent = _nodes.PathOf(parent), dstParent = _nodes.PathOf(newParent);
        if (srcParent is null || dstParent is null) return Errno.ESTALE;
        string srcPath = UnionPath.Join(srcParent, name), dstPath = UnionPath.Join(dstParent, newName);

        // Checks in the order the kernel's renameat2 makes them, so errors match a plain filesystem.
        var e = Resolve(srcPath, out var src);
        if (e != Errno.None) return e;
        Branch? target;
        ulong srcIno, dstIno = 0;
        bool dstExists;
        using (src)
        {
            e = Resolve(dstPath, out var dst);
            if (e != Errno.None) return e;
            using (dst)
            {
                if (!src.Exists) return Errno.ENOENT;
                dstExists = dst.Exists;
                if (noReplace && dstExists) return Errno.EEXIST;
                if (exchange && !dstExists) return Errno.ENOENT;
                if (dstPath.StartsWith(srcPath + "/", StringComparison.Ordinal)) return Errno.EINVAL;
                if (srcPath.StartsWith(dstPath + "/", StringComparison.Ordinal)) return exchange ? Errno.EINVAL : Errno.ENOTEMPTY;
                if (srcPath == dstPath) return Errno.None;
                srcIno = ComputeIno(src);
                if (dstExists)
                {
                    dstIno = ComputeIno(dst);
                    if (dstIno == srcIno) return Errno.None; // two names of one file
                    if (!exchange)
                    {
                        if (src.Top.IsDir && !dst.Top.IsDir) return Errno.ENOTDIR;
                        if (!src.Top.IsDir && dst.Top.IsDir) return Errno.EISDIR;
                        if (dst.Top.IsDir)
                        {
                            e = ReadMerged(dst, out var entries);
                            if (e != Errno.None) return e;
                            if (entries.Count > 0) return Errno.ENOTEMPTY;
                        }
                    }
                }
                if (src.Top.IsDir && src.Layers.Count > 1 && _options.RedirectDir != RedirectDirMode.On && src.Top.Redirect is null)
                    return Errno.EXDEV; // like overlayfs without redirect_dir=on
                target = ChooseRenameBranch(src, dst, exchange);
                if (target is null) return Errno.EXDEV;
            }
        }

        e = RenameIn(target, srcPath, dstPath, exchange);
        ShapeChanged();
        if (e != Errno.None) return e;

        var srcNode = _nodes.FindByIno(srcIno);
        var dstNode = dstExists ? _nodes.FindByIno(dstIno) : null;
        if (exchange)
        {
            if (srcNode is not null) _nodes.Move(srcNode, newParent, newName);
            if (dstNode is not null) _nodes.Move(dstNode, parent, name);
        }
        else
        {
            if (dstNode is not null && dstNode != srcNode) _nodes.Detach(dstNode);
            if (srcNode is not null) _nodes.Move(srcNode, newParent, newName);
        }
        NotifyRenamed(parent, name, newParent, newName, srcNode, dstNode, exchange); // observers
        return Errno.None;
    });

    /// <summary>The writable branch where both names can live: the source's own when possible, else one above it.</summary>
    private Branch? ChooseRenameBranch(Resolution src, Resolution dst, bool exchange)
    {
        int limit = src.Top.InPlaceWritable ? src.Top.Branch.Index + 1 : src.Top.Branch.Index;
        if (dst.Exists) limit = Math.Min(limit, dst.Top.InPlaceWritable ? dst.Top.Branch.Index + 1 : dst.Top.Branch.Index);
        var forDst = Candidates(dst, limit).Select(c => c.Branch).ToList();
        if (src.Top.InPlaceWritable && forDst.Contains(src.Top.Branch)) return src.Top.Branch;
        if (dst.Exists && dst.Top.InPlaceWritable && forDst.Contains(dst.Top.Branch)) return dst.Top.Branch;
        var srcOk = Candidates(src, limit).Select(c => c.Branch).ToHashSet();
        // A writable branch holding the source in place (NC) may also serve when the destination fits there.
        if (src.Top.InPlaceWritable) srcOk.Add(src.Top.Branch);
        return _options.Policies.CopyUp.Order(Candidates(dst, limit).Where(c => srcOk.Contains(c.Branch)).ToList()).FirstOrDefault();
    }

    private Errno RenameIn(Branch b, string srcPath, string dstPath, bool exchange)
    {
        var e = CopyUpTo(srcPath, b, withData: true);
        if (e != Errno.None) return e;
        if (exchange)
        {
            e = CopyUpTo(dstPath, b, withData: true);
            if (e != Errno.None) return e;
        }
        e = PrepareDirectory(UnionPath.Parent(dstPath), b);
        if (e != Errno.None) return e;

        e = Resolve(srcPath, out var src);
        if (e != Errno.None) return e;
        using (src)
        {
            e = Resolve(dstPath, out var dst);
            if (e != Errno.None) return e;
            using (dst)
            {
                if (!src.Exists || src.Top.Branch != b || src.Top.IsIndex) return Errno.EIO;
                var dstDir = dst.ParentLayerIn(b);
                if (dstDir is null) return Errno.EIO;
                int srcDirFd = src.Top.ParentFd, dstDirFd = dstDir.DirFd!.Fd;

                PinIdentity(src);
                if (exchange && dst.Exists) PinIdentity(dst);
                if (src.Top.IsDir)
                {
                    e = PrepareMovedDirectory(src, dst, b);
                    if (e != Errno.None) return e;
                }
                if (exchange)
                {
                    if (!dst.Exists || dst.Top.Branch != b) return Errno.EIO;
                    if (dst.Top.IsDir)
                    {
                        e = PrepareMovedDirectory(dst, src, b);
                        if (e != Errno.None) return e;
                    }
                    e = BranchIo.Rename(srcDirFd, src.Name, dstDirFd, dst.Name, Sys.RENAME_EXCHANGE);
                    if (e == Errno.None) { MarkImpure(dstDirFd); MarkImpure(src.ParentLayerIn(b)!.DirFd!.Fd); }
                    return e;
                }

                bool whiteoutSource = LowerHasName(src, b.Index);
                bool deviceWhiteout = whiteoutSource && UseDeviceWhiteouts;
                e = BranchIo.Stat(dstDirFd, dst.Name, out var existing);
                if (e == Errno.ENOENT)
                {
                    e = BranchIo.Rename(srcDirFd, src.Name, dstDirFd, dst.Name, Sys.RENAME_NOREPLACE | (deviceWhiteout ? Sys.RENAME_WHITEOUT : 0));
                    if (e == Errno.None) RemoveAufsWhiteout(b, dstDirFd, dst.Name);
                }
                else if (e != Errno.None)
                {
                    return e;
                }
                else if (!existing.IsDirectory && !src.Top.IsDir)
                {
                    // A file (or whiteout) over a file or whiteout: plain rename replaces it atomically.
                    e = BranchIo.Rename(srcDirFd, src.Name, dstDirFd, dst.Name, deviceWhiteout ? Sys.RENAME_WHITEOUT : 0);
                }
                else
                {
                    // Directory over a whiteout or over an (merged-empty) directory: exchange, then send
                    // what was at the destination to the work dir, leaving a whiteout where needed.
                    if (src.Top.IsDir != existing.IsDirectory && !BranchIo.IsWhiteoutDevice(existing)) return Errno.ENOTDIR;
                    e = BranchIo.Rename(srcDirFd, src.Name, dstDirFd, dst.Name, Sys.RENAME_EXCHANGE);
                    if (e != Errno.None) return e;
                    string tmp = b.NextTempName();
                    bool leftIsWhiteout = BranchIo.IsWhiteoutDevice(existing);
                    if (leftIsWhiteout && deviceWhiteout) { /* the swapped-in whiteout is exactly what the old name needs */ }
                    else
                    {
                        var me = BranchIo.Rename(srcDirFd, src.Name, b.WorkFd!.Fd, tmp, deviceWhiteout ? Sys.RENAME_WHITEOUT : 0);
                        if (me == Errno.None) BranchIo.RemoveTree(b.WorkFd.Fd, tmp);
                    }
                }
                if (e != Errno.None) return e;
                if (whiteoutSource && !UseDeviceWhiteouts) MakeWhiteout(b, srcDirFd, src.Name);
                MarkImpure(dstDirFd);
                return Errno.None;
            }
        }
    }

    /// <summary>
    /// An object whose union inode comes from its lower layers by name (a merged directory made
    /// outside Lamina) records that inode before it moves, so the move does not change it.
    /// </summary>
    private void PinIdentity(Resolution res)
    {
        var top = res.Top;
        if (ReadOrigin(top) != 0) return;
        ulong ino = ComputeIno(res);
        if (ino == Pack(top)) return;
        if (top.DirFd is not null) { WriteOrigin(top.DirFd.Fd, ino); return; }
        if (BranchIo.OpenPath(top.ParentFd, top.Name, out var fd) != Errno.None) return;
        using (fd) WriteOrigin(fd.Fd, ino);
    }

    /// <summary>
    /// Before a directory moves to <paramref name="to"/>'s name: if it has lower layers, record where they
    /// are (redirect); if it has none but the destination name has lower content, make it opaque.
    /// </summary>
    private Errno PrepareMovedDirectory(Resolution dir, Resolution to, Branch b)
    {
        var top = dir.Top;
        if (dir.Layers.Count > 1)
        {
            if (top.Redirect is not null) return Errno.None;
            string target = "/" + dir.Layers[1].RelPath;
            ShapeChanged();
            return BranchIo.SetXattr(top.DirFd!.Fd, _markers.Redirect, System.Text.Encoding.UTF8.GetBytes(target));
        }
        if (top.Opaque) return Errno.None;
        bool lowerAtDestination = to.WhiteoutBranch > b.Index || LowerHasName(to, b.Index) ||
            (to.Exists && to.Layers.Any(l => l.Branch.Index > b.Index));
        return lowerAtDestination ? SetOpaque(b, top.ParentFd, top.Name) : Errno.None;
    }
}
