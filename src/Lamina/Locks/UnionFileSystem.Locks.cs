using Lamina.Locks;
using Lamina.Native;

namespace Lamina;

/// <summary>The engine's side of the lock table: where copy-up and handle release reach it.</summary>
public sealed partial class UnionFileSystem
{
    private UnionLocks? _locks;

    /// <summary>The union's lock table (POSIX, OFD and flock locks keyed by union node). Created on first use.</summary>
    public UnionLocks Locks
    {
        get
        {
            if (Volatile.Read(ref _locks) is { } l) return l;
            var fresh = new UnionLocks(this);
            if (Interlocked.CompareExchange(ref _locks, fresh, null) is null)
            {
                // Raised after the handles moved onto the published copy.
                NodeBackingChanged += fresh.AfterPublish;
                return fresh;
            }
            return _locks!;
        }
    }

    /// <summary>Hook (CopyUp.cs): the copy is complete under its temporary name and about to be renamed into place.</summary>
    private Errno LocksBeforePublish(ulong ino, int workFd, string tmp)
    {
        if (Volatile.Read(ref _locks) is not { } locks) return Errno.None;
        var node = _nodes.FindByIno(ino);
        return node is null ? Errno.None : locks.BeforePublish(node, workFd, tmp);
    }

    /// <summary>Hook (FileOps.cs): an open file was released.</summary>
    private void LocksHandleReleased(UnionHandle handle) => Volatile.Read(ref _locks)?.ReleaseHandle(handle);

    internal UnionHandle[] HandlesOfNode(UnionNode node) => _nodes.HandlesOf(node);

    /// <summary>The node's union path with a leading slash, or null when it has none any more.</summary>
    internal string? UnionPathOf(UnionNode node) => _nodes.PathOf(node) is { } p ? "/" + p : null;
}
