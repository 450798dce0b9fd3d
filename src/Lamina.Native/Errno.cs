namespace Lamina.Native;

/// <summary>Linux errno values (x86_64 and aarch64 share these).</summary>
public enum Errno
{
    None = 0,
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
    EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, ENOTBLK = 15,
    EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22,
    ENFILE = 23, EMFILE = 24, ENOTTY = 25, ETXTBSY = 26, EFBIG = 27, ENOSPC = 28, ESPIPE = 29,
    EROFS = 30, EMLINK = 31, EPIPE = 32, EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36,
    ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENOMSG = 42, ENODATA = 61, ENOLINK = 67,
    EPROTO = 71, EOVERFLOW = 75, EBADFD = 77, EOPNOTSUPP = 95, EADDRINUSE = 98,
    ECONNABORTED = 103, ENOTCONN = 107, ETIMEDOUT = 110, ESTALE = 116, EDQUOT = 122,
    ECANCELED = 125,
}

/// <summary>Thrown where a native call fails and the caller wants an exception rather than an errno result.</summary>
public sealed class ErrnoException : IOException
{
    public ErrnoException(Errno errno, string operation, string? subject = null)
        : base(Format(errno, operation, subject), -(int)errno)
    {
        Errno = errno;
        Operation = operation;
        Subject = subject;
    }

    public Errno Errno { get; }
    public string Operation { get; }
    public string? Subject { get; }

    private static string Format(Errno errno, string operation, string? subject) =>
        subject is null
            ? $"{operation}: {Sys.StrError(errno)} ({errno})"
            : $"{operation} {subject}: {Sys.StrError(errno)} ({errno})";
}
