using Lamina.Native;
using Lamina.Watches;

namespace Lamina;

/// <summary>
/// The engine's side of watches: the hub, which hears of the engine's changes as an observer
/// (<see cref="WatchEvents"/>), and what the branch watcher asks of the merged view.
/// </summary>
public sealed partial class UnionFileSystem
{
    private UnionWatches? _watches;

    /// <summary>Watches on this union (created on first use).</summary>
    public UnionWatches Watches
    {
        get
        {
            if (Volatile.Read(ref _watches) is { } w) return w;
            var fresh = new UnionWatches(this);
            if (Interlocked.CompareExchange(ref _watches, fresh, null) is null)
            {
                Observe(new WatchEvents(fresh));
                return fresh;
            }
            return _watches!;
        }
    }

    /// <summary>Whether a union watch on <paramref name="node"/> (or a recursive one above it) asks for any of <paramref name="mask"/>.</summary>
    public bool WatchesWant(UnionNode node, uint mask) => Volatile.Read(ref _watches) is { } w && w.Wants(node, mask);

    internal void PinNode(UnionNode node) => _nodes.AddRef(node, 1);

    internal string? PathOfNode(UnionNode node) => _nodes.PathOf(node);

    // ---- for the branch watcher -------------------------------------------------------------

    /// <summary>Whether the object the union shows with this inode number is open for writing through the union.</summary>
    internal bool HasUnionWriter(ulong unionIno) => FindNodeByIno(unionIno) is { } node && _nodes.HasWriter(node);

    /// <summary>What the union shows under <paramref name="name"/> in <paramref name="dir"/> (null: nothing), to tell real changes from echoes.</summary>
    internal EntryState? EntryStateOf(UnionNode dir, string name)
    {
        if (Markers.IsMarkerName(name) || UnionPath.ValidateName(name) != Errno.None) return null;
        using var scope = Read();
        string? p = _nodes.PathOf(dir);
        if (p is null || Resolve(UnionPath.Join(p, name), out var res) != Errno.None) return null;
        using (res)
        {
            if (!res.Exists) return null;
            var st = res.Top.St;
            return new EntryState(ComputeIno(res), st.FileType, res.Top.Branch.Index, st.Dev, st.Ino, st.Size,
                st.MTime.Sec, st.MTime.Nsec, st.CTime.Sec, st.CTime.Nsec);
        }
    }

    /// <summary>
    /// <paramref name="name"/> in each branch directory that contributes to <paramref name="dir"/>, top to
    /// bottom (null: the directory cannot be read). The branch watcher asks what a raw event in one branch
    /// meant for the view: whether a higher layer hides the name from it, and what shows when it goes.
    /// </summary>
    internal List<(int Branch, NameKind Kind)>? NameInBranches(UnionNode dir, string name)
    {
        if (Markers.IsMarkerName(name) || UnionPath.ValidateName(name) != Errno.None) return null;
        using var scope = Read();
        string? p = _nodes.PathOf(dir);
        if (p is null || Resolve(p, out var res) != Errno.None) return null;
        using (res)
        {
            if (!res.Exists || !res.Top.IsDir) return null;
            var list = new List<(int, NameKind)>(res.Layers.Count);
            foreach (var layer in res.Layers)
            {
                if (!layer.IsDir || layer.DirFd is not { } fd) continue;
                var kind = NameKind.None;
                if (layer.RelPath.Length == 0 && layer.Branch.HiddenRootName == name) { } // the branch's own work directory
                else if (BranchIo.Stat(fd.Fd, name, out var st) == Errno.None)
                    kind = IsWhiteout(layer, name, st) ? NameKind.Whiteout : st.IsDirectory ? NameKind.Directory : NameKind.File;
                else if (layer.Branch.AufsFormat && BranchIo.Stat(fd.Fd, Markers.AufsWhiteoutPrefix + name, out _) == Errno.None)
                    kind = NameKind.Whiteout;
                list.Add((layer.Branch.Index, kind));
            }
            return list;
        }
    }

    /// <summary>The merged names of a directory (no markers), or null when it cannot be read.</summary>
    internal List<string>? MergedNames(UnionNode dir)
    {
        using var scope = Read();
        string? p = _nodes.PathOf(dir);
        if (p is null || Resolve(p, out var res) != Errno.None) return null;
        using (res)
        {
            if (!res.Exists || !res.Top.IsDir || ReadMerged(res, out var entries) != Errno.None) return null;
            return [.. entries.Select(e => e.Name)];
        }
    }

    /// <summary>
    /// Calls <paramref name="visit"/> with each branch directory that contributes to <paramref name="dir"/>
    /// (stops at an opaque one): its branch, a descriptor valid during the call, and its path in the
    /// branch. False when the directory does not resolve.
    /// </summary>
    internal bool ForEachContributingDirectory(UnionNode dir, Action<Branches.Branch, int, string> visit)
    {
        using var scope = Read();
        string? p = _nodes.PathOf(dir);
        if (p is null || Resolve(p, out var res) != Errno.None) return false;
        using (res)
        {
            if (!res.Exists || !res.Top.IsDir) return false;
            foreach (var layer in res.Layers)
                if (layer.IsDir && layer.DirFd is { } fd) visit(layer.Branch, fd.Fd, layer.RelPath);
            return true;
        }
    }

    /// <summary>
    /// A branch directory of <paramref name="dir"/> changed outside the union: the engine's cached layers
    /// of it (and so of everything below it) and its name index are dropped, to be read again.
    /// </summary>
    internal void BranchDirectoryChanged(UnionNode dir)
    {
        if (_nodes.PathOf(dir) is { } p) _dirStacks.Drop(p);
    }

    /// <summary>Branches changed in ways nobody can tell (events lost): every cached layer is read again.</summary>
    internal void BranchDirectoriesChanged() => _dirStacks.Invalidate();

    /// <summary>The node the engine last found as <paramref name="name"/> in <paramref name="dir"/>, if it still holds it.</summary>
    internal UnionNode? ChildNode(UnionNode dir, string name) => _nodes.FindChild(dir, name);

    /// <summary>Every node the engine holds now.</summary>
    internal List<UnionNode> AllNodes() => _nodes.All();

    internal UnionNode? FindNodeByIno(ulong ino) => _nodes.FindByIno(ino);
}

/// <summary>One name's merged state: the union inode and type, and which branch file shows it with its times and size.</summary>
internal readonly record struct EntryState(ulong UnionIno, uint Type, int Branch, ulong Dev, ulong Ino, ulong Size,
    long MSec, uint MNsec, long CSec, uint CNsec)
{
    public bool IsDirectory => Type == ModeBits.S_IFDIR;
}

/// <summary>What a name is in one branch directory.</summary>
internal enum NameKind : byte { None, File, Directory, Whiteout }
