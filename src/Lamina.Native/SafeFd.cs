using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Lamina.Native;

/// <summary>An owned file descriptor, closed exactly once.</summary>
public sealed class SafeFd : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeFd() : base(ownsHandle: true) { }

    public SafeFd(int fd, bool ownsHandle = true) : base(ownsHandle) => SetHandle(fd);

    /// <summary>The raw descriptor. Valid only while this handle is alive and not disposed.</summary>
    public int Fd => (int)handle;

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>
    /// Takes a reference (<see cref="SafeHandle.DangerousAddRef"/>) unless the handle is closed already:
    /// while it is held, a concurrent Dispose cannot close the descriptor. Give it back with DangerousRelease.
    /// </summary>
    public bool TryAddRef()
    {
        bool added = false;
        try { DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { }
        return added;
    }

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;

    /// <summary>Wraps a raw result from a native call, or throws naming the operation.</summary>
    public static SafeFd FromResult(int fd, string operation, string? subject = null)
    {
        if (fd < 0) throw new ErrnoException(Sys.LastErrno, operation, subject);
        return new SafeFd(fd);
    }

    public override string ToString() => $"fd {Fd}";
}
