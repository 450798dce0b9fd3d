using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>struct flock (64-bit layout).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FLock
{
    public short Type;
    public short Whence;
    public long Start;
    public long Len;
    public int Pid;
}

public static unsafe partial class Sys
{
    public const short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
    public const int F_GETLK = 5, F_SETLK = 6, F_SETLKW = 7;
    public const int F_OFD_GETLK = 36, F_OFD_SETLK = 37, F_OFD_SETLKW = 38;
    public const int F_SETLEASE = 1024, F_GETLEASE = 1025;
    public const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

    [LibraryImport(Libc, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int FcntlLock(int fd, int cmd, FLock* lk);

    public static int FcntlLock(int fd, int cmd, ref FLock lk) { fixed (FLock* p = &lk) return FcntlLock(fd, cmd, p); }

    [LibraryImport(Libc, EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);
}
