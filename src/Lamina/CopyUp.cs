using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// Copy-up: the object is built under a temporary name in the branch's work dir with its data,
/// owner, mode, xattrs and times, then renamed into place in one step, so no half-copied object is
/// ever visible. Data goes by FICLONE, else copy_file_range, else read/write, keeping holes.
/// </summary>
public sealed partial class UnionFileSystem
{
    private const int CopyChunk = 1 << 20;

    /// <summary>Copies the object at <paramref name="path"/> up into branch <paramref name="b"/> (its parent chain first).</summary>
    internal Errno CopyUpTo(string path, Branch b, bool withData, bool metadataOnly = false)
    {
        if (path.Length == 0) return Errno.None;
        var e = PrepareDirectory(UnionPath.Parent(path), b);
        if (e != Errno.None) return e;
        e = Resolve(path, out var res);
        if (e != Errno.None) return e;
        using (res)
        {
            if (!res.Exists) return Errno.ENOENT;
            var src = res.Top;
            if (src.Branch == b && !src.IsIndex) return Errno.None;
            var dstDir = res.ParentLayerIn(b);
            if (dstDir is null) return Errno.EIO;
            ulong ino = ComputeIno(res);
            int work = b.WorkFd!.Fd;

            // A lower hard link whose other name was copied up already: link to that copy.
            if (src.St.IsRegular && src.St.NLink > 1 && _options.Index && b.IndexFd is not null &&
                BranchIo.Stat(b.IndexFd.Fd, IndexName(ino), out _) == Errno.None)
            {
                e = Sys.LinkAt(b.IndexFd.Fd, IndexName(ino), dstDir.DirFd!.Fd, res.Name, 0) == 0 ? Errno.None : Sys.LastErrno;
                if (e == Errno.None) AfterCopyUp(path, ino, res.Name, dstDir, moveHandles: true, isDir: false);
                return e;
            }

            // overlayfs metacopy: chmod/chown/utimes/xattr changes copy only metadata; the data stays below.
            bool metacopy = metadataOnly && _options.Metacopy && src.St.IsRegular && src.St.NLink <= 1 && !src.IsMetacopy && !src.IsIndex;
            string tmp = b.NextTempName();
            e = BuildCopy(src, res.Data, work, tmp, withData && !metacopy, path);
            if (e == Errno.None && metacopy) e = MakeMetacopy(work, tmp, src);
            if (e == Errno.None) e = CopyMetadata(src, work, tmp, ino);
            if (e == Errno.None && src.St.IsRegular && src.St.NLink > 1 && _options.Index && b.IndexFd is not null)
            {
                // Record the upper copy so the other names of this lower file find it.
                if (Sys.LinkAt(work, tmp, b.IndexFd.Fd, IndexName(ino), 0) != 0 && Sys.LastErrno != Errno.EEXIST)
                    e = Sys.LastErrno;
            }
            if (e == Errno.None) e = NotifyBeforePublish(ino, work, tmp); // observers: mirrored locks go onto the copy before it is visible
            if (e == Errno.None) e = BranchIo.Rename(work, tmp, dstDir.DirFd!.Fd, res.Name, Sys.RENAME_NOREPLACE);
            if (e != Errno.None)
            {
                BranchIo.RemoveTree(work, tmp);
                if (src.St.IsRegular && src.St.NLink > 1 && b.IndexFd is not null)
                    RemoveIndexIfOrphan(b, ino);
                return e;
            }
            AfterCopyUp(path, ino, res.Name, dstDir, moveHandles: !metacopy, src.IsDir);
            return Errno.None;
        }
    }

    /// <summary>Sizes the empty copy like the original (sparse) and marks it metadata-only, pointing at its data.</summary>
    private Errno MakeMetacopy(int work, string tmp, Layer src)
    {
        var e = BranchIo.OpenAt(work, tmp, Sys.O_WRONLY | Sys.O_NOFOLLOW, 0, out var fd);
        if (e != Errno.None) return e;
        using (fd) if (Sys.FTruncate(fd.Fd, (long)src.St.Size) != 0) return Sys.LastErrno;
        e = BranchIo.OpenPath(work, tmp, out var pfd);
        if (e != Errno.None) return e;
        using (pfd)
        {
            e = BranchIo.SetXattr(pfd.Fd, _markers.Metacopy, ReadOnlySpan<byte>.Empty);
            if (e != Errno.None) return e;
            return BranchIo.SetXattr(pfd.Fd, _markers.Redirect, System.Text.Encoding.UTF8.GetBytes("/" + src.RelPath));
        }
    }

