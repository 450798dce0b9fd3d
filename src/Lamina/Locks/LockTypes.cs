namespace Lamina.Locks;

/// <summary>Which lock family a request belongs to. POSIX and OFD locks share one byte-range table; flock locks have their own.</summary>
public enum LockKind
{
    /// <summary>fcntl F_SETLK/F_SETLKW: owned by a process (over FUSE: the kernel's lock owner id).</summary>
    Posix,
    /// <summary>fcntl F_OFD_SETLK: owned by an open file description; never in deadlock detection.</summary>
    Ofd,
    /// <summary>flock(2): whole-file, owned by an open file description.</summary>
    Flock,
}

/// <summary>The l_type values of struct flock.</summary>
public static class LockType
{
    public const short Read = 0, Write = 1, Unlock = 2;

    public static string Name(short type) => type switch { Read => "READ", Write => "WRITE", _ => "UNLCK" };
}

/// <summary>How the lock table reaches the branch files.</summary>
public enum LockMirroring
{
    /// <summary>Every granted lock is also held as an OFD lock (or flock) on the branch file behind the node.</summary>
    Mirror,
    /// <summary>Locks live in the union's table only.</summary>
    Local,
}

/// <summary>
/// One lock request on a union node. <paramref name="End"/> is inclusive; <see cref="long.MaxValue"/>
/// means "to the end of the file, wherever it is" (OFFSET_MAX). <paramref name="Handle"/> is the open
/// file the request came through: locks taken through it go when it is released, and mirroring
/// opens the branch file through it.
/// </summary>
public readonly record struct LockRequest(LockKind Kind, ulong Owner, short Type, long Start, long End, int Pid, UnionHandle? Handle)
{
    public const long ToEnd = long.MaxValue;

    /// <summary>A whole-file flock request (LOCK_SH = Read, LOCK_EX = Write, LOCK_UN = Unlock).</summary>
    public static LockRequest Flock(ulong owner, short type, int pid, UnionHandle? handle) => new(LockKind.Flock, owner, type, 0, ToEnd, pid, handle);

    /// <summary>Converts the l_start/l_len form of struct flock (already made absolute) to start/end, as fcntl(2) does.</summary>
    public static bool FromStartLen(long start, long len, out long s, out long e)
    {
        s = start; e = ToEnd;
        if (len > 0) { if (start > long.MaxValue - len + 1) return false; e = start + len - 1; }
        else if (len < 0) { e = start - 1; s = start + len; }
        return s >= 0 && e >= s;
    }
}

/// <summary>A lock as the table reports it (F_GETLK answers, <c>lamina locks</c>).</summary>
/// <param name="Mirror">The branch file the lock is also held on, when mirrored.</param>
/// <param name="External">True when the holder is not in the union's table: it was found on the branch file (another mount, a direct user, another host).</param>
public sealed record LockInfo(LockKind Kind, ulong Owner, short Type, long Start, long End, int Pid, string? Path, string? Mirror = null, bool External = false)
{
    /// <summary>l_len as fcntl reports it: 0 for "to the end".</summary>
    public long Length => End == LockRequest.ToEnd ? 0 : End - Start + 1;
}
