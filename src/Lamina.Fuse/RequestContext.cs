using Lamina.Fuse.Wire;

namespace Lamina.Fuse;

/// <summary>Who asked, and for what: the identity the kernel attached to a request.</summary>
public readonly struct RequestContext
{
    public RequestContext(ulong unique, Opcode opcode, ulong nodeId, uint uid, uint gid, uint pid, uint[]? groups = null)
    {
        Unique = unique;
        Opcode = opcode;
        NodeId = nodeId;
        Uid = uid;
        Gid = gid;
        Pid = pid;
        SupplementaryGroups = groups;
    }

    public ulong Unique { get; }
    public Opcode Opcode { get; }
    public ulong NodeId { get; }
    public uint Uid { get; }
    public uint Gid { get; }
    /// <summary>The caller's thread group id as the daemon's pid namespace sees it (0 if outside it).</summary>
    public uint Pid { get; }
    /// <summary>The group the kernel chose from the caller's supplementary groups (FUSE_CREATE_SUPP_GROUP), when sent.</summary>
    public uint[]? SupplementaryGroups { get; }
}
