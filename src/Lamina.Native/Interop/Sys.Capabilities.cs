using System.Runtime.InteropServices;

namespace Lamina.Native;

/// <summary>
/// Per-thread capabilities (capget/capset act on the calling thread only): a worker can lower a
/// capability from its effective set while it acts for a caller, and raise it again afterwards
/// from the permitted set, without touching the other threads.
/// </summary>
public static unsafe partial class Sys
{
    /// <summary>Override quota limits and reserved blocks, among other resource limits.</summary>
    public const int CAP_SYS_RESOURCE = 24;

    private const uint LinuxCapabilityVersion3 = 0x20080522;

    [StructLayout(LayoutKind.Sequential)]
    private struct CapHeader { public uint Version; public int Pid; }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapData { public uint Effective; public uint Permitted; public uint Inheritable; }

    [LibraryImport(Libc, EntryPoint = "capget", SetLastError = true)]
    private static partial int capget(CapHeader* header, CapData* data);

    [LibraryImport(Libc, EntryPoint = "capset", SetLastError = true)]
    private static partial int capset(CapHeader* header, CapData* data);

    /// <summary>Whether this thread has <paramref name="capability"/> in its permitted set (so it may raise it).</summary>
    public static bool ThreadMayUseCapability(int capability)
    {
        var header = new CapHeader { Version = LinuxCapabilityVersion3 };
        CapData* data = stackalloc CapData[2];
        if (capget(&header, data) != 0) return false;
        return (data[capability >> 5].Permitted & (1u << (capability & 31))) != 0;
    }

    /// <summary>
    /// Raises or lowers <paramref name="capability"/> in this thread's effective set, keeping the
    /// permitted set. EPERM when raising one that is not permitted.
    /// </summary>
    public static Errno SetThreadEffectiveCapability(int capability, bool on)
    {
        var header = new CapHeader { Version = LinuxCapabilityVersion3 };
        CapData* data = stackalloc CapData[2];
        if (capget(&header, data) != 0) return LastErrno;
        uint bit = 1u << (capability & 31);
        ref var slot = ref data[capability >> 5];
        if (on && (slot.Permitted & bit) == 0) return Errno.EPERM;
        slot.Effective = on ? slot.Effective | bit : slot.Effective & ~bit;
        return capset(&header, data) == 0 ? Errno.None : LastErrno;
    }
}
