using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

/// <summary>
/// An inode-based filesystem served over FUSE. Every method has a default that answers ENOSYS,
/// which tells the kernel to stop asking (for most operations) — implement what the filesystem
/// supports and nothing else.
///
/// Node ids: LOOKUP, and every call that returns an <see cref="EntryOut"/>, hands the kernel one
/// reference to a node id; <see cref="Forget"/> gives references back. A node id must stay valid
/// until all its references are forgotten, and must not be reused while nodeid:generation is
/// still known to the kernel. Node 1 is the root and is never forgotten.
///
/// Threading: methods are called concurrently from several worker threads, for the same node too.
/// A method must not block for long: a call that waits for another party (a blocking lock) uses
/// the asynchronous form (<see cref="SetLkWait"/>), which frees the worker and is cancelled when the
/// caller is interrupted.
///
/// Names arrive as raw bytes (no terminating NUL): Linux names are bytes, not text.
/// </summary>
public interface IFuseFileSystem
{
    /// <summary>Called once after INIT is negotiated, before any other request.</summary>
    void Init(FuseConnectionInfo connection) { }

    /// <summary>Called when the kernel ends the session (DESTROY) or the connection is gone.</summary>
    void Destroy() { }

    Errno Lookup(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, out EntryOut entry) { entry = default; return Errno.ENOSYS; }

    /// <summary>The kernel dropped <paramref name="nlookup"/> references to <paramref name="nodeId"/>. No reply.</summary>
    void Forget(ulong nodeId, ulong nlookup) { }

    /// <summary><paramref name="fh"/> is set when the kernel asks through an open file (fstat).</summary>
    Errno GetAttr(in RequestContext ctx, ulong nodeId, ulong? fh, out AttrOut attr) { attr = default; return Errno.ENOSYS; }

    Errno SetAttr(in RequestContext ctx, ulong nodeId, in SetAttrIn changes, out AttrOut attr) { attr = default; return Errno.ENOSYS; }

    /// <summary>Writes the link target into <paramref name="target"/> (PATH_MAX bytes) and its length.</summary>
    Errno ReadLink(in RequestContext ctx, ulong nodeId, Span<byte> target, out int length) { length = 0; return Errno.ENOSYS; }

    Errno Symlink(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out EntryOut entry) { entry = default; return Errno.ENOSYS; }

    Errno Mknod(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out EntryOut entry) { entry = default; return Errno.ENOSYS; }

    Errno Mkdir(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out EntryOut entry) { entry = default; return Errno.ENOSYS; }

    Errno Unlink(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name) => Errno.ENOSYS;

    Errno Rmdir(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name) => Errno.ENOSYS;

    /// <summary><paramref name="flags"/>: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT.</summary>
    Errno Rename(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags) => Errno.ENOSYS;

    Errno Link(in RequestContext ctx, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out EntryOut entry) { entry = default; return Errno.ENOSYS; }

    /// <summary>
    /// Opens a file. Set <see cref="OpenOut.Fh"/> to the filesystem's handle. For kernel
    /// passthrough, register a backing file with <see cref="FuseSession.OpenBacking"/> and set
    /// <see cref="OpenReplyFlags.Passthrough"/> and <see cref="OpenOut.BackingId"/>.
    /// </summary>
    Errno Open(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open) { open = default; return Errno.ENOSYS; }

    Errno Create(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out EntryOut entry, out OpenOut open) { entry = default; open = default; return Errno.ENOSYS; }

    /// <summary>O_TMPFILE: an unnamed file in <paramref name="parent"/>.</summary>
    Errno TmpFile(in RequestContext ctx, ulong parent, int flags, uint mode, uint umask, out EntryOut entry, out OpenOut open) { entry = default; open = default; return Errno.ENOSYS; }

    /// <summary>
    /// READ without copying the data through this process: the descriptor whose bytes at
    /// <see cref="ReadIn.Offset"/> answer the request. The session moves them to the kernel with
    /// splice(2) (file to pipe to /dev/fuse), holding a reference on the descriptor meanwhile, and
    /// calls <see cref="Read"/> instead when it cannot: no descriptor given, one already closed, a
    /// request smaller than is worth it or larger than its pipe. ENOSYS (the default): always
    /// <see cref="Read"/>. What a read reports (access events, statistics) belongs in
    /// <see cref="ReadSourceDone"/>, which knows how much was read.
    /// </summary>
    Errno ReadSource(in RequestContext ctx, ulong nodeId, in ReadIn request, out SafeFd? source) { source = null; return Errno.ENOSYS; }

