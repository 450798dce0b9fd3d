using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>Adding, removing and reordering branches while the union is in use.</summary>
public sealed partial class UnionFileSystem
{
    /// <summary>
    /// Adds a branch at <paramref name="position"/> (0 = top). A writable branch gets a hidden work dir
    /// (".lamina") at its root. Throws <see cref="UnionConfigException"/> naming the branch.
    /// </summary>
    public void AddBranch(string path, BranchMode mode, int position)
    {
        var branch = BranchSet.OpenBranch(path, mode);
        try
        {
            using var scope = Write();
            foreach (var b in _branches.Branches)
            {
                if (b.Dev == branch.Dev && b.RootIno == branch.RootIno)
                    throw new UnionConfigException($"branch '{path}' is already part of the union (as '{b.Path}')", path);
                if (Inside(branch.CanonicalPath, b.CanonicalPath) || Inside(b.CanonicalPath, branch.CanonicalPath))
                    throw new UnionConfigException($"branch '{path}' and branch '{b.Path}' are nested", path);
            }
            if (branch.IsWritable)
            {
                if (Sys.MkdirAt(branch.RootFd.Fd, BranchSet.HiddenWorkDir, 0x1C0) != 0 && Sys.LastErrno != Errno.EEXIST)
                    throw new UnionConfigException($"branch '{path}': cannot create work dir: {Sys.StrError(Sys.LastErrno)}", path);
                SetUpHiddenWork(branch);
            }
            _branches = _branches.With(branch, position);
            ShapeChanged();
            NotifyBranchChanged(new BranchChange(null, null, null, $"branch '{path}' added"));
        }
        catch
        {
            branch.Dispose();
            throw;
        }
    }

    private static bool Inside(string inner, string outer) =>
        inner == outer || inner.StartsWith(outer.TrimEnd('/') + "/", StringComparison.Ordinal);

    private static void SetUpHiddenWork(Branch branch)
    {
        var e = BranchIo.OpenAt(branch.RootFd.Fd, BranchSet.HiddenWorkDir, BranchIo.DirReadFlags, 0, out var work);
        if (e != Errno.None) throw new UnionConfigException($"branch '{branch.Path}': cannot open work dir: {Sys.StrError(e)}", branch.Path);
        using (work)
        {
            foreach (var sub in new[] { BranchSet.WorkSubdir, BranchSet.IndexSubdir }) Sys.MkdirAt(work.Fd, sub, 0x1C0);
            int lockFd = Sys.OpenAt(work.Fd, BranchSet.LockName, Sys.O_RDWR | Sys.O_CREAT | Sys.O_CLOEXEC | Sys.O_NOFOLLOW, 0x180);
            if (lockFd < 0 || Sys.Flock(lockFd, Sys.LOCK_EX | Sys.LOCK_NB) != 0)
            {
                if (lockFd >= 0) Sys.Close(lockFd);
                throw new UnionConfigException($"branch '{branch.Path}': work dir is in use by another union", branch.Path);
            }
            branch.LockFd = new SafeFd(lockFd);
            BranchIo.OpenAt(work.Fd, BranchSet.WorkSubdir, BranchIo.DirReadFlags, 0, out var w);
            BranchIo.OpenAt(work.Fd, BranchSet.IndexSubdir, BranchIo.DirReadFlags, 0, out var i);
            branch.WorkFd = w;
            branch.IndexFd = i;
            branch.HiddenRootName = BranchSet.HiddenWorkDir;
            BranchIo.RemoveContents(w.Fd);
        }
    }

    /// <summary>Removes a branch. Refused (exception naming the branch) while files on it are open, or if it is the last.</summary>
    public void RemoveBranch(string path)
    {
        using var scope = Write();
        var branch = FindBranch(path);
        if (branch.OpenFiles > 0)
            throw new UnionConfigException($"branch '{path}' has {branch.OpenFiles} open file(s); close them first", path);
        if (_branches.Count == 1) throw new UnionConfigException($"branch '{path}' is the last branch", path);
        _branches = _branches.Without(branch);
        ShapeChanged();
        branch.Dispose();
        NotifyBranchChanged(new BranchChange(null, null, null, $"branch '{path}' removed"));
    }

    /// <summary>Puts the branches in the given order (all current branches, by path).</summary>
    public void ReorderBranches(IReadOnlyList<string> paths)
    {
        using var scope = Write();
        var order = paths.Select(FindBranch).ToList();
        if (order.Distinct().Count() != _branches.Count)
            throw new UnionConfigException("reorder must list every branch exactly once", string.Join(':', paths));
        _branches = _branches.Reordered(order);
        ShapeChanged();
        NotifyBranchChanged(new BranchChange(null, null, null, "branches reordered"));
    }

    /// <summary>Changes a branch's mode (RW/RO/NC).</summary>
    public void SetBranchMode(string path, BranchMode mode)
    {
        using var scope = Write();
        var branch = FindBranch(path);
        if (mode != BranchMode.ReadOnly && branch.WorkFd is null)
            throw new UnionConfigException($"branch '{path}' has no work dir; add it as writable instead", path);
        branch.Mode = mode;
        ShapeChanged(); // read-only layers may be indexed; a writable one must not be
    }

    private Branch FindBranch(string path) =>
        _branches.Branches.FirstOrDefault(b => b.Path == path || b.CanonicalPath == path)
        ?? throw new UnionConfigException($"branch '{path}' is not part of the union", path);
}
