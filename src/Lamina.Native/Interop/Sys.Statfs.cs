using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>struct statfs (x86_64/aarch64 layout, 120 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 120)]
public struct StatFs
{
    public long Type;
    public long BSize;
    public ulong Blocks;
    public ulong BFree;
    public ulong BAvail;
    public ulong Files;
    public ulong FFree;
    public long Fsid;
    public long NameLen;
    public long FrSize;
    public long Flags;
}

public static unsafe partial class Sys
{
    [LibraryImport(Libc, EntryPoint = "fstatfs64", SetLastError = true)]
    public static partial int FStatFs(int fd, StatFs* buf);

    public static int FStatFs(int fd, out StatFs st) { fixed (StatFs* p = &st) return FStatFs(fd, p); }
}
