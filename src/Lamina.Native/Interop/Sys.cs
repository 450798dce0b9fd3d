using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>
/// Native calls, one small file per API. Each call returns the raw result (-1 on failure) and
/// leaves the errno in <see cref="LastErrno"/>; turning failures into exceptions or errno
/// replies is the caller's decision at its own boundary.
/// </summary>
public static unsafe partial class Sys
{
    internal const string Libc = "libc";

    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_REMOVEDIR = 0x200;
    public const int AT_SYMLINK_FOLLOW = 0x400;
    public const int AT_NO_AUTOMOUNT = 0x800;
    public const int AT_EMPTY_PATH = 0x1000;

    public static Errno LastErrno => (Errno)Marshal.GetLastPInvokeError();


    [LibraryImport(Libc, EntryPoint = "strerror")]
    private static partial nint strerror(int errnum);

    public static string StrError(Errno errno) =>
        Marshal.PtrToStringUTF8(strerror((int)errno)) ?? errno.ToString();

    /// <summary>-errno of the last call, the form FUSE replies and errno results use.</summary>
    public static int NegErrno => -Marshal.GetLastPInvokeError();
}
