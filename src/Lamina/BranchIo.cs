using System.Text;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// Small errno-returning helpers over <see cref="Sys"/> for work inside a branch: always relative to a
/// directory descriptor, one name at a time, never following a final symlink.
/// </summary>
internal static class BranchIo
{
    public const int DirPathFlags = Sys.O_PATH | Sys.O_DIRECTORY | Sys.O_NOFOLLOW | Sys.O_CLOEXEC;
    public const int DirReadFlags = Sys.O_RDONLY | Sys.O_DIRECTORY | Sys.O_NOFOLLOW | Sys.O_CLOEXEC;

    public static string ProcPath(int fd) => $"/proc/self/fd/{fd}";

    public static Errno Stat(int dirFd, string name, out Statx st) =>
        Sys.LStatxAt(dirFd, name, out st) == 0 ? Errno.None : Sys.LastErrno;

    public static Errno OpenAt(int dirFd, string name, int flags, uint mode, out SafeFd fd)
    {
        int r;
        do { r = Sys.OpenAt(dirFd, name, flags | Sys.O_CLOEXEC, mode); } while (r < 0 && Sys.LastErrno == Errno.EINTR);
        if (r < 0) { fd = null!; return Sys.LastErrno; }
        fd = new SafeFd(r);
        return Errno.None;
    }

    /// <summary>An O_PATH descriptor of the object itself (a symlink stays a symlink).</summary>
    public static Errno OpenPath(int dirFd, string name, out SafeFd fd) =>
        OpenAt(dirFd, name, Sys.O_PATH | Sys.O_NOFOLLOW, 0, out fd);

    /// <summary>Reads an xattr of the object an O_PATH descriptor refers to; null when absent.</summary>
    public static byte[]? GetXattr(int pathFd, string attr)
    {
        string p = ProcPath(pathFd);
        Span<byte> small = stackalloc byte[256];
        nint n = Sys.GetXattr(p, attr, small);
        if (n >= 0) return small[..(int)n].ToArray();
        if (Sys.LastErrno != Errno.ERANGE) return null;
        n = Sys.GetXattr(p, attr, Span<byte>.Empty);
        if (n < 0) return null;
        var big = new byte[n];
        n = Sys.GetXattr(p, attr, big);
        return n < 0 ? null : big[..(int)n];
    }

    public static string? GetXattrString(int pathFd, string attr)
    {
        var v = GetXattr(pathFd, attr);
        if (v is null) return null;
        int len = Array.IndexOf(v, (byte)0);
        return Encoding.UTF8.GetString(v, 0, len < 0 ? v.Length : len);
    }

    /// <summary>Xattr names of an object through a descriptor: f* calls for a normal one, the /proc link for O_PATH.</summary>
    public static Errno ListXattr(int fd, bool isPathFd, out List<string> names)
    {
        if (isPathFd) return ListXattr(fd, out names);
        names = [];
        Span<byte> small = stackalloc byte[512];
        nint size = Sys.FListXattr(fd, small);
        byte[] buf;
        if (size >= 0) buf = small[..(int)size].ToArray();
        else
        {
            if (Sys.LastErrno != Errno.ERANGE) return Sys.LastErrno;
            size = Sys.FListXattr(fd, Span<byte>.Empty);
            if (size < 0) return Sys.LastErrno;
            buf = new byte[size + 256];
            size = Sys.FListXattr(fd, buf);
            if (size < 0) return Sys.LastErrno;
        }
        AddNames(buf, (int)size, names);
        return Errno.None;
    }

    /// <summary>An xattr value through a descriptor (see <see cref="ListXattr(int, bool, out List{string})"/>); null when absent.</summary>
    public static byte[]? GetXattr(int fd, bool isPathFd, string attr)
    {
        if (isPathFd) return GetXattr(fd, attr);
        Span<byte> small = stackalloc byte[256];
        nint n = Sys.FGetXattr(fd, attr, small);
        if (n >= 0) return small[..(int)n].ToArray();
        if (Sys.LastErrno != Errno.ERANGE) return null;
        n = Sys.FGetXattr(fd, attr, Span<byte>.Empty);
        if (n < 0) return null;
        var big = new byte[n];
        n = Sys.FGetXattr(fd, attr, big);
        return n < 0 ? null : big[..(int)n];
    }

    public static string? AsString(byte[]? v)
    {
        if (v is null) return null;
        int len = Array.IndexOf(v, (byte)0);
        return Encoding.UTF8.GetString(v, 0, len < 0 ? v.Length : len);
    }

