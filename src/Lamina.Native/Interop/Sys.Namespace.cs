using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>Calls that create, remove and rename names, all relative to a directory descriptor.</summary>
public static unsafe partial class Sys
{
    public const uint RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2, RENAME_WHITEOUT = 4;

    [LibraryImport(Libc, EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MkdirAt(int dirfd, string name, uint mode);

    [LibraryImport(Libc, EntryPoint = "mknodat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MknodAt(int dirfd, string name, uint mode, ulong dev);

    [LibraryImport(Libc, EntryPoint = "symlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SymlinkAt(string target, int dirfd, string name);

    [LibraryImport(Libc, EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint ReadlinkAt(int dirfd, string name, byte* buf, nuint size);

    [LibraryImport(Libc, EntryPoint = "linkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int LinkAt(int olddirfd, string oldname, int newdirfd, string newname, int flags);

    [LibraryImport(Libc, EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int UnlinkAt(int dirfd, string name, int flags);

    [LibraryImport(Libc, EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RenameAt2(int olddirfd, string oldname, int newdirfd, string newname, uint flags);

    [LibraryImport(Libc, EntryPoint = "fchmodat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FChmodAt(int dirfd, string name, uint mode, int flags);

    [LibraryImport(Libc, EntryPoint = "fchmod", SetLastError = true)]
    public static partial int FChmod(int fd, uint mode);

    [LibraryImport(Libc, EntryPoint = "fchownat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FChownAt(int dirfd, string name, uint uid, uint gid, int flags);

    [LibraryImport(Libc, EntryPoint = "fchown", SetLastError = true)]
    public static partial int FChown(int fd, uint uid, uint gid);

    public const long UTIME_NOW = (1L << 30) - 1, UTIME_OMIT = (1L << 30) - 2;

    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec
    {
        public long Sec;
        public long Nsec;
        public Timespec(long sec, long nsec) { Sec = sec; Nsec = nsec; }
    }

    [LibraryImport(Libc, EntryPoint = "utimensat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int UtimensAt(int dirfd, string? name, Timespec* times, int flags);

    [LibraryImport(Libc, EntryPoint = "futimens", SetLastError = true)]
    public static partial int FUtimens(int fd, Timespec* times);

    /// <summary>readlinkat into a string; null and errno set on failure.</summary>
    public static string? ReadLink(int dirfd, string name)
    {
        Span<byte> buf = stackalloc byte[PathBytes.MaxStack];
        fixed (byte* p = buf)
        {
            nint n = ReadlinkAt(dirfd, name, p, (nuint)buf.Length);
            return n < 0 ? null : System.Text.Encoding.UTF8.GetString(buf[..(int)n]);
        }
    }
}