    /// <summary>
    /// A READ answered from <see cref="ReadSource"/>'s descriptor carries <paramref name="count"/>
    /// bytes (0 at the end of the file); called just before the reply is sent. Not called when the
    /// request failed, nor when the session fell back to <see cref="Read"/>.
    /// </summary>
    void ReadSourceDone(in RequestContext ctx, ulong nodeId, in ReadIn request, int count) { }

    /// <summary>Reads into <paramref name="buffer"/> (the reply itself: no copy) and says how much was read.</summary>
    Errno Read(in RequestContext ctx, ulong nodeId, in ReadIn request, Span<byte> buffer, out int count) { count = 0; return Errno.ENOSYS; }

    Errno Write(in RequestContext ctx, ulong nodeId, in WriteIn request, ReadOnlySpan<byte> data, out uint written) { written = 0; return Errno.ENOSYS; }

    Errno Flush(in RequestContext ctx, ulong nodeId, ulong fh, ulong lockOwner) => Errno.ENOSYS;

    Errno Release(in RequestContext ctx, ulong nodeId, in ReleaseIn request) => Errno.None;

    Errno Fsync(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) => Errno.ENOSYS;

    Errno StatFs(in RequestContext ctx, ulong nodeId, out KStatFs statfs) { statfs = default; return Errno.ENOSYS; }

    Errno SetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags) => Errno.ENOSYS;

    /// <summary>An empty <paramref name="value"/> asks for the size only; too small a buffer is ERANGE.</summary>
    Errno GetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> value, out int size) { size = 0; return Errno.ENOSYS; }

    /// <summary>NUL-separated names; an empty <paramref name="list"/> asks for the size only.</summary>
    Errno ListXattr(in RequestContext ctx, ulong nodeId, Span<byte> list, out int size) { size = 0; return Errno.ENOSYS; }

    Errno RemoveXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name) => Errno.ENOSYS;

    Errno OpenDir(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open) { open = default; return Errno.ENOSYS; }

    /// <summary>Adds entries after cookie <paramref name="offset"/> (0 = from the start) until the buffer is full or the directory ends.</summary>
    Errno ReadDir(in RequestContext ctx, ulong nodeId, ulong fh, long offset, ref DirEntryBuffer entries) => Errno.ENOSYS;

    Errno ReleaseDir(in RequestContext ctx, ulong nodeId, ulong fh) => Errno.None;

    Errno FsyncDir(in RequestContext ctx, ulong nodeId, ulong fh, bool dataOnly) => Errno.ENOSYS;

    /// <summary>Only asked when the mount does not use default_permissions.</summary>
    Errno Access(in RequestContext ctx, ulong nodeId, int mask) => Errno.ENOSYS;

    Errno GetLk(in RequestContext ctx, ulong nodeId, in LkIn request, out FileLock conflict) { conflict = default; return Errno.ENOSYS; }

    /// <summary>A non-blocking lock, unlock, or flock request.</summary>
    Errno SetLk(in RequestContext ctx, ulong nodeId, in LkIn request) => Errno.ENOSYS;

    /// <summary>
    /// A blocking lock request (F_SETLKW, flock without LOCK_NB). The worker thread is released
    /// while the task waits; <paramref name="cancel"/> fires when the caller is interrupted, and
    /// the answer is then EINTR. Unlocks come here too — flock(LOCK_UN) and the unlock the kernel
    /// sends at close arrive as SETLKW with type F_UNLCK — and must complete at once, or close()
    /// hangs.
    /// </summary>
    ValueTask<Errno> SetLkWait(RequestContext ctx, ulong nodeId, LkIn request, CancellationToken cancel) => ValueTask.FromResult(Errno.ENOSYS);

    Errno Fallocate(in RequestContext ctx, ulong nodeId, in FallocateIn request) => Errno.ENOSYS;

    Errno Lseek(in RequestContext ctx, ulong nodeId, ulong fh, long offset, int whence, out long result) { result = 0; return Errno.ENOSYS; }

    Errno CopyFileRange(in RequestContext ctx, ulong nodeId, in CopyFileRangeIn request, out uint copied) { copied = 0; return Errno.ENOSYS; }

    Errno Ioctl(in RequestContext ctx, ulong nodeId, in IoctlIn request, ReadOnlySpan<byte> input, Span<byte> output, out int result, out int outputSize) { result = 0; outputSize = 0; return Errno.ENOSYS; }

    Errno Poll(in RequestContext ctx, ulong nodeId, in PollIn request, out uint revents) { revents = 0; return Errno.ENOSYS; }
}
