using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

/// <summary>
/// READ replies by splice(2). A plain reply costs two copies of the data: pread into the reply
/// buffer, then write to /dev/fuse. Spliced, the reply header is written into a pipe, the file's
/// page-cache pages are referenced into the pipe behind it (no copy), and the pipe is spliced to
/// /dev/fuse, which copies once into the request's pages. Each worker has its own pipe, made on
/// its first large read and sized for the largest request the pipe-size limits allow.
/// </summary>
internal sealed unsafe partial class Worker
{
    /// <summary>Below this, three system calls cost more than the copy they save.</summary>
    private const int SpliceThreshold = 32 * 1024;
    private const int PageSize = 4096;

    private int _pipeRead = -1, _pipeWrite = -1;
    private int _pipeData;        // the most data bytes one spliced reply may carry (0: no pipe)
    private bool _pipeTried;

    // Counted by this worker's thread alone; summed by FuseSession.ReadReplies.
    internal long SplicedReads, CopiedReads;

    private bool TrySpliceRead(in RequestContext ctx, ulong node, in ReadIn r)
    {
        if (r.Size < SpliceThreshold || _session.ReadSourceUnsupported) return false;
        if (!_pipeTried) MakePipe();
        if (r.Size > (uint)_pipeData) return false;
        var e = _fs.ReadSource(in ctx, node, in r, out var source);
        if (e == Errno.ENOSYS) { _session.ReadSourceUnsupported = true; return false; }
        if (e != Errno.None) { SendError(ctx.Unique, e); return true; }
        if (source is null || !source.TryAddRef()) return false;
        try { return SpliceRead(in ctx, node, in r, source.Fd); }
        finally { source.DangerousRelease(); }
    }

    private bool SpliceRead(in RequestContext ctx, ulong node, in ReadIn r, int fd)
    {
        ulong unique = ctx.Unique;
        long offset = (long)r.Offset;
        int size = (int)r.Size;
        var header = new OutHeader { Len = (uint)(OutHeaderSize + size), Error = 0, Unique = unique };
        if (Sys.Write(_pipeWrite, (byte*)&header, OutHeaderSize) != OutHeaderSize) { DrainPipe(); return false; }
        int got = 0;
        Errno failed = Errno.None;
        long at = offset;
        while (got < size)
        {
            nint n = Sys.Splice(fd, &at, _pipeWrite, null, (nuint)(size - got), Sys.SPLICE_F_NONBLOCK);
            if (n > 0) { got += (int)n; continue; }
            if (n < 0 && Sys.LastErrno == Errno.EINTR) continue;
            if (n < 0) failed = Sys.LastErrno;
            break; // 0: end of file
        }
        if (got == size)
        {
            // The whole reply is in the pipe: the kernel takes it in one piece or not at all
            // (ENOENT: the request was interrupted and is gone).
            try { _fs.ReadSourceDone(in ctx, node, in r, got); }
            catch { DrainPipe(); throw; }
            nint sent;
            do sent = Sys.Splice(_pipeRead, null, _fd, null, (nuint)(OutHeaderSize + size), 0);
            while (sent < 0 && Sys.LastErrno == Errno.EINTR);
            if (sent != OutHeaderSize + size) DrainPipe();
            SplicedReads++;
            return true;
        }
        // Short: end of file, or a descriptor that cannot splice (EINVAL). Take back what is in the
        // pipe and answer from the reply buffer, reading the rest as a plain read would.
        if (!ReadBack(OutHeaderSize + got)) return false;
        if (failed is Errno.EINVAL or Errno.EAGAIN && got < size)
        {
            nint n;
            do n = Sys.PRead(fd, _out + OutHeaderSize + got, (nuint)(size - got), offset + got);
            while (n < 0 && Sys.LastErrno == Errno.EINTR);
            if (n < 0 && got == 0) { SendError(unique, Sys.LastErrno); return true; }
            if (n > 0) got += (int)n;
        }
        else if (failed != Errno.None && got == 0) { SendError(unique, failed); return true; }
        _fs.ReadSourceDone(in ctx, node, in r, got);
        Send(unique, 0, got);
        CopiedReads++;
        return true;
    }

    /// <summary>Reads exactly <paramref name="length"/> bytes of the pipe into the reply buffer (header first).</summary>
    private bool ReadBack(int length)
    {
        int have = 0;
        while (have < length)
        {
            nint n = Sys.Read(_pipeRead, _out + have, (nuint)(length - have));
            if (n > 0) { have += (int)n; continue; }
            if (n < 0 && Sys.LastErrno == Errno.EINTR) continue;
            DrainPipe();
            return false;
        }
        return true;
    }

    /// <summary>Empties the pipe after a failed reply, so the next reply starts clean.</summary>
    private void DrainPipe()
    {
        while (Sys.Read(_pipeRead, _out, (nuint)_outCapacity) > 0) { }
    }

    private void MakePipe()
    {
        _pipeTried = true;
        int* fds = stackalloc int[2];
        if (Sys.Pipe2(fds, Sys.O_CLOEXEC | Sys.O_NONBLOCK) != 0) return;
        _pipeRead = fds[0];
        _pipeWrite = fds[1];
        // A reply needs a pipe slot for its header, one per data page, and one more when the offset
        // is not page-aligned. Ask for room for the largest request; ordinary users are held to
        // /proc/sys/fs/pipe-max-size (1 MiB by default), which still fits the usual 128 KiB readahead.
        int want = 1;
        while (want < _outCapacity + 2 * PageSize) want <<= 1;
        for (int size = want; size >= 64 * 1024; size >>= 1)
            if (Sys.Fcntl(_pipeWrite, Sys.F_SETPIPE_SZ, size) >= 0) break;
        int capacity = Sys.Fcntl(_pipeWrite, Sys.F_GETPIPE_SZ, 0);
        _pipeData = Math.Max(0, Math.Min(capacity - 2 * PageSize, _outCapacity - OutHeaderSize));
    }

    private void ClosePipe()
    {
        if (_pipeRead >= 0) Sys.Close(_pipeRead);
        if (_pipeWrite >= 0) Sys.Close(_pipeWrite);
        _pipeRead = _pipeWrite = -1;
    }
}
