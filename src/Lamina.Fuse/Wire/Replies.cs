using System.Runtime.InteropServices;

namespace Lamina.Fuse.Wire;

/// <summary>struct fuse_init_out (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
public struct InitOut
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public ushort MaxBackground;
    public ushort CongestionThreshold;
    public uint MaxWrite;
    public uint TimeGran;
    public ushort MaxPages;
    public ushort MapAlignment;
    public uint Flags2;
    public uint MaxStackDepth;
    public ushort RequestTimeout;
}

/// <summary>struct fuse_open_out (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct OpenOut
{
    public ulong Fh;
    public OpenReplyFlags OpenFlags;
    /// <summary>With <see cref="OpenReplyFlags.Passthrough"/>: the id returned by BACKING_OPEN.</summary>
    public int BackingId;
}

[StructLayout(LayoutKind.Sequential)] public struct WriteOut { public uint Size; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct GetXattrOut { public uint Size; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct LkOut { public FileLock Lk; }
[StructLayout(LayoutKind.Sequential)] public struct LseekOut { public ulong Offset; }
[StructLayout(LayoutKind.Sequential)] public struct PollOut { public uint REvents; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct IoctlOut { public int Result; public uint Flags; public uint InIovs; public uint OutIovs; }

/// <summary>struct fuse_dirent header (24 bytes); the name follows, padded to 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Dirent
{
    public ulong Ino;
    public ulong Off;
    public uint NameLen;
    public uint Type;
}

/// <summary>struct fuse_backing_map: the argument of FUSE_DEV_IOC_BACKING_OPEN.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct BackingMap
{
    public int Fd;
    public uint Flags;
    public ulong Padding;
}
