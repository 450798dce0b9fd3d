using System.Runtime.InteropServices;
using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// An open file of the union. It follows its node: when the node is copied up, the handle is re-opened
/// onto the upper copy (under the engine's namespace lock), so a handle opened read-only before a
/// copy-up reads the data written after it. I/O takes no engine lock; the backing descriptor is
/// swapped atomically and kept alive by reference counting while a call uses it.
/// </summary>
public sealed class UnionHandle : IDisposable
{
    private readonly UnionFileSystem _fs;
    private SafeFd _fd;
    private Branch _branch;
    private int _released;

    internal UnionHandle(UnionFileSystem fs, UnionNode node, SafeFd fd, int flags, Branch branch)
    {
        _fs = fs;
        Node = node;
        _fd = fd;
        Flags = flags;
        _branch = branch;
        branch.AddOpenFile();
        fs.NotifyOpened(node); // observers
    }

    public UnionNode Node { get; }

    /// <summary>The open flags the handle was opened with.</summary>
    public int Flags { get; }

    /// <summary>The current backing descriptor (changes on copy-up). For kernel passthrough registration.</summary>
    public SafeFd BackingFd => Volatile.Read(ref _fd);

    /// <summary>The branch currently backing this handle.</summary>
    public Branch BackingBranch => Volatile.Read(ref _branch);

    /// <summary>Raised after the backing descriptor was replaced (copy-up), e.g. to re-register kernel passthrough.</summary>
    public event Action<UnionHandle>? BackingChanged;

    /// <summary>Device and inode of the backing file: identifies it for passthrough registration.</summary>
    public (ulong Dev, ulong Ino) BackingId
    {
        get
        {
            Statx st = default;
            Use(fd => Sys.FStatx(fd, out st) == 0 ? Errno.None : Sys.LastErrno);
            return (st.Dev, st.Ino);
        }
    }

    /// <summary>
    /// The current descriptor with a reference held, so a concurrent copy-up that swaps it cannot
    /// close it while it is in use (give it back with <see cref="SafeHandle.DangerousRelease"/>);
    /// null once the handle is released.
    /// </summary>
    private SafeFd? Acquire()
    {
        while (true)
        {
            if (Volatile.Read(ref _released) != 0) return null;
            var fd = Volatile.Read(ref _fd);
            if (fd.TryAddRef()) return fd;
            // Swapped and closed between the read and the AddRef: take the new one.
        }
    }

    /// <summary>Runs <paramref name="op"/> with the current descriptor (see <see cref="Acquire"/>).</summary>
    private Errno Use(Func<int, Errno> op)
    {
        if (Acquire() is not { } fd) return Errno.EBADF;
        try { return op(fd.Fd); }
        finally { fd.DangerousRelease(); }
    }

    // Read and Write take the descriptor themselves: no delegate, nothing allocated per call.
    public Errno Read(Span<byte> dest, long offset, out int count)
    {
        count = 0;
        if (Acquire() is not { } fd) return Errno.EBADF;
        try
        {
            nint r;
            do r = Sys.PRead(fd.Fd, dest, offset); while (r < 0 && Sys.LastErrno == Errno.EINTR);
            if (r < 0) return Sys.LastErrno;
            count = (int)r;
        }
        finally { fd.DangerousRelease(); }
        if (count > 0) _fs.NotifyAccessed(Node); // observers
        return Errno.None;
    }

    /// <summary>
    /// For a read the FUSE session splices from the backing file itself: the current descriptor (the
    /// session holds its own reference while it reads; one closed by a copy-up meanwhile makes it
    /// fall back to <see cref="Read"/>). The session then reports the read with <see cref="Spliced"/>.
    /// </summary>
    public SafeFd? ReadSource() => Volatile.Read(ref _released) != 0 ? null : Volatile.Read(ref _fd);

    /// <summary>A read from <see cref="ReadSource"/>'s descriptor returned <paramref name="count"/> bytes: reported as <see cref="Read"/> reports its own.</summary>
    public void Spliced(int count)
    {
        if (count > 0) _fs.NotifyAccessed(Node); // observers
    }

