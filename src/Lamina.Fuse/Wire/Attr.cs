using System.Runtime.InteropServices;

namespace Lamina.Fuse.Wire;

/// <summary>struct fuse_attr (88 bytes): the attributes of an inode.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseAttr
{
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong ATime;
    public ulong MTime;
    public ulong CTime;
    public uint ATimeNsec;
    public uint MTimeNsec;
    public uint CTimeNsec;
    public uint Mode;
    public uint NLink;
    public uint Uid;
    public uint Gid;
    public uint RDev;
    public uint BlkSize;
    public uint Flags;

    /// <summary>The attributes of a real file as statx(2) reported them.</summary>
    public static FuseAttr FromStatx(in Native.Statx st) => new()
    {
        Ino = st.Ino, Size = st.Size, Blocks = st.Blocks, Mode = st.Mode, NLink = st.NLink,
        Uid = st.Uid, Gid = st.Gid, RDev = st.RDev, BlkSize = st.BlkSize == 0 ? 4096 : st.BlkSize,
        ATime = (ulong)st.ATime.Sec, ATimeNsec = st.ATime.Nsec,
        MTime = (ulong)st.MTime.Sec, MTimeNsec = st.MTime.Nsec,
        CTime = (ulong)st.CTime.Sec, CTimeNsec = st.CTime.Nsec,
    };
}

/// <summary>struct fuse_entry_out (128 bytes): the answer to LOOKUP and to every call that makes a name.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct EntryOut
{
    public ulong NodeId;
    /// <summary>nodeid:generation must be unique for the filesystem's lifetime.</summary>
    public ulong Generation;
    public ulong EntryValid;
    public ulong AttrValid;
    public uint EntryValidNsec;
    public uint AttrValidNsec;
    public FuseAttr Attr;

    /// <summary>Sets both cache timeouts from one span of time.</summary>
    public void SetTimeouts(TimeSpan entry, TimeSpan attr)
    {
        (EntryValid, EntryValidNsec) = Split(entry);
        (AttrValid, AttrValidNsec) = Split(attr);
    }

    internal static (ulong, uint) Split(TimeSpan t)
    {
        if (t <= TimeSpan.Zero) return (0, 0);
        long ticks = t.Ticks;
        return ((ulong)(ticks / TimeSpan.TicksPerSecond), (uint)(ticks % TimeSpan.TicksPerSecond * 100));
    }
}

/// <summary>struct fuse_attr_out (104 bytes): the answer to GETATTR and SETATTR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct AttrOut
{
    public ulong AttrValid;
    public uint AttrValidNsec;
    public uint Dummy;
    public FuseAttr Attr;

    public void SetTimeout(TimeSpan attr) => (AttrValid, AttrValidNsec) = EntryOut.Split(attr);
}

/// <summary>struct fuse_getattr_in.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct GetAttrIn
{
    public uint GetAttrFlags;
    public uint Dummy;
    public ulong Fh;
}

/// <summary>struct fuse_setattr_in (88 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SetAttrIn
{
    public SetAttrValid Valid;
    public uint Padding;
    public ulong Fh;
    public ulong Size;
    public ulong LockOwner;
    public ulong ATime;
    public ulong MTime;
    public ulong CTime;
    public uint ATimeNsec;
    public uint MTimeNsec;
    public uint CTimeNsec;
    public uint Mode;
    public uint Unused4;
    public uint Uid;
    public uint Gid;
    public uint Unused5;
}

/// <summary>struct fuse_kstatfs (80 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 80)]
public struct KStatFs
{
    public ulong Blocks;
    public ulong BFree;
    public ulong BAvail;
    public ulong Files;
    public ulong FFree;
    public uint BSize;
    public uint NameLen;
    public uint FrSize;
    public uint Padding;
}
