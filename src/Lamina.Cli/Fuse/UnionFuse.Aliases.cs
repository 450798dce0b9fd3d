using System.Collections.Concurrent;
using Lamina.Fuse.Wire;

namespace Lamina.Cli.Fuse;

/// <summary>
/// A second kernel inode for one union node, when the kernel's passthrough rules leave no other way.
///
/// The kernel binds a passthrough inode to one backing file for as long as any passthrough open of
/// it lasts, and refuses every other open of that inode (fs/fuse/iomode.c). A lower file read with
/// passthrough and then opened for writing, which copies it up, would have to be refused
/// (ETXTBSY). Instead the open is answered ESTALE and the node is given a new kernel id: the kernel
/// retries the open once with a fresh lookup (do_filp_open's LOOKUP_REVAL pass), which now names the
/// node by its new id, so the retried open lands on a new kernel inode that passes through to the
/// upper copy. Descriptors already open on the old inode keep reading the lower file, as with kernel
/// overlayfs before 4.19. Both ids resolve to the same union node: locks, leases, watches and st_ino
/// stay one.
/// </summary>
public sealed partial class UnionFuse
{
    // Alias ids are far above any id the engine hands out (it counts up from 2).
    private const ulong FirstAlias = 1UL << 56;
    private long _nextAlias = (long)FirstAlias;
    private readonly ConcurrentDictionary<ulong, UnionNode> _aliases = new();                                // kernel id → node, for ids not the node's own
    private readonly ConcurrentDictionary<UnionNode, ulong> _current = new(ReferenceEqualityComparer.Instance); // node → the id replies name it by now

    private UnionNode? Node(ulong fuseId) =>
        fuseId == FuseConstants.RootId ? _union.Root : fuseId >= FirstAlias ? _aliases.GetValueOrDefault(fuseId) : _union.FindNode(fuseId);

    /// <summary>The id replies name a node by: its own, or its newest alias.</summary>
    private ulong FuseId(UnionNode n) =>
        n.NodeId == RootId ? FuseConstants.RootId : !_current.IsEmpty && _current.TryGetValue(n, out var id) ? id : n.NodeId;

    /// <summary>Every id the kernel may hold an inode of the node under (for invalidation).</summary>
    private IEnumerable<ulong> FuseIds(UnionNode n)
    {
        yield return n.NodeId == RootId ? FuseConstants.RootId : n.NodeId;
        if (_aliases.IsEmpty) yield break;
        foreach (var (id, node) in _aliases)
            if (ReferenceEquals(node, n)) yield return id;
    }

    /// <summary>From now on, replies name <paramref name="node"/> by a new id (see the type's summary).</summary>
    private void Realias(UnionNode node)
    {
        ulong id = (ulong)Interlocked.Increment(ref _nextAlias);
        _aliases[id] = node;
        _current[node] = id;
    }

    /// <summary>The engine dropped a node: its aliases go with it (the kernel holds none of its inodes any more).</summary>
    private void DropAliases(UnionNode node)
    {
        if (_aliases.IsEmpty) return;
        _current.TryRemove(node, out _);
        foreach (var (id, n) in _aliases)
            if (ReferenceEquals(n, node)) _aliases.TryRemove(id, out _);
    }
}
