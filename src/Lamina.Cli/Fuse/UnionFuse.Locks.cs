using Lamina.Fuse;
using Lamina.Fuse.Wire;
using Lamina.Locks;
using Lamina.Native;

namespace Lamina.Cli.Fuse;

/// <summary>
/// GETLK, SETLK and SETLKW served from the engine's lock table.
///
/// What the kernel sends (fs/fuse/file.c, fuse_lk_fill / fuse_setlk / fuse_file_flock):
/// <list type="bullet">
/// <item>the owner is fuse_lock_owner_id(fl_owner), a scrambled pointer: the process's files_struct
///   for POSIX locks, the struct file for OFD locks and for flock. OFD locks therefore arrive as
///   ordinary POSIX requests whose owner is the open file; only the owner id tells them apart, and
///   the table treats them as POSIX owners (which conflict, split and merge identically).</item>
/// <item>flock requests carry FUSE_LK_FLOCK and the whole range 0..OFFSET_MAX.</item>
/// <item>lk.pid is the caller's tgid in the daemon's pid namespace (0 for unlocks); a pid we return
///   from GETLK is translated back into the asking process's namespace by the kernel.</item>
/// <item>close(2) does not send an unlock: FLUSH carries the closing process's owner, and drops its
///   POSIX locks. flock (and, since the kernel marks them the same way, OFD) locks go on RELEASE,
///   flagged FUSE_RELEASE_FLOCK_UNLOCK; the engine also drops every lock taken through a handle
///   when the handle is released, which covers kernels that do not flag OFD locks.</item>
/// <item>SETLKW blocks in the daemon; a signal makes the kernel send INTERRUPT, the session cancels
///   the wait and answers EINTR.</item>
/// </list>
/// </summary>
public sealed partial class UnionFuse
{
    public Errno GetLk(in RequestContext ctx, ulong nodeId, in LkIn request, out FileLock conflict)
    {
        conflict = default;
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        var e = _union.Locks.Test(node, ToRequest(request), out var c);
        if (e != Errno.None) return e;
        conflict = c is null
            ? new FileLock { Start = request.Lk.Start, End = request.Lk.End, Type = (uint)LockType.Unlock }
            : new FileLock { Start = (ulong)c.Start, End = (ulong)c.End, Type = (uint)c.Type, Pid = c.Pid > 0 ? (uint)c.Pid : 0 };
        return Errno.None;
    }

    public Errno SetLk(in RequestContext ctx, ulong nodeId, in LkIn request)
    {
        var node = Node(nodeId);
        if (node is null) return Errno.ESTALE;
        return _union.Locks.Set(node, ToRequest(request));
    }

    public ValueTask<Errno> SetLkWait(RequestContext ctx, ulong nodeId, LkIn request, CancellationToken cancel)
    {
        var node = Node(nodeId);
        if (node is null) return ValueTask.FromResult(Errno.ESTALE);
        return _union.Locks.SetWait(node, ToRequest(request), cancel);
    }

    /// <summary>FLUSH: the owner closed a descriptor of the file, which drops all its POSIX locks on it.</summary>
    private void ReleaseLocksOnFlush(ulong nodeId, ulong lockOwner)
    {
        if (Node(nodeId) is { } node) _union.Locks.ReleaseOwner(node, lockOwner);
    }

    /// <summary>
    /// locks=mandatory: a write into a range another owner locked is refused (EAGAIN) or, for a
    /// blocking descriptor, waits. The kernel names the writer's lock owner only for direct I/O
    /// (FUSE_WRITE_LOCKOWNER); otherwise the writing process's pid identifies it.
    /// </summary>
    private Errno MandatoryWrite(in RequestContext ctx, in WriteIn w, UnionHandle h)
    {
        if (!_union.Locks.Mandatory) return Errno.None;
        ulong? owner = (w.WriteFlags & FuseConstants.WriteLockOwner) != 0 ? w.LockOwner : null;
        return _union.Locks.CheckWrite(h.Node, (long)w.Offset, w.Size, owner, (int)ctx.Pid, wait: (h.Flags & Sys.O_NONBLOCK) == 0);
    }

    /// <summary>locks=mandatory: truncation writes everything from the new size on (and from the old size, when it grows).</summary>
    private Errno MandatoryTruncate(in RequestContext ctx, UnionNode node, UnionHandle? h, long size)
    {
        if (!_union.Locks.Mandatory) return Errno.None;
        long from = size;
        if (_union.GetAttr(node, out var st) == Errno.None) from = Math.Min(size, (long)st.Size);
        return _union.Locks.CheckWrite(node, from, long.MaxValue, null, (int)ctx.Pid, wait: h is not null && (h.Flags & Sys.O_NONBLOCK) == 0);
    }

    private LockRequest ToRequest(in LkIn r)
    {
        var handle = _files.TryGetValue(r.Fh, out var f) ? f.Handle : null;
        bool flock = (r.LkFlags & FuseConstants.LkFlock) != 0;
        long start = (long)Math.Min(r.Lk.Start, long.MaxValue);
        long end = (long)Math.Min(r.Lk.End, long.MaxValue);
        return new LockRequest(flock ? LockKind.Flock : LockKind.Posix, r.Owner, (short)r.Lk.Type, start, end, (int)r.Lk.Pid, handle);
    }
}
