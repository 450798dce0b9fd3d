using Lamina.Native;

namespace Lamina.Fuse.Mounting;

/// <summary>A mount or unmount that could not be done, with the reason in words a user can act on.</summary>
public sealed class FuseMountException : Exception
{
    public FuseMountException(string message, Errno errno = Errno.None) : base(message) => Errno = errno;

    public Errno Errno { get; }
}
