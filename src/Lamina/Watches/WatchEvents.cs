namespace Lamina.Watches;

/// <summary>
/// The watch hub's observer: turns what the engine did into the inotify events the kernel raises for
/// the same calls (fsnotify_create, fsnotify_link_count, fsnotify_move, ...).
/// </summary>
internal sealed class WatchEvents(UnionWatches hub) : IUnionObserver
{
    public void EntryCreated(UnionNode parent, string name, UnionNode? node) =>
        hub.Entry(parent, name, node?.IsDirectory ?? false, InotifyMask.Create);

    public void EntryRemoved(UnionNode parent, string name, UnionNode? node, bool isDirectory)
    {
        if (node is not null)
        {
            if (!isDirectory) hub.Object(node, InotifyMask.Attrib, selfOnly: true); // link count (the kernel's fsnotify_link_count)
            if (node.IsDetached) hub.Gone(node);
        }
        hub.Entry(parent, name, isDirectory, InotifyMask.Delete);
    }

    public void EntryRenamed(UnionNode parent, string name, UnionNode newParent, string newName, UnionNode? moved, UnionNode? replaced, bool exchange)
    {
        hub.Moved(parent, name, newParent, newName, moved, moved?.IsDirectory ?? false);
        if (replaced is null) return;
        if (exchange) hub.Moved(newParent, newName, parent, name, replaced, replaced.IsDirectory);
        else
        {
            if (!replaced.IsDirectory) hub.Object(replaced, InotifyMask.Attrib, selfOnly: true);
            if (replaced.IsDetached) hub.Gone(replaced);
        }
    }

    public void ObjectChanged(UnionNode node, uint events) => hub.Object(node, events);

    public void LinkCountChanged(UnionNode node) => hub.Object(node, InotifyMask.Attrib, selfOnly: true);

    public void HandleClosed(UnionNode node, int openFlags) =>
        hub.Object(node, UnionFileSystem.OpenForWriting(openFlags) ? InotifyMask.CloseWrite : InotifyMask.CloseNoWrite);

    public void Unmounting() => hub.Unmount();
}
