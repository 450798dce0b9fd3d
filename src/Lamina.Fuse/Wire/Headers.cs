using System.Runtime.InteropServices;

namespace Lamina.Fuse.Wire;

/// <summary>struct fuse_in_header (40 bytes): precedes every request.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct InHeader
{
    public uint Len;
    public Opcode Opcode;
    public ulong Unique;
    public ulong NodeId;
    public uint Uid;
    public uint Gid;
    public uint Pid;
    /// <summary>Length of request extensions, in 8-byte units.</summary>
    public ushort TotalExtLen;
    public ushort Padding;
}

/// <summary>struct fuse_out_header (16 bytes): precedes every reply and notification.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct OutHeader
{
    public uint Len;
    /// <summary>Negative errno, 0 on success; for notifications, the notify code.</summary>
    public int Error;
    /// <summary>The request's unique id; 0 for notifications.</summary>
    public ulong Unique;
}

/// <summary>struct fuse_ext_header: one request extension.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct ExtHeader
{
    public uint Size;
    public uint Type;
}
