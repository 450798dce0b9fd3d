using Lamina.Native;
using Lamina.Watches;

namespace Lamina;

/// <summary>
/// The engine's side of watches: the one-line hooks in the operations (marked "watch hook") call
/// these, which cost one null check when nobody watches. Hooks run under the namespace lock, so
/// events come out in the order the operations took effect.
/// </summary>
public sealed partial class UnionFileSystem
{
    private UnionWatches? _watches;

    /// <summary>Watches on this union (created on first use).</summary>
    public UnionWatches Watches
    {
        get
        {
            if (_watches is null) Interlocked.CompareExchange(ref _watches, new UnionWatches(this), null);
            return _watches;
        }
    }

    /// <summary>Engine-made changes, for the branch watcher: the named entry's new state is the engine's doing.</summary>
    internal event Action<UnionNode, string>? EngineChangedEntry;

    /// <summary>The engine made a new (empty) directory (raised before <see cref="EngineChangedEntry"/> for it).</summary>
    internal event Action<UnionNode, UnionNode>? EngineMadeDirectory;

    internal void PinNode(UnionNode node) => _nodes.AddRef(node, 1);

    internal string? PathOfNode(UnionNode node) => _nodes.PathOf(node);

    internal void WatchCreated(UnionNode parent, string name, UnionNode? node)
    {
        if (node is { IsDirectory: true }) EngineMadeDirectory?.Invoke(parent, node);
        EngineChangedEntry?.Invoke(parent, name);
        _watches?.Entry(parent, name, node?.IsDirectory ?? false, InotifyMask.Create);
    }

    internal void WatchRemoved(UnionNode parent, string name, UnionNode? node, bool isDir)
    {
        EngineChangedEntry?.Invoke(parent, name);
        var w = _watches;
        if (w is null) return;
        if (node is not null)
        {
            if (!isDir) w.Object(node, InotifyMask.Attrib, selfOnly: true); // link count (the kernel's fsnotify_link_count)
            if (node.IsDetached) w.Gone(node);
        }
        w.Entry(parent, name, isDir, InotifyMask.Delete);
    }

    internal void WatchRenamed(UnionNode parent, string name, UnionNode newParent, string newName, UnionNode? moved, UnionNode? other, bool exchange)
    {
        EngineChangedEntry?.Invoke(parent, name);
        EngineChangedEntry?.Invoke(newParent, newName);
        var w = _watches;
        if (w is null) return;
        bool isDir = moved?.IsDirectory ?? false;
        w.Moved(parent, name, newParent, newName, moved, isDir);
        if (other is null) return;
        if (exchange) w.Moved(newParent, newName, parent, name, other, other.IsDirectory);
        else
        {
            if (!other.IsDirectory) w.Object(other, InotifyMask.Attrib, selfOnly: true);
            if (other.IsDetached) w.Gone(other);
        }
    }

    /// <summary>An object's data or attributes changed, or it was opened, read or closed.</summary>
    internal void WatchObject(UnionNode node, uint mask)
    {
        if (mask == 0) return;
        if ((mask & (InotifyMask.Modify | InotifyMask.Attrib)) != 0 && node.Parent is { } p) EngineChangedEntry?.Invoke(p, node.Name);
        _watches?.Object(node, mask);
    }

    /// <summary>setattr's event bits as the kernel's fsnotify_change picks them.</summary>
    internal static uint SetAttrEvents(SetAttrRequest r)
    {
        uint mask = 0;
        if (r.Uid is not null || r.Gid is not null || r.Mode is not null) mask |= InotifyMask.Attrib;
        if (r.Size is not null) mask |= InotifyMask.Modify;
        bool a = r.ATime is not null || r.ATimeNow, m = r.MTime is not null || r.MTimeNow;
        if (a && m) mask |= InotifyMask.Attrib;
        else if (a) mask |= InotifyMask.Access;
        else if (m) mask |= InotifyMask.Modify;
        return mask;
    }

    internal void WatchOpened(UnionNode node) { if (_watches is not null) WatchObject(node, InotifyMask.Open); }
    internal void WatchAccessed(UnionNode node) { if (_watches is not null) WatchObject(node, InotifyMask.Access); }
    internal void WatchModified(UnionNode node) => WatchObject(node, InotifyMask.Modify);
    internal void WatchAttrib(UnionNode node) => WatchObject(node, InotifyMask.Attrib);
    internal void WatchLinkCount(UnionNode node) => _watches?.Object(node, InotifyMask.Attrib, selfOnly: true);

    /// <summary>
    /// A handle is about to close, while it still counts as a writer: the branch watcher records the
    /// writes that bypassed the engine (passthrough) as the engine's, so their branch echoes, read at
    /// any moment from now on, are never taken for direct changes.
    /// </summary>
    internal void WatchClosing(UnionNode node, int openFlags)
    {
        if (_watches is not null && (openFlags & Sys.O_ACCMODE) != Sys.O_RDONLY) EngineClosingForWrite?.Invoke(node);
    }

    /// <summary>A handle was closed: IN_CLOSE_WRITE when it was opened for writing.</summary>
    internal void WatchClosed(UnionNode node, int openFlags) =>
        _watches?.Object(node, (openFlags & Sys.O_ACCMODE) != Sys.O_RDONLY ? InotifyMask.CloseWrite : InotifyMask.CloseNoWrite);

    /// <summary>A handle opened for writing is closing (its passthrough writes, if any, are done).</summary>
    internal event Action<UnionNode>? EngineClosingForWrite;

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

    /// <summary>Calls <paramref name="visit"/> with each branch directory that contributes to <paramref name="dir"/> (stops at an opaque one).</summary>
    internal void ForEachContributingDirectory(UnionNode dir, Action<Branches.Branch, int> visit)
    {
        using var scope = Read();
        string? p = _nodes.PathOf(dir);
        if (p is null || Resolve(p, out var res) != Errno.None) return;
        using (res)
            foreach (var layer in res.Layers)
                if (layer.IsDir && layer.DirFd is { } fd) visit(layer.Branch, fd.Fd);
    }

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
