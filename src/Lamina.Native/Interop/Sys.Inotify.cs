using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>The fixed part of struct inotify_event; a NUL-padded name of <see cref="Len"/> bytes follows it.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct InotifyEventHeader
{
    public int Wd;
    public uint Mask;
    public uint Cookie;
    public uint Len;
}

public static unsafe partial class Sys
{
    public const int IN_NONBLOCK = 0x800, IN_CLOEXEC = 0x80000;

    /// <summary>INOTIFY_IOC_SETNEXTWD = _IOW('I', 0, __s32); the value is passed directly, not by pointer.</summary>
    public const uint INOTIFY_IOC_SETNEXTWD = 0x40044900;

    [LibraryImport(Libc, EntryPoint = "inotify_init1", SetLastError = true)]
    public static partial int InotifyInit1(int flags);

    [LibraryImport(Libc, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int InotifyAddWatch(int fd, string path, uint mask);

    [LibraryImport(Libc, EntryPoint = "inotify_rm_watch", SetLastError = true)]
    public static partial int InotifyRmWatch(int fd, int wd);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlValue(int fd, nuint request, nint value);

    /// <summary>Asks that the next watch of an inotify instance get <paramref name="wd"/> (CONFIG_CHECKPOINT_RESTORE kernels).</summary>
    public static int InotifySetNextWd(int fd, int wd) => IoctlValue(fd, INOTIFY_IOC_SETNEXTWD, wd);
}