    /// <summary>Turns a metadata-only copy in a writable branch into a full one (before its data is written).</summary>
    internal Errno CopyUpData(string path)
    {
        var e = Resolve(path, out var res);
        if (e != Errno.None) return e;
        using (res)
        {
            var top = res.Top;
            if (!top.IsMetacopy) return Errno.None;
            var b = top.Branch;
            int work = b.WorkFd!.Fd;
            string tmp = b.NextTempName();
            ulong ino = ComputeIno(res);
            e = BuildCopy(top, res.Data, work, tmp, withData: true, path);
            if (e == Errno.None) e = CopyMetadata(top, work, tmp, ino);
            if (e == Errno.None) e = BranchIo.Rename(work, tmp, top.ParentFd, top.Name);
            if (e != Errno.None)
            {
                BranchIo.RemoveTree(work, tmp);
                return e;
            }
            var dir = res.ParentLayerIn(b)!;
            AfterCopyUp(path, ino, res.Name, dir, moveHandles: true, isDir: false);
            return Errno.None;
        }
    }

    private void RemoveIndexIfOrphan(Branch b, ulong ino)
    {
        if (BranchIo.Stat(b.IndexFd!.Fd, IndexName(ino), out var st) == Errno.None && st.NLink == 1)
            BranchIo.Unlink(b.IndexFd.Fd, IndexName(ino));
    }

    /// <summary>Marks the parent impure, moves open handles onto the new copy and tells listeners.</summary>
    private void AfterCopyUp(string path, ulong ino, string name, Layer dstDir, bool moveHandles, bool isDir)
    {
        if (!dstDir.Impure) MarkImpure(dstDir.DirFd!.Fd);
        if (isDir) ShapeChanged();
        var node = _nodes.FindByIno(ino);
        if (node is null) return;
        _copyUpInProgress = true;
        try
        {
            if (moveHandles)
                foreach (var h in _nodes.HandlesOf(node)) h.ReopenAt(dstDir.DirFd!.Fd, name, dstDir.Branch);
            node.BackingBranch = dstDir.Branch;
        }
        finally { _copyUpInProgress = false; }
        NotifyAfterPublish(node); // observers
    }

    private void MarkImpure(int dirPathFd)
    {
        BranchIo.SetXattr(dirPathFd, _markers.Impure, "y"u8);
        ShapeChanged();
    }

    private Errno BuildCopy(Layer src, Layer data, int work, string tmp, bool withData, string path)
    {
        switch (src.St.FileType)
        {
            case ModeBits.S_IFREG:
            {
                var e = BranchIo.OpenAt(data.ParentFd, data.Name, Sys.O_RDONLY | Sys.O_NOFOLLOW | Sys.O_NOATIME, 0, out var input);
                if (e == Errno.EPERM) e = BranchIo.OpenAt(data.ParentFd, data.Name, Sys.O_RDONLY | Sys.O_NOFOLLOW, 0, out input);
                if (e != Errno.None) return e;
                using (input)
                {
                    e = BranchIo.OpenAt(work, tmp, Sys.O_WRONLY | Sys.O_CREAT | Sys.O_EXCL | Sys.O_NOFOLLOW, 0x180, out var output);
                    if (e != Errno.None) return e;
                    using (output)
                    {
                        if (!withData) return Errno.None;
                        e = CopyData(input.Fd, output.Fd, (long)src.St.Size, path);
                        // Like overlayfs (unless volatile): the data is on disk before the copy is published,
                        // so a power loss cannot leave a visible but empty or short file.
                        if (e == Errno.None && !_options.MountFlags.ContainsKey("volatile") && Sys.FSync(output.Fd) != 0) e = Sys.LastErrno;
                        return e;
                    }
                }
            }
            case ModeBits.S_IFDIR:
                return Sys.MkdirAt(work, tmp, 0x1C0) == 0 ? Errno.None : Sys.LastErrno;
            case ModeBits.S_IFLNK:
            {
                var target = Sys.ReadLink(src.ParentFd, src.Name);
                if (target is null) return Sys.LastErrno;
                return Sys.SymlinkAt(target, work, tmp) == 0 ? Errno.None : Sys.LastErrno;
            }
            default:
                return Sys.MknodAt(work, tmp, src.St.Mode, src.St.RDev) == 0 ? Errno.None : Sys.LastErrno;
        }
    }

