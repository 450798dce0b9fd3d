using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, ulong request, void* arg);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, ulong request, nint arg);

    // _IOC encoding: dir << 30 | size << 16 | type << 8 | nr.
    public static ulong IoC(uint dir, uint type, uint nr, uint size) => ((ulong)dir << 30) | ((ulong)size << 16) | (type << 8) | nr;
    public static ulong IoW(uint type, uint nr, uint size) => IoC(1, type, nr, size);
    public static ulong IoR(uint type, uint nr, uint size) => IoC(2, type, nr, size);

    /// <summary>FICLONE: share all extents of the source with the destination (reflink).</summary>
    public static readonly ulong FICLONE = IoW(0x94, 9, sizeof(int));
}
