using Lamina.Native;

namespace Lamina.Branches;

/// <summary>
/// The ordered, validated, opened branches. Replaced as a whole (copy on write) when branches are
/// added, removed or reordered, so readers always see a consistent list.
/// </summary>
public sealed class BranchSet
{
    internal const string WorkSubdir = "work";
    internal const string IndexSubdir = "lamina-index";
    internal const string LockName = "lamina.lock";
    /// <summary>Per-branch work dir at the root of each writable branch of a mergerfs-style union (hidden from the union).</summary>
    internal const string HiddenWorkDir = ".lamina";

    private readonly List<Branch> _fsOrder = [];

    internal BranchSet(IReadOnlyList<Branch> branches, List<Branch>? fsOrder = null)
    {
        Branches = branches;
        for (int i = 0; i < branches.Count; i++) branches[i].Index = i;
        if (fsOrder is not null) _fsOrder = fsOrder;
        foreach (var b in branches) AssignFsIndex(b);
    }

    public IReadOnlyList<Branch> Branches { get; }

    public int Count => Branches.Count;
    public Branch this[int i] => Branches[i];

    internal List<Branch> FsOrder => _fsOrder;

    private void AssignFsIndex(Branch b)
    {
        var same = _fsOrder.FirstOrDefault(o => o.Dev == b.Dev);
        if (same is not null) { b.FsIndex = same.FsIndex; return; }
        b.FsIndex = _fsOrder.Count == 0 ? 0 : _fsOrder.Max(o => o.FsIndex) + 1;
        _fsOrder.Add(b);
    }

    /// <summary>Opens and validates every branch of <paramref name="options"/>. Throws <see cref="UnionConfigException"/> naming the branch.</summary>
    public static BranchSet Open(UnionOptions options)
    {
        var opened = new List<Branch>();
        try
        {
            foreach (var spec in options.Branches) opened.Add(OpenBranch(spec.Path, spec.Mode));
            CheckNesting(opened, options.WorkDir);
            if (options.WorkDir is not null)
            {
                var upper = opened.FirstOrDefault(b => b.IsWritable)
                    ?? throw new UnionConfigException("workdir given but no writable branch", options.WorkDir);
                SetUpWorkDir(upper, options.WorkDir, hidden: false);
            }
            else
            {
                foreach (var b in opened.Where(b => b.IsWritable))
                {
                    if (Sys.MkdirAt(b.RootFd.Fd, HiddenWorkDir, 0x1C0) != 0 && Sys.LastErrno != Errno.EEXIST)
                        throw new UnionConfigException($"branch '{b.Path}': cannot create work dir '{HiddenWorkDir}': {Sys.StrError(Sys.LastErrno)}", b.Path);
                    SetUpWorkDir(b, System.IO.Path.Combine(b.CanonicalPath, HiddenWorkDir), hidden: true);
                }
            }
            return new BranchSet(opened);
        }
        catch
        {
            foreach (var b in opened) b.Dispose();
            throw;
        }
    }

    internal static Branch OpenBranch(string path, BranchMode mode)
    {
        int fd = Sys.Open(path, Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_CLOEXEC);
        if (fd < 0)
        {
            var e = Sys.LastErrno;
            string why = e switch
            {
                Errno.ENOENT => "does not exist",
                Errno.ENOTDIR => "is not a directory",
                Errno.EACCES or Errno.EPERM => "is not readable",
                _ => Sys.StrError(e),
            };
            throw new UnionConfigException($"branch '{path}' {why}", path);
        }
        var root = new SafeFd(fd);
        if (Sys.FStatx(fd, out var st) != 0)
        {
            root.Dispose();
            throw new UnionConfigException($"branch '{path}': cannot stat: {Sys.StrError(Sys.LastErrno)}", path);
        }
        string canonical = Sys.ReadLink(Sys.AT_FDCWD, $"/proc/self/fd/{fd}") ?? System.IO.Path.GetFullPath(path);
        if (mode != BranchMode.ReadOnly && Sys.FStatFs(fd, out var sfs) == 0 && (sfs.Flags & 1) != 0)
        {
            root.Dispose();
            throw new UnionConfigException($"branch '{path}' is writable in the configuration but its filesystem is read-only", path);
        }
        return new Branch(path, canonical, mode, root, st)
        {
            AufsFormat = Sys.LStatxAt(fd, Markers.AufsBranchMarker, out _) == 0,
        };
    }

    private static bool Inside(string inner, string outer) =>
        inner == outer || inner.StartsWith(outer.TrimEnd('/') + "/", StringComparison.Ordinal);

