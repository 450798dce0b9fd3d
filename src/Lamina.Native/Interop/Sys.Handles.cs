using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    /// <summary>MAX_HANDLE_SZ: the largest f_handle any filesystem returns.</summary>
    public const int MAX_HANDLE_SZ = 128;

    /// <summary>
    /// name_to_handle_at(2). <paramref name="handle"/> points at a struct file_handle: u32
    /// handle_bytes (set to the room after the 8-byte header before the call), int handle_type,
    /// then the handle's bytes.
    /// </summary>
    [LibraryImport(Libc, EntryPoint = "name_to_handle_at", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int NameToHandleAt(int dirfd, string path, byte* handle, out int mountId, int flags);

    /// <summary>open_by_handle_at(2): needs CAP_DAC_READ_SEARCH; <paramref name="mountFd"/> is any descriptor on the filesystem.</summary>
    [LibraryImport(Libc, EntryPoint = "open_by_handle_at", SetLastError = true)]
    public static partial int OpenByHandleAt(int mountFd, byte* handle, int flags);
}
