using Lamina.Locks;
using Lamina.Native;

namespace Lamina;

/// <summary>The engine's side of the lock table, which hears of copy-up and handle release as an observer.</summary>
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
                Observe(fresh);
                return fresh;
            }
            return _locks!;
        }
    }

    internal UnionHandle[] HandlesOfNode(UnionNode node) => _nodes.HandlesOf(node);

    /// <summary>The node's union path with a leading slash, or null when it has none any more.</summary>
    internal string? UnionPathOf(UnionNode node) => _nodes.PathOf(node) is { } p ? "/" + p : null;
}
