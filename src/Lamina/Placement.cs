using Lamina.Branches;
using Lamina.Native;
using Lamina.Policies;

namespace Lamina;

public sealed partial class UnionFileSystem
{
    /// <summary>
    /// Branches where a new entry for <paramref name="res"/>'s name would be visible: creatable, not
    /// below a whiteout of the name, not below an existing object of that name, and either already
    /// holding the parent directory or above every layer of it (so the parent chain can be made there).
    /// </summary>
    private List<PlacementCandidate> Candidates(Resolution res, int belowIndex = int.MaxValue)
    {
        var list = new List<PlacementCandidate>();
        if (res.ParentLayers.Count == 0) return list;
        int parentTop = res.ParentLayers[0].Branch.Index;
        foreach (var b in _branches.Branches)
        {
            if (!b.CanCreate || b.WorkFd is null) continue;
            if (b.Index >= belowIndex) continue;
            if (res.WhiteoutBranch >= 0 && b.Index > res.WhiteoutBranch) continue;
            bool parentHere = res.ParentLayerIn(b) is not null;
            if (!parentHere && b.Index > parentTop) continue;
            list.Add(new PlacementCandidate(b, parentHere));
        }
        return list;
    }

    private static bool IsOutOfSpace(Errno e) => e is Errno.ENOSPC or Errno.EDQUOT;

    /// <summary>Runs <paramref name="attempt"/> on each branch in policy order until one does not run out of space.</summary>
    private static Errno TryBranches(List<Branch> order, Func<Branch, Errno> attempt)
    {
        if (order.Count == 0) return Errno.EROFS;
        var last = Errno.EROFS;
        foreach (var b in order)
        {
            last = attempt(b);
            if (!IsOutOfSpace(last)) return last;
        }
        return last;
    }

    /// <summary>Makes sure the directory <paramref name="dirPath"/> exists in branch <paramref name="b"/>, copying up its chain.</summary>
    private Errno PrepareDirectory(string dirPath, Branch b)
    {
        var e = Resolve(dirPath, out var res);
        if (e != Errno.None) return e;
        using (res)
        {
            if (!res.Exists) return Errno.ENOENT;
            if (!res.Top.IsDir) return Errno.ENOTDIR;
            if (res.Layers.Any(l => l.Branch == b)) return Errno.None;
        }
        e = PrepareDirectory(UnionPath.Parent(dirPath), b);
        return e != Errno.None ? e : CopyUpTo(dirPath, b, withData: false);
    }

    /// <summary>
    /// Resolves <paramref name="path"/> so that its top layer is changeable in place, copying it up to a
    /// writable branch first if it lives in a read-only one. ENOSPC on one branch moves on to the next.
    /// </summary>
    internal Errno EnsureWritable(string path, bool withData, out Resolution res, bool metadataOnly = false)
    {
        var e = Resolve(path, out res);
        if (e != Errno.None) return e;
        if (!res.Exists) { res.Dispose(); return Errno.ENOENT; }
        if (res.Top.InPlaceWritable)
        {
            if (!res.Top.IsMetacopy || metadataOnly) return Errno.None;
            res.Dispose();
            e = CopyUpData(path);
            if (e != Errno.None) { res = null!; return e; }
            return Resolve(path, out res);
        }
        var top = res.Top;
        var order = _options.Policies.CopyUp.Order(top.IsIndex
            ? [new PlacementCandidate(top.Branch, true)]
            : Candidates(res, top.Branch.Index));
        res.Dispose();
        e = TryBranches(order, b => CopyUpTo(path, b, withData, metadataOnly));
        if (e != Errno.None) { res = null!; return e; }
        e = Resolve(path, out res);
        if (e == Errno.None && (!res.Exists || !res.Top.InPlaceWritable)) { res.Dispose(); return Errno.EIO; }
        return e;
    }
}
