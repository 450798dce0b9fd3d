using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    public const ulong RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04;
    public const ulong RESOLVE_BENEATH = 0x08, RESOLVE_IN_ROOT = 0x10, RESOLVE_CACHED = 0x20;

    [StructLayout(LayoutKind.Sequential)]
    public struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    private const long SYS_openat2 = 437;

    [LibraryImport(Libc, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall_openat2(long number, int dirfd, byte* path, OpenHow* how, nuint size);

    /// <summary>openat2(2): opens <paramref name="path"/> relative to <paramref name="dirfd"/> with resolve restrictions.</summary>
    public static int OpenAt2(int dirfd, ReadOnlySpan<byte> nulTerminatedPath, int flags, uint mode, ulong resolve)
    {
        var how = new OpenHow { Flags = (ulong)(uint)flags, Mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0, Resolve = resolve };
        fixed (byte* p = nulTerminatedPath)
            return (int)syscall_openat2(SYS_openat2, dirfd, p, &how, (nuint)sizeof(OpenHow));
    }

    public static int OpenAt2(int dirfd, string path, int flags, uint mode, ulong resolve)
    {
        Span<byte> buf = stackalloc byte[PathBytes.MaxStack];
        return OpenAt2(dirfd, PathBytes.NulTerminated(path, buf), flags, mode, resolve);
    }
}
