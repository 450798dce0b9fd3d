using System.Text;
using Lamina.Fuse.Wire;
using Lamina.Native;
using Lamina.Tracking;

namespace Lamina.Cli.Fuse;

/// <summary>
/// Kernel coherence for changes made directly in branches: the branch tracker's thread tells the
/// kernel to drop what it cached, so `cat` and `ls` through the mount see the new state at once.
/// Never called from inside a request handler (the kernel would wait on the directory lock the
/// request holds).
/// </summary>
public sealed partial class UnionFuse
{
    /// <summary>FUSE notifications for the branch tracker.</summary>
    public IKernelCacheInvalidator CacheInvalidator => new KernelInvalidator(this);

    private sealed class KernelInvalidator(UnionFuse fuse) : IKernelCacheInvalidator
    {
        public void EntryChanged(UnionNode dir, string name)
        {
            if (fuse.Session?.Notifier is not { } n) return;
            n.InvalidateEntry(fuse.FuseId(dir), Encoding.UTF8.GetBytes(name));
            n.InvalidateInode(fuse.FuseId(dir), 0, 0); // attributes and the cached listing
        }

        public void EntryDeleted(UnionNode dir, string name, UnionNode? child)
        {
            if (fuse.Session?.Notifier is not { } n) return;
            var bytes = Encoding.UTF8.GetBytes(name);
            // FUSE_NOTIFY_DELETE also tells inotify watchers on the mount; it needs the child the kernel knows.
            if (child is null || n.Delete(fuse.FuseId(dir), fuse.FuseId(child), bytes) != Errno.None)
                n.InvalidateEntry(fuse.FuseId(dir), bytes);
            n.InvalidateInode(fuse.FuseId(dir), 0, 0);
        }

        public void ObjectChanged(UnionNode node)
        {
            if (fuse.Session?.Notifier is not { } n) return;
            foreach (var id in fuse.FuseIds(node)) n.InvalidateInode(id, 0, 0); // attributes and cached pages
        }

        public void AttributesChanged(UnionNode node)
        {
            if (fuse.Session?.Notifier is not { } n) return;
            foreach (var id in fuse.FuseIds(node)) n.InvalidateInode(id, -1, 0);
        }

        public void NamesLost()
        {
            if (fuse.Session?.Notifier is not { } n) return;
            // Without the epoch (before protocol 7.44) the names below the root stay until they expire:
            // the root's listing and attributes at least go.
            if (n.IncrementEpoch() != Errno.None) n.InvalidateInode(FuseConstants.RootId, 0, 0);
        }
    }
}
