using Lamina.Native;

namespace Lamina;

/// <summary>
/// The live nodes, by node id and by union inode. A node stays while the kernel (or an in-process
/// caller) holds lookups on it, it has open handles, or it has live children; then it is dropped and
/// its id is never handed out again.
/// </summary>
internal sealed class NodeTable
{
    public const ulong RootId = 1;

    private readonly object _gate = new();
    private readonly Dictionary<ulong, UnionNode> _byId = [];
    private readonly Dictionary<ulong, UnionNode> _byIno = [];
    // Where each node was last found: what a name named, once the branches no longer tell (a removal made outside the union).
    private readonly Dictionary<(ulong Parent, string Name), UnionNode> _byName = [];
    private ulong _nextId = RootId + 1;

    public NodeTable(ulong rootIno)
    {
        Root = new UnionNode(RootId, rootIno, Native.ModeBits.S_IFDIR, null, "");
        Root.LookupCount = 1;
        _byId[RootId] = Root;
        _byIno[rootIno] = Root;
    }

    public UnionNode Root { get; }

    /// <summary>Called (under the table's lock) when a node enters the table and when it leaves it.</summary>
    public Action<UnionNode>? Added, Dropped;

    public int Count { get { lock (_gate) return _byId.Count; } }

    public UnionNode? Find(ulong nodeId) { lock (_gate) return _byId.GetValueOrDefault(nodeId); }

    /// <summary>The node last found as <paramref name="name"/> in <paramref name="parent"/>, if it is still in the table.</summary>
    public UnionNode? FindChild(UnionNode parent, string name)
    {
        lock (_gate) return _byName.GetValueOrDefault((parent.NodeId, name));
    }

    /// <summary>Every node in the table now.</summary>
    public List<UnionNode> All() { lock (_gate) return [.. _byId.Values]; }

    public UnionNode? FindByIno(ulong ino) { lock (_gate) return _byIno.GetValueOrDefault(ino); }

    public string? PathOf(UnionNode node) { lock (_gate) return node.IsDetached && node.Handles.Count == 0 && node.LookupCount == 0 ? null : node.PathUnlocked(); }

    /// <summary>
    /// The node for the object <paramref name="ino"/> found as <paramref name="name"/> in <paramref name="parent"/>,
    /// created if none is live; its lookup count grows by <paramref name="lookups"/>. An existing node found
    /// under another name (a hard link, or a change made directly in a branch) is re-homed to this name.
    /// </summary>
    public UnionNode GetOrAdd(UnionNode parent, string name, ulong ino, uint type, long lookups, out bool moved)
    {
        lock (_gate)
        {
            moved = false;
            if (_byIno.TryGetValue(ino, out var node) && node != Root && IsAncestorOrSelf(node, parent))
            {
                // The inode number now names a directory below the node's own place: the node's object
                // is gone (removed in a branch, its inode number reused), so it cannot be re-homed there.
                node.IsDetached = true;
                _byIno.Remove(ino);
                ReleaseIfUnused(node);
            }
            else if (node is not null && node != Root)
            {
                if (node.Parent != parent || node.Name != name)
                {
                    MoveUnlocked(node, parent, name);
                    moved = true;
                }
                node.FileType = type;
                node.LookupCount += lookups;
                return node;
            }
            node = new UnionNode(_nextId++, ino, type, parent, name) { LookupCount = lookups };
            parent.ChildRefs++;
            _byId[node.NodeId] = node;
            _byIno[ino] = node;
            _byName[(parent.NodeId, name)] = node;
            Added?.Invoke(node);
            return node;
        }
    }

    private static bool IsAncestorOrSelf(UnionNode node, UnionNode? of)
    {
        for (; of is not null; of = of.Parent)
            if (of == node) return true;
        return false;
    }

    public void Move(UnionNode node, UnionNode newParent, string newName)
    {
        lock (_gate) MoveUnlocked(node, newParent, newName);
    }

    private void MoveUnlocked(UnionNode node, UnionNode newParent, string newName)
    {
        Unname(node);
        _byName[(newParent.NodeId, newName)] = node;
        if (node.Parent != newParent)
        {
            newParent.ChildRefs++;
            var old = node.Parent;
            node.Parent = newParent;
            if (old is not null) old.ChildRefs--;
        }
        node.Name = newName;
    }

    /// <summary>The object is gone from the namespace: a new object with the same inode must get a new node.</summary>
    public void Detach(UnionNode node)
    {
        lock (_gate)
        {
            if (node == Root) return;
            node.IsDetached = true;
            if (_byIno.TryGetValue(node.Ino, out var n) && n == node) _byIno.Remove(node.Ino);
            ReleaseIfUnused(node);
        }
    }

    public void AddRef(UnionNode node, long count) { lock (_gate) node.LookupCount += count; }

    public void Forget(UnionNode node, long count)
    {
        lock (_gate)
        {
            node.LookupCount = Math.Max(0, node.LookupCount - count);
            ReleaseIfUnused(node);
        }
    }

    public void AddHandle(UnionNode node, UnionHandle h) { lock (_gate) node.Handles.Add(h); }

    /// <summary>Whether a handle of the node is open for writing (its writes may bypass the engine: passthrough).</summary>
    public bool HasWriter(UnionNode node) => Writer(node) is not null;

    /// <summary>A handle of the node open for writing, if any: its descriptor is the node's top file (it was copied up to open it).</summary>
    public UnionHandle? Writer(UnionNode node)
    {
        lock (_gate)
            foreach (var h in node.Handles)
                if ((h.Flags & Sys.O_ACCMODE) != Sys.O_RDONLY) return h;
        return null;
    }

    public void RemoveHandle(UnionNode node, UnionHandle h)
    {
        lock (_gate)
        {
            node.Handles.Remove(h);
            ReleaseIfUnused(node);
        }
    }

    public UnionHandle[] HandlesOf(UnionNode node) { lock (_gate) return [.. node.Handles]; }

    private void Unname(UnionNode node)
    {
        if (node.Parent is { } p && _byName.TryGetValue((p.NodeId, node.Name), out var n) && n == node) _byName.Remove((p.NodeId, node.Name));
    }

    private void ReleaseIfUnused(UnionNode node)
    {
        while (node != Root && node.InTable && node.LookupCount == 0 && node.Handles.Count == 0 && node.ChildRefs == 0)
        {
            node.InTable = false;
            _byId.Remove(node.NodeId);
            Unname(node);
            Dropped?.Invoke(node);
            if (_byIno.TryGetValue(node.Ino, out var n) && n == node) _byIno.Remove(node.Ino);
            var parent = node.Parent;
            if (parent is null) return;
            parent.ChildRefs--;
            node = parent;
        }
    }
}
