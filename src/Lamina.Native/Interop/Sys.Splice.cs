using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    // fcntl commands for a pipe's capacity (F_LINUX_SPECIFIC_BASE 1024 + 7, + 8).
    public const int F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;

    public const uint SPLICE_F_NONBLOCK = 2;

    /// <summary>splice(2): moves bytes between a descriptor and a pipe without copying them through user memory.</summary>
    [LibraryImport(Libc, EntryPoint = "splice", SetLastError = true)]
    public static partial nint Splice(int fdIn, long* offIn, int fdOut, long* offOut, nuint len, uint flags);
}
