using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>
/// Per-thread identity. glibc's setgroups/setuid broadcast to every thread of the process, so the
/// per-thread forms are raw system calls: a worker takes on a caller's identity without touching
/// the others.
/// </summary>
public static unsafe partial class Sys
{
    private const long SYS_setfsuid = 122, SYS_setfsgid = 123, SYS_setgroups = 116, SYS_gettid = 186;

    [LibraryImport(Libc, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall1(long number, long a);

    [LibraryImport(Libc, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall2p(long number, long a, uint* b);

    /// <summary>Sets this thread's filesystem uid; returns the previous one.</summary>
    public static int SetFsUid(uint uid) => (int)syscall1(SYS_setfsuid, uid);

    /// <summary>Sets this thread's filesystem gid; returns the previous one.</summary>
    public static int SetFsGid(uint gid) => (int)syscall1(SYS_setfsgid, gid);

    /// <summary>
    /// Sets this thread's filesystem uid and gid and returns the previous pair, to be set back the
    /// same way. Leaving fsuid 0 lowers the thread's filesystem capabilities (CAP_DAC_OVERRIDE,
    /// CAP_CHOWN, CAP_FOWNER, ...); going back to 0 raises them again.
    /// </summary>
    public static (uint Uid, uint Gid) SwapFsIdentity(uint uid, uint gid)
    {
        uint oldGid = (uint)SetFsGid(gid);
        uint oldUid = (uint)SetFsUid(uid);
        return (oldUid, oldGid);
    }

    /// <summary>Sets this thread's supplementary groups only.</summary>
    public static int SetThreadGroups(ReadOnlySpan<uint> groups)
    {
        fixed (uint* p = groups) return (int)syscall2p(SYS_setgroups, groups.Length, p);
    }

    public static int GetTid() => (int)syscall1(SYS_gettid, 0);

    [LibraryImport(Libc, EntryPoint = "getuid")] public static partial uint GetUid();
    [LibraryImport(Libc, EntryPoint = "geteuid")] public static partial uint GetEUid();
    [LibraryImport(Libc, EntryPoint = "getgid")] public static partial uint GetGid();
    [LibraryImport(Libc, EntryPoint = "getegid")] public static partial uint GetEGid();
    [LibraryImport(Libc, EntryPoint = "getpid")] public static partial int GetPid();

    [LibraryImport(Libc, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);
}