    /// <summary>Copies file data, keeping holes: only the data extents are copied, then the size is set.</summary>
    internal unsafe Errno CopyData(int input, int output, long size, string path)
    {
        if (_options.CopyFaultInjector?.Invoke(path) is { } fault && fault != Errno.None) return fault;
        if (size == 0) return Errno.None;
        if (Sys.Ioctl(output, Sys.FICLONE, (nint)input) == 0) return Errno.None;
        long pos = 0;
        bool useCopyRange = true;
        var buffer = new byte[CopyChunk];
        while (pos < size)
        {
            long dataStart = Sys.LSeek(input, pos, Sys.SEEK_DATA);
            if (dataStart < 0)
            {
                if (Sys.LastErrno == Errno.ENXIO) break; // only a hole remains
                dataStart = pos;
            }
            long dataEnd = Sys.LSeek(input, dataStart, Sys.SEEK_HOLE);
            if (dataEnd < 0 || dataEnd > size) dataEnd = size;
            long off = dataStart;
            while (off < dataEnd)
            {
                if (_options.CopyFaultInjector?.Invoke(path) is { } f && f != Errno.None) return f;
                long want = Math.Min(CopyChunk, dataEnd - off);
                long n = -1;
                if (useCopyRange)
                {
                    long inOff = off, outOff = off;
                    n = Sys.CopyFileRange(input, &inOff, output, &outOff, (nuint)want, 0);
                    if (n < 0)
                    {
                        var ce = Sys.LastErrno;
                        if (ce is Errno.EXDEV or Errno.EINVAL or Errno.EOPNOTSUPP or Errno.ENOSYS or Errno.EBADF) useCopyRange = false;
                        else if (ce != Errno.EINTR) return ce;
                        continue;
                    }
                }
                else
                {
                    n = Sys.PRead(input, buffer.AsSpan(0, (int)want), off);
                    if (n < 0) { if (Sys.LastErrno == Errno.EINTR) continue; return Sys.LastErrno; }
                    long written = 0;
                    while (written < n)
                    {
                        long w = Sys.PWrite(output, buffer.AsSpan((int)written, (int)(n - written)), off + written);
                        if (w < 0) { if (Sys.LastErrno == Errno.EINTR) continue; return Sys.LastErrno; }
                        written += w;
                    }
                }
                if (n == 0) break; // the file shrank under us
                off += n;
            }
            pos = dataEnd;
        }
        return Sys.FTruncate(output, size) == 0 ? Errno.None : Sys.LastErrno;
    }

    /// <summary>Copies xattrs (except the union's own), records the origin, then owner, mode and times, in that order.</summary>
    private Errno CopyMetadata(Layer src, int work, string tmp, ulong ino)
    {
        var e = BranchIo.OpenPath(src.ParentFd, src.Name, out var srcFd);
        if (e != Errno.None) return e;
        using (srcFd)
        {
            e = BranchIo.OpenPath(work, tmp, out var dstFd);
            if (e != Errno.None) return e;
            using (dstFd)
            {
                e = CopyXattrs(srcFd.Fd, dstFd.Fd);
                if (e != Errno.None) return e;
                var oe = WriteOrigin(dstFd.Fd, ino);
                if (oe != Errno.None && !(src.St.IsSymlink || oe is Errno.EOPNOTSUPP or Errno.EPERM)) return oe;
                e = BranchIo.Chown(work, tmp, src.St.Uid, src.St.Gid);
                if (e != Errno.None && Sys.GetEUid() == 0) return e;
                if (!src.St.IsSymlink)
                {
                    e = BranchIo.ChmodPath(dstFd.Fd, src.St.Mode);
                    if (e != Errno.None) return e;
                }
                return BranchIo.SetTimes(work, tmp, BranchIo.ToTimespec(src.St.ATime), BranchIo.ToTimespec(src.St.MTime));
            }
        }
    }

    private static Errno CopyXattrs(int srcPathFd, int dstPathFd)
    {
        var e = BranchIo.ListXattr(srcPathFd, out var names);
        if (e is Errno.EOPNOTSUPP or Errno.EPERM) return Errno.None;
        if (e != Errno.None) return e;
        foreach (var name in names)
        {
            if (Markers.IsPrivateXattr(name)) continue;
            var value = BranchIo.GetXattr(srcPathFd, name);
            if (value is null) continue;
            var se = BranchIo.SetXattr(dstPathFd, name, value);
            // Some namespaces cannot be written here (security.* without privilege); overlayfs skips those too.
            if (se != Errno.None && se is not (Errno.EOPNOTSUPP or Errno.EPERM)) return se;
        }
        return Errno.None;
    }
}
