using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>
/// Path xattr calls that follow the final link. Used on /proc/self/fd/N of an O_PATH descriptor:
/// the magic link leads to the object itself (even a symlink), which the f* calls refuse for O_PATH
/// descriptors and the l* calls refuse because they stop at the magic link.
/// </summary>
public static unsafe partial class Sys
{
    [LibraryImport(Libc, EntryPoint = "getxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint GetXattr(string path, string name, byte* value, nuint size);

    [LibraryImport(Libc, EntryPoint = "setxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetXattr(string path, string name, byte* value, nuint size, int flags);

    [LibraryImport(Libc, EntryPoint = "listxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint ListXattr(string path, byte* list, nuint size);

    [LibraryImport(Libc, EntryPoint = "removexattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RemoveXattr(string path, string name);

    public static nint GetXattr(string path, string name, Span<byte> value) { fixed (byte* p = value) return GetXattr(path, name, p, (nuint)value.Length); }
    public static int SetXattr(string path, string name, ReadOnlySpan<byte> value, int flags) { fixed (byte* p = value) return SetXattr(path, name, p, (nuint)value.Length, flags); }
    public static nint ListXattr(string path, Span<byte> list) { fixed (byte* p = list) return ListXattr(path, p, (nuint)list.Length); }
}
