using System.Runtime.InteropServices;

namespace Lamina.Fuse.Wire;

// Fixed-size request bodies that follow InHeader; names, data and extensions come after them.

[StructLayout(LayoutKind.Sequential)] public struct ForgetIn { public ulong NLookup; }
[StructLayout(LayoutKind.Sequential)] public struct ForgetOne { public ulong NodeId; public ulong NLookup; }
[StructLayout(LayoutKind.Sequential)] public struct BatchForgetIn { public uint Count; public uint Dummy; }
[StructLayout(LayoutKind.Sequential)] public struct MknodIn { public uint Mode; public uint RDev; public uint Umask; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct MkdirIn { public uint Mode; public uint Umask; }
[StructLayout(LayoutKind.Sequential)] public struct RenameIn { public ulong NewDir; }
[StructLayout(LayoutKind.Sequential)] public struct Rename2In { public ulong NewDir; public uint Flags; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct LinkIn { public ulong OldNodeId; }
[StructLayout(LayoutKind.Sequential)] public struct OpenIn { public uint Flags; public uint OpenFlags; }
[StructLayout(LayoutKind.Sequential)] public struct CreateIn { public uint Flags; public uint Mode; public uint Umask; public uint OpenFlags; }
[StructLayout(LayoutKind.Sequential)] public struct ReleaseIn { public ulong Fh; public uint Flags; public uint ReleaseFlags; public ulong LockOwner; }
[StructLayout(LayoutKind.Sequential)] public struct FlushIn { public ulong Fh; public uint Unused; public uint Padding; public ulong LockOwner; }

[StructLayout(LayoutKind.Sequential)]
public struct ReadIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint ReadFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct WriteIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint WriteFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)] public struct FsyncIn { public ulong Fh; public uint FsyncFlags; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct SetXattrIn { public uint Size; public uint Flags; public uint SetXattrFlags; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct GetXattrIn { public uint Size; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct AccessIn { public uint Mask; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct InterruptIn { public ulong Unique; }

/// <summary>struct fuse_file_lock.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FileLock
{
    public ulong Start;
    /// <summary>Inclusive end; ulong.MaxValue (OFFSET_MAX) for "to the end of the file".</summary>
    public ulong End;
    /// <summary>F_RDLCK, F_WRLCK or F_UNLCK.</summary>
    public uint Type;
    public uint Pid;
}

[StructLayout(LayoutKind.Sequential)]
public struct LkIn
{
    public ulong Fh;
    public ulong Owner;
    public FileLock Lk;
    public uint LkFlags;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct FallocateIn { public ulong Fh; public ulong Offset; public ulong Length; public uint Mode; public uint Padding; }

[StructLayout(LayoutKind.Sequential)]
public struct LseekIn { public ulong Fh; public ulong Offset; public uint Whence; public uint Padding; }

[StructLayout(LayoutKind.Sequential)]
public struct CopyFileRangeIn
{
    public ulong FhIn;
    public ulong OffIn;
    public ulong NodeIdOut;
    public ulong FhOut;
    public ulong OffOut;
    public ulong Len;
    public ulong Flags;
}

[StructLayout(LayoutKind.Sequential)]
public struct IoctlIn { public ulong Fh; public uint Flags; public uint Cmd; public ulong Arg; public uint InSize; public uint OutSize; }

[StructLayout(LayoutKind.Sequential)]
public struct PollIn { public ulong Fh; public ulong Kh; public uint Flags; public uint Events; }

/// <summary>struct fuse_init_in (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
public struct InitIn
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public uint Flags2;
}