    /// <summary>fgetxattr on the backing file: an empty <paramref name="value"/> asks for the size. EBADF once released.</summary>
    internal Errno GetXattr(string name, Span<byte> value, out int size)
    {
        size = 0;
        if (Acquire() is not { } fd) return Errno.EBADF;
        try
        {
            nint n = Sys.FGetXattr(fd.Fd, name, value);
            if (n < 0) return Sys.LastErrno;
            size = (int)n;
            return Errno.None;
        }
        finally { fd.DangerousRelease(); }
    }

    public Errno Write(ReadOnlySpan<byte> src, long offset, out int count)
    {
        count = 0;
        if (Acquire() is not { } fd) return Errno.EBADF;
        try
        {
            nint r;
            do r = Sys.PWrite(fd.Fd, src, offset); while (r < 0 && Sys.LastErrno == Errno.EINTR);
            if (r < 0) return Sys.LastErrno;
            count = (int)r;
        }
        finally { fd.DangerousRelease(); }
        if (count > 0) _fs.NotifyModified(Node); // observers
        return Errno.None;
    }

    public Errno Truncate(long size) => Use(fd => Sys.FTruncate(fd, size) == 0 ? Errno.None : Sys.LastErrno);

    /// <summary>Nothing is buffered in the engine; present for the FUSE FLUSH call.</summary>
    public Errno Flush() => Volatile.Read(ref _released) != 0 ? Errno.EBADF : Errno.None;

    public Errno Fsync(bool dataOnly) => Use(fd => (dataOnly ? Sys.FDataSync(fd) : Sys.FSync(fd)) == 0 ? Errno.None : Sys.LastErrno);

    public Errno Fallocate(int mode, long offset, long length) =>
        Use(fd => Sys.FAllocate(fd, mode, offset, length) == 0 ? Errno.None : Sys.LastErrno);

    public Errno Lseek(long offset, int whence, out long result)
    {
        long r = -1;
        var e = Use(fd =>
        {
            r = Sys.LSeek(fd, offset, whence);
            return r < 0 ? Sys.LastErrno : Errno.None;
        });
        result = r;
        return e;
    }

    /// <summary>fstat of the backing file with the union inode.</summary>
    public Errno GetAttr(out Statx st)
    {
        Statx s = default;
        var e = Use(fd => Sys.FStatx(fd, out s) == 0 ? Errno.None : Sys.LastErrno);
        s.Ino = Node.Ino;
        st = s;
        return e;
    }

    /// <summary>Moves the handle onto the copy at <paramref name="name"/> in <paramref name="dirFd"/> (called under the namespace lock).</summary>
    internal void ReopenAt(int dirFd, string name, Branch branch)
    {
        int flags = (Flags & (Sys.O_ACCMODE | Sys.O_APPEND | Sys.O_DIRECT | Sys.O_SYNC | Sys.O_DSYNC | Sys.O_NOATIME)) | Sys.O_NOFOLLOW;
        if (BranchIo.OpenAt(dirFd, name, flags, 0, out var fresh) != Errno.None) return;
        var old = Interlocked.Exchange(ref _fd, fresh);
        var oldBranch = Interlocked.Exchange(ref _branch, branch);
        branch.AddOpenFile();
        oldBranch.RemoveOpenFile();
        old.Dispose();
        BackingChanged?.Invoke(this);
    }

    /// <summary>Closes the handle (FUSE RELEASE).</summary>
    public Errno Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return Errno.None;
        _fs.NotifyClosing(Node, Flags); // observers, before the handle stops counting as a writer
        _fs.ReleaseHandle(this);
        Volatile.Read(ref _branch).RemoveOpenFile();
        Volatile.Read(ref _fd).Dispose();
        _fs.NotifyClosed(Node, Flags); // observers
        return Errno.None;
    }

    public void Dispose() => Release();
}
