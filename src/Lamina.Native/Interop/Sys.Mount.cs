using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    public const ulong MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_SYNCHRONOUS = 16;
    public const ulong MS_NOATIME = 1024, MS_NODIRATIME = 2048, MS_DIRSYNC = 128, MS_LAZYTIME = 1 << 25;
    public const int MNT_FORCE = 1, MNT_DETACH = 2, MNT_EXPIRE = 4, UMOUNT_NOFOLLOW = 8;

    [LibraryImport(Libc, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mount(string source, string target, string fstype, ulong flags, string? data);

    [LibraryImport(Libc, EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Umount2(string target, int flags);
}
