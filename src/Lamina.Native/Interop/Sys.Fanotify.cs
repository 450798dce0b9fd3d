using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>struct fanotify_event_metadata (24 bytes); info records follow it up to <see cref="EventLen"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FanotifyEventMetadata
{
    public uint EventLen;
    public byte Vers;
    public byte Reserved;
    public ushort MetadataLen;
    public ulong Mask;
    public int Fd;
    public int Pid;
}

/// <summary>
/// fanotify(7), the part a listener in FID mode uses: with FAN_REPORT_DFID_NAME each event names the
/// directory it happened in by file handle, and the entry by name, and says which process caused it.
/// </summary>
public static unsafe partial class Sys
{
    // fanotify_init flags
    public const uint FAN_CLOEXEC = 0x1, FAN_NONBLOCK = 0x2, FAN_CLASS_NOTIF = 0x0;
    /// <summary>No bound on queued events or on marks (CAP_SYS_ADMIN only).</summary>
    public const uint FAN_UNLIMITED_QUEUE = 0x10, FAN_UNLIMITED_MARKS = 0x20;
    public const uint FAN_REPORT_DIR_FID = 0x400, FAN_REPORT_NAME = 0x800, FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME;

    // fanotify_mark flags
    public const uint FAN_MARK_ADD = 0x1, FAN_MARK_REMOVE = 0x2, FAN_MARK_DONT_FOLLOW = 0x4, FAN_MARK_ONLYDIR = 0x8;

    // events
    public const ulong FAN_MODIFY = 0x2, FAN_ATTRIB = 0x4, FAN_CLOSE_WRITE = 0x8, FAN_MOVED_FROM = 0x40, FAN_MOVED_TO = 0x80,
        FAN_CREATE = 0x100, FAN_DELETE = 0x200, FAN_DELETE_SELF = 0x400, FAN_MOVE_SELF = 0x800, FAN_Q_OVERFLOW = 0x4000,
        FAN_EVENT_ON_CHILD = 0x08000000, FAN_ONDIR = 0x40000000;

    /// <summary>Info record types (struct fanotify_event_info_header.info_type).</summary>
    public const byte FAN_EVENT_INFO_TYPE_FID = 1, FAN_EVENT_INFO_TYPE_DFID_NAME = 2, FAN_EVENT_INFO_TYPE_DFID = 3;

    public const byte FANOTIFY_METADATA_VERSION = 3;

    [LibraryImport(Libc, EntryPoint = "fanotify_init", SetLastError = true)]
    public static partial int FanotifyInit(uint flags, uint eventFileFlags);

    [LibraryImport(Libc, EntryPoint = "fanotify_mark", SetLastError = true)]
    private static partial int FanotifyMark(int fd, uint flags, ulong mask, int dirfd, byte* path);

    /// <summary>Marks (or unmarks) the object open as <paramref name="dirfd"/> itself.</summary>
    public static int FanotifyMarkFd(int fd, uint flags, ulong mask, int dirfd) => FanotifyMark(fd, flags, mask, dirfd, null);

    /// <summary>Marks (or unmarks) <paramref name="path"/> relative to <paramref name="dirfd"/>, not following a final symlink.</summary>
    public static int FanotifyMarkAt(int fd, uint flags, ulong mask, int dirfd, string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes) return FanotifyMark(fd, flags | FAN_MARK_DONT_FOLLOW, mask, dirfd, p);
    }
}
