using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buf, nuint count);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buf, nuint count);

    [LibraryImport(Libc, EntryPoint = "pread64", SetLastError = true)]
    public static partial nint PRead(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(Libc, EntryPoint = "pwrite64", SetLastError = true)]
    public static partial nint PWrite(int fd, byte* buf, nuint count, long offset);

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [LibraryImport(Libc, EntryPoint = "writev", SetLastError = true)]
    public static partial nint WriteV(int fd, IoVec* iov, int count);

    public static nint Read(int fd, Span<byte> buf) { fixed (byte* p = buf) return Read(fd, p, (nuint)buf.Length); }
    public static nint Write(int fd, ReadOnlySpan<byte> buf) { fixed (byte* p = buf) return Write(fd, p, (nuint)buf.Length); }
    public static nint PRead(int fd, Span<byte> buf, long offset) { fixed (byte* p = buf) return PRead(fd, p, (nuint)buf.Length, offset); }
    public static nint PWrite(int fd, ReadOnlySpan<byte> buf, long offset) { fixed (byte* p = buf) return PWrite(fd, p, (nuint)buf.Length, offset); }

    public const int SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;

    [LibraryImport(Libc, EntryPoint = "lseek64", SetLastError = true)]
    public static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport(Libc, EntryPoint = "ftruncate64", SetLastError = true)]
    public static partial int FTruncate(int fd, long length);

    [LibraryImport(Libc, EntryPoint = "fallocate64", SetLastError = true)]
    public static partial int FAllocate(int fd, int mode, long offset, long length);

    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    public static partial int FSync(int fd);

    [LibraryImport(Libc, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int FDataSync(int fd);

    [LibraryImport(Libc, EntryPoint = "copy_file_range", SetLastError = true)]
    public static partial nint CopyFileRange(int fdIn, long* offIn, int fdOut, long* offOut, nuint len, uint flags);

    [LibraryImport(Libc, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);
}
