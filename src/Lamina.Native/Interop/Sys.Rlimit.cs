using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    public const int RLIMIT_NOFILE = 7;

    [StructLayout(LayoutKind.Sequential)]
    public struct RLimit { public ulong Cur; public ulong Max; }

    [LibraryImport(Libc, EntryPoint = "getrlimit", SetLastError = true)]
    public static partial int GetRLimit(int resource, RLimit* limit);

    [LibraryImport(Libc, EntryPoint = "setrlimit", SetLastError = true)]
    public static partial int SetRLimit(int resource, RLimit* limit);

    /// <summary>Raises the soft descriptor limit to the hard limit, so the daemon does not run out before its callers.</summary>
    public static ulong RaiseDescriptorLimit()
    {
        RLimit l;
        if (GetRLimit(RLIMIT_NOFILE, &l) != 0) return 0;
        l.Cur = l.Max;
        SetRLimit(RLIMIT_NOFILE, &l);
        GetRLimit(RLIMIT_NOFILE, &l);
        return l.Cur;
    }
}