    private static void CheckNesting(List<Branch> branches, string? workDir)
    {
        for (int i = 0; i < branches.Count; i++)
        {
            for (int j = 0; j < branches.Count; j++)
            {
                if (i == j) continue;
                var a = branches[i];
                var b = branches[j];
                if (a.Dev == b.Dev && a.RootIno == b.RootIno)
                    throw new UnionConfigException($"branch '{a.Path}' is the same directory as branch '{b.Path}'", a.Path);
                if (Inside(a.CanonicalPath, b.CanonicalPath))
                    throw new UnionConfigException($"branch '{a.Path}' is inside branch '{b.Path}'", a.Path);
            }
        }
        if (workDir is null) return;
        string work = ResolveReal(workDir);
        foreach (var b in branches)
        {
            if (Inside(work, b.CanonicalPath) || Inside(b.CanonicalPath, work))
                throw new UnionConfigException($"workdir '{workDir}' and branch '{b.Path}' are nested", workDir);
        }
    }

    private static string ResolveReal(string path)
    {
        int fd = Sys.Open(path, Sys.O_PATH | Sys.O_CLOEXEC);
        if (fd < 0) return System.IO.Path.GetFullPath(path);
        try { return Sys.ReadLink(Sys.AT_FDCWD, $"/proc/self/fd/{fd}") ?? System.IO.Path.GetFullPath(path); }
        finally { Sys.Close(fd); }
    }

    /// <summary>Opens the work dir of <paramref name="upper"/>, takes its lock, creates work/ and the index, and clears stale temporaries.</summary>
    private static void SetUpWorkDir(Branch upper, string workDir, bool hidden)
    {
        int fd = Sys.Open(workDir, Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_CLOEXEC);
        if (fd < 0)
        {
            var e = Sys.LastErrno;
            string why = e switch { Errno.ENOENT => "does not exist", Errno.ENOTDIR => "is not a directory", _ => Sys.StrError(e) };
            throw new UnionConfigException($"workdir '{workDir}' {why}", workDir);
        }
        using var work = new SafeFd(fd);
        Sys.FStatx(fd, out var st);
        if (st.Dev != upper.Dev)
            throw new UnionConfigException($"workdir '{workDir}' and upper branch '{upper.Path}' are on different filesystems", workDir);

        int lockFd = Sys.OpenAt(fd, LockName, Sys.O_RDONLY | Sys.O_CREAT | Sys.O_CLOEXEC | Sys.O_NOFOLLOW, 0x180);
        if (lockFd < 0) throw new UnionConfigException($"workdir '{workDir}': cannot create lock file: {Sys.StrError(Sys.LastErrno)}", workDir);
        var lockHandle = new SafeFd(lockFd);
        if (Sys.Flock(lockFd, Sys.LOCK_EX | Sys.LOCK_NB) != 0)
        {
            lockHandle.Dispose();
            throw new UnionConfigException($"workdir '{workDir}' is in use by another union", workDir);
        }
        upper.LockFd = lockHandle;

        foreach (var sub in new[] { WorkSubdir, IndexSubdir })
        {
            if (Sys.MkdirAt(fd, sub, 0x1C0) != 0 && Sys.LastErrno != Errno.EEXIST)
                throw new UnionConfigException($"workdir '{workDir}': cannot create '{sub}': {Sys.StrError(Sys.LastErrno)}", workDir);
        }
        upper.WorkFd = OpenSub(fd, WorkSubdir, workDir);
        upper.IndexFd = OpenSub(fd, IndexSubdir, workDir);
        if (hidden) upper.HiddenRootName = HiddenWorkDir;
        // Anything left in work/ is from a crash mid-operation and was never visible: remove it.
        BranchIo.RemoveContents(upper.WorkFd.Fd);
    }

    private static SafeFd OpenSub(int dirFd, string name, string workDir)
    {
        int fd = Sys.OpenAt(dirFd, name, Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_NOFOLLOW | Sys.O_CLOEXEC);
        if (fd < 0) throw new UnionConfigException($"workdir '{workDir}': cannot open '{name}': {Sys.StrError(Sys.LastErrno)}", workDir);
        return new SafeFd(fd);
    }

    /// <summary>A new set with <paramref name="branch"/> inserted at <paramref name="position"/>.</summary>
    internal BranchSet With(Branch branch, int position)
    {
        var list = Branches.ToList();
        list.Insert(Math.Clamp(position, 0, list.Count), branch);
        return new BranchSet(list, _fsOrder);
    }

    internal BranchSet Without(Branch branch) => new(Branches.Where(b => b != branch).ToList(), _fsOrder);

    internal BranchSet Reordered(IReadOnlyList<Branch> order) => new(order.ToList(), _fsOrder);
}
