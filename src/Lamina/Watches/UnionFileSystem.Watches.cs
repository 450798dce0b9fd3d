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

    internal void PinNode(UnionNode node) => _nodes.AddRef(node, 1);

    internal string? PathOfNode(UnionNode node) => _nodes.PathOf(node);

    internal void WatchCreated(UnionNode parent, string name, UnionNode? node)
    {
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

    /// <summary>A handle was closed: IN_CLOSE_WRITE when it was opened for writing.</summary>
    internal void WatchClosed(UnionNode node, int openFlags)
    {
        if (_watches is null) return;
        WatchObject(node, (openFlags & Sys.O_ACCMODE) != Sys.O_RDONLY ? InotifyMask.CloseWrite : InotifyMask.CloseNoWrite);
    }
}
