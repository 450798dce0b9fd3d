using Lamina.Native;

namespace Lamina;

/// <summary>
/// unlink and rmdir. An object in a writable branch is removed there; when a lower branch still has
/// the name, a whiteout takes its place in the same step (RENAME_EXCHANGE with a prepared whiteout).
/// An object only in read-only branches is hidden by a whiteout in a writable branch above it.
/// </summary>
public sealed partial class UnionFileSystem
{
    public Errno Unlink(UnionNode parent, string name, Caller caller) => Remove(parent, name, directory: false);

    public Errno Rmdir(UnionNode parent, string name, Caller caller) => Remove(parent, name, directory: true);

    private Errno Remove(UnionNode parent, string name, bool directory) => Guard(() =>
    {
        if (name is "." ) return Errno.EINVAL;
        if (name is "..") return Errno.ENOTEMPTY;
        var ve = UnionPath.ValidateName(name);
        if (ve != Errno.None) return ve == Errno.EINVAL ? Errno.ENOENT : ve;
        using var scope = Write();
        string? parentPath = _nodes.PathOf(parent);
        if (parentPath is null) return Errno.ESTALE;
        string path = UnionPath.Join(parentPath, name);
        var e = Resolve(path, out var res);
        if (e != Errno.None) return e;
        ulong ino;
        bool lastLink;
        using (res)
        {
            if (!res.Exists) return Errno.ENOENT;
            if (directory && !res.Top.IsDir) return Errno.ENOTDIR;
            if (!directory && res.Top.IsDir) return Errno.EISDIR;
            if (directory)
            {
                e = ReadMerged(res, out var entries);
                if (e != Errno.None) return e;
                if (entries.Count > 0) return Errno.ENOTEMPTY;
            }
            ino = ComputeIno(res);
            lastLink = directory || res.Top.St.NLink <= 1 || res.Top.IsIndex || !res.Top.Branch.IsWritable;
            e = RemoveResolved(res);
            if (directory) ShapeChanged();
            if (e != Errno.None) return e;
        }
        var node = _nodes.FindByIno(ino);
        if (node is not null)
        {
            // Another name of the same file keeps the node alive; otherwise the object is gone.
            if (lastLink || !StillLinkedElsewhere(node, parent, name)) _nodes.Detach(node);
        }
        NotifyRemoved(parent, name, node, directory); // observers
        return Errno.None;
    });

    private static bool StillLinkedElsewhere(UnionNode node, UnionNode parent, string name) =>
        !(node.Parent == parent && node.Name == name) || node.FileType != ModeBits.S_IFDIR;

    /// <summary>Removes the resolved object from the union view (directory emptiness already checked).</summary>
    private Errno RemoveResolved(Resolution res)
    {
        var top = res.Top;
        string name = res.Name;
        if (top.InPlaceWritable)
        {
            var b = top.Branch;
            bool needWhiteout = LowerHasName(res, b.Index);
            int work = b.WorkFd?.Fd ?? -1;
            if (work < 0)
            {
                // A writable branch without a work dir cannot happen after validation; be safe.
                return top.IsDir ? BranchIo.Unlink(top.ParentFd, name, dir: true) : BranchIo.Unlink(top.ParentFd, name);
            }
            string tmp = b.NextTempName();
            if (needWhiteout && UseDeviceWhiteouts)
            {
                // Swap the object for a whiteout in one step, then delete the object from the work dir.
                if (Sys.MknodAt(work, tmp, ModeBits.S_IFCHR, 0) != 0) return Sys.LastErrno;
                var e = BranchIo.Rename(work, tmp, top.ParentFd, name, Sys.RENAME_EXCHANGE);
                if (e != Errno.None) { BranchIo.Unlink(work, tmp); return e; }
                BranchIo.RemoveTree(work, tmp);
                return Errno.None;
            }
            if (top.IsDir)
            {
                // The directory may still hold whiteouts: move it away whole, then clean it up.
                var e = BranchIo.Rename(top.ParentFd, name, work, tmp, Sys.RENAME_NOREPLACE);
                if (e != Errno.None) return e;
                if (needWhiteout) MakeWhiteout(b, top.ParentFd, name);
                BranchIo.RemoveTree(work, tmp);
                return Errno.None;
            }
            var ue = BranchIo.Unlink(top.ParentFd, name);
            if (ue != Errno.None) return ue;
            return needWhiteout ? MakeWhiteout(b, top.ParentFd, name) : Errno.None;
        }

        // Only in read-only branches (or only an index stand-in): hide it from a writable branch above.
        var candidates = top.IsIndex
            ? [new Policies.PlacementCandidate(top.Branch, res.ParentLayerIn(top.Branch) is not null)]
            : Candidates(res, top.Branch.Index);
        var order = _options.Policies.Create.Order(candidates);
        string parentPath = res.ParentPath;
        return TryBranches(order, b =>
        {
            var e = PrepareDirectory(parentPath, b);
            if (e != Errno.None) return e;
            e = Resolve(parentPath, out var parentRes);
            if (e != Errno.None) return e;
            using (parentRes)
            {
                var dir = parentRes.Layers.FirstOrDefault(l => l.Branch == b);
                return dir is null ? Errno.EIO : MakeWhiteout(b, dir.DirFd!.Fd, name);
            }
        });
    }
}