    public static Errno SetXattr(int pathFd, string attr, ReadOnlySpan<byte> value, int flags = 0) =>
        Sys.SetXattr(ProcPath(pathFd), attr, value, flags) == 0 ? Errno.None : Sys.LastErrno;

    public static Errno RemoveXattr(int pathFd, string attr) =>
        Sys.RemoveXattr(ProcPath(pathFd), attr) == 0 ? Errno.None : Sys.LastErrno;

    /// <summary>Adds the names of a NUL-separated listxattr(2) result.</summary>
    private static void AddNames(byte[] buf, int size, List<string> names)
    {
        int start = 0;
        for (int i = 0; i < size; i++)
        {
            if (buf[i] != 0) continue;
            if (i > start) names.Add(Encoding.UTF8.GetString(buf, start, i - start));
            start = i + 1;
        }
    }

    /// <summary>All xattr names of the object, or an errno.</summary>
    public static Errno ListXattr(int pathFd, out List<string> names)
    {
        names = [];
        string p = ProcPath(pathFd);
        nint size = Sys.ListXattr(p, Span<byte>.Empty);
        if (size < 0) return Sys.LastErrno;
        if (size == 0) return Errno.None;
        var buf = new byte[size + 256];
        size = Sys.ListXattr(p, buf);
        if (size < 0) return Sys.LastErrno;
        AddNames(buf, (int)size, names);
        return Errno.None;
    }

    public static Errno ChmodPath(int pathFd, uint mode) =>
        Sys.FChmodAt(Sys.AT_FDCWD, ProcPath(pathFd), mode & 0xFFF, 0) == 0 ? Errno.None : Sys.LastErrno;

    public static Errno Chown(int dirFd, string name, uint uid, uint gid) =>
        Sys.FChownAt(dirFd, name, uid, gid, Sys.AT_SYMLINK_NOFOLLOW) == 0 ? Errno.None : Sys.LastErrno;

    public static unsafe Errno SetTimes(int dirFd, string name, Sys.Timespec atime, Sys.Timespec mtime)
    {
        var times = stackalloc Sys.Timespec[2];
        times[0] = atime;
        times[1] = mtime;
        return Sys.UtimensAt(dirFd, name, times, Sys.AT_SYMLINK_NOFOLLOW) == 0 ? Errno.None : Sys.LastErrno;
    }

    public static Sys.Timespec ToTimespec(StatxTimestamp t) => new(t.Sec, t.Nsec);

    public static Errno Rename(int fromDir, string from, int toDir, string to, uint flags = 0) =>
        Sys.RenameAt2(fromDir, from, toDir, to, flags) == 0 ? Errno.None : Sys.LastErrno;

    public static Errno Unlink(int dirFd, string name, bool dir = false) =>
        Sys.UnlinkAt(dirFd, name, dir ? Sys.AT_REMOVEDIR : 0) == 0 ? Errno.None : Sys.LastErrno;

    /// <summary>Reads every entry of a directory opened for reading.</summary>
    public static Errno ReadDir(int dirFd, out List<(string Name, byte Type, ulong Ino)> entries)
    {
        var list = Sys.ReadDirectory(dirFd);
        entries = list ?? [];
        return list is null ? Sys.LastErrno : Errno.None;
    }

    /// <summary>Removes a name and, for a directory, everything below it (used for the work dir only).</summary>
    public static Errno RemoveTree(int dirFd, string name)
    {
        if (Stat(dirFd, name, out var st) != Errno.None) return Sys.LastErrno;
        if (!st.IsDirectory) return Unlink(dirFd, name);
        var e = OpenAt(dirFd, name, DirReadFlags, 0, out var sub);
        if (e != Errno.None) return e;
        using (sub) RemoveContents(sub.Fd);
        return Unlink(dirFd, name, dir: true);
    }

    public static void RemoveContents(int dirFd)
    {
        if (ReadDir(dirFd, out var entries) != Errno.None) return;
        foreach (var (name, type, _) in entries)
        {
            if (type == Sys.DT_DIR) RemoveTree(dirFd, name);
            else if (Unlink(dirFd, name) == Errno.EISDIR) RemoveTree(dirFd, name);
        }
    }

    public static bool IsWhiteoutDevice(in Statx st) =>
        st.FileType == ModeBits.S_IFCHR && st.RDevMajor == 0 && st.RDevMinor == 0;
}
