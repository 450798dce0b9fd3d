using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    public const int XATTR_CREATE = 1, XATTR_REPLACE = 2;

    [LibraryImport(Libc, EntryPoint = "fgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint FGetXattr(int fd, string name, byte* value, nuint size);

    [LibraryImport(Libc, EntryPoint = "fsetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FSetXattr(int fd, string name, byte* value, nuint size, int flags);

    [LibraryImport(Libc, EntryPoint = "flistxattr", SetLastError = true)]
    public static partial nint FListXattr(int fd, byte* list, nuint size);

    [LibraryImport(Libc, EntryPoint = "fremovexattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FRemoveXattr(int fd, string name);

    [LibraryImport(Libc, EntryPoint = "lgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint LGetXattr(string path, string name, byte* value, nuint size);

    [LibraryImport(Libc, EntryPoint = "lsetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int LSetXattr(string path, string name, byte* value, nuint size, int flags);

    [LibraryImport(Libc, EntryPoint = "llistxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint LListXattr(string path, byte* list, nuint size);

    [LibraryImport(Libc, EntryPoint = "lremovexattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int LRemoveXattr(string path, string name);

    public static nint FGetXattr(int fd, string name, Span<byte> value) { fixed (byte* p = value) return FGetXattr(fd, name, p, (nuint)value.Length); }
    public static int FSetXattr(int fd, string name, ReadOnlySpan<byte> value, int flags) { fixed (byte* p = value) return FSetXattr(fd, name, p, (nuint)value.Length, flags); }
    public static nint FListXattr(int fd, Span<byte> list) { fixed (byte* p = list) return FListXattr(fd, p, (nuint)list.Length); }
}
