using Lamina.Branches;

namespace Lamina;

/// <summary>
/// One object as seen through the union, with a stable identity. There is exactly one live node per
/// union object (hard links share it). The node survives copy-up and rename; only its backing changes.
/// Locks, leases and watches of later layers hang off this object.
/// </summary>
public sealed class UnionNode
{
    internal UnionNode(ulong nodeId, ulong ino, uint type, UnionNode? parent, string name)
    {
        NodeId = nodeId;
        Ino = ino;
        FileType = type;
        Parent = parent;
        Name = name;
    }

    /// <summary>The id the FUSE layer hands to the kernel. Never reused while the engine lives.</summary>
    public ulong NodeId { get; }

    /// <summary>The union st_ino: derived from the origin object, stable across copy-up, rename and remount.</summary>
    public ulong Ino { get; }

    /// <summary>S_IFMT bits of the object.</summary>
    public uint FileType { get; internal set; }

    /// <summary>The directory this node was last found in (null for the root).</summary>
    public UnionNode? Parent { get; internal set; }

    /// <summary>The name this node was last found under.</summary>
    public string Name { get; internal set; }

    /// <summary>The branch currently backing the node (top layer), as last seen by the engine.</summary>
    public Branch? BackingBranch { get; internal set; }

    /// <summary>True once the object was unlinked or replaced through the union: the node now lives only through open handles.</summary>
    public bool IsDetached { get; internal set; }

    public bool IsDirectory => FileType == Native.ModeBits.S_IFDIR;

    /// <summary>
    /// A directory whose every contributing branch directory is watched for changes made outside the
    /// union (see <see cref="Tracking.BranchTracker"/>): what the kernel caches of its entries may be
    /// kept for long, since any change to them is told to the kernel at once.
    /// </summary>
    public bool IsTracked { get => Volatile.Read(ref _tracked); internal set => Volatile.Write(ref _tracked, value); }
    private bool _tracked;

    internal long LookupCount;
    internal int ChildRefs;
    internal readonly List<UnionHandle> Handles = [];
    internal bool InTable = true;

    /// <summary>The node's current union path ("" for the root); null when an ancestor was detached.</summary>
    internal string PathUnlocked()
    {
        if (Parent is null) return "";
        var parts = new List<string>();
        for (var n = this; n.Parent is not null; n = n.Parent)
        {
            parts.Add(n.Name);
            // PATH_MAX allows at most 2,048 components: more means the parent links loop (a bug).
            if (parts.Count > 4096) throw new InvalidOperationException($"parent links of {this} form a cycle");
        }
        parts.Reverse();
        return string.Join('/', parts);
    }

    public override string ToString() => $"node {NodeId} ino {Ino} '{Name}'";
}
