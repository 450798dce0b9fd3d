using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>struct statx_timestamp.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct StatxTimestamp
{
    public long Sec;
    public uint Nsec;
    private int _reserved;

    public StatxTimestamp(long sec, uint nsec) { Sec = sec; Nsec = nsec; _reserved = 0; }
}

/// <summary>struct statx (256 bytes, the same on every architecture).</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public struct Statx
{
    public uint Mask;
    public uint BlkSize;
    public ulong Attributes;
    public uint NLink;
    public uint Uid;
    public uint Gid;
    public ushort Mode;
    private ushort _spare0;
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong AttributesMask;
    public StatxTimestamp ATime;
    public StatxTimestamp BTime;
    public StatxTimestamp CTime;
    public StatxTimestamp MTime;
    public uint RDevMajor;
    public uint RDevMinor;
    public uint DevMajor;
    public uint DevMinor;
    public ulong MntId;

    public readonly uint FileType => Mode & ModeBits.S_IFMT;
    public readonly bool IsDirectory => FileType == ModeBits.S_IFDIR;
    public readonly bool IsRegular => FileType == ModeBits.S_IFREG;
    public readonly bool IsSymlink => FileType == ModeBits.S_IFLNK;
    public readonly uint RDev => Sys.MakeDev(RDevMajor, RDevMinor);
    public readonly ulong Dev => ((ulong)DevMajor << 32) | DevMinor;
}

/// <summary>st_mode bits.</summary>
public static class ModeBits
{
    public const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000;
    public const uint S_IFBLK = 0x6000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;
    public const uint S_ISUID = 0x800, S_ISGID = 0x400, S_ISVTX = 0x200;

    /// <summary>The d_type a directory entry of this mode carries.</summary>
    public static byte DirentType(uint mode) => (byte)((mode & S_IFMT) >> 12);
}

public static unsafe partial class Sys
{
    public const uint STATX_BASIC_STATS = 0x7ff, STATX_BTIME = 0x800, STATX_MNT_ID = 0x1000;

    [LibraryImport(Libc, EntryPoint = "statx", SetLastError = true)]
    public static partial int Statx(int dirfd, byte* path, int flags, uint mask, Statx* buf);

    /// <summary>statx of an open descriptor (AT_EMPTY_PATH).</summary>
    public static int FStatx(int fd, out Statx st)
    {
        byte empty = 0;
        fixed (Statx* p = &st) return Statx(fd, &empty, AT_EMPTY_PATH, STATX_BASIC_STATS, p);
    }

    /// <summary>statx of a name in a directory, never following a final symlink.</summary>
    public static int LStatxAt(int dirfd, string name, out Statx st)
    {
        Span<byte> buf = stackalloc byte[PathBytes.MaxStack];
        var path = PathBytes.NulTerminated(name, buf);
        fixed (byte* n = path)
        fixed (Statx* p = &st)
            return Statx(dirfd, n, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, p);
    }

    public static uint MakeDev(uint major, uint minor) =>
        (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);

    public static uint Major(uint dev) => (dev >> 8) & 0xfff;
    public static uint Minor(uint dev) => (dev & 0xff) | ((dev >> 12) & 0xfff00);
}
