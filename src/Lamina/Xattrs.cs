using System.Text;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// Extended attributes through the union. The union's own markers (trusted.overlay.*, user.overlay.*,
/// trusted.lamina.*, user.lamina.*) are neither listed, read, written nor removed. Writes copy up.
/// All calls go through an O_PATH descriptor, so symlinks in a branch are never followed.
/// </summary>
public sealed partial class UnionFileSystem
{
    /// <summary>getxattr: an empty <paramref name="value"/> asks for the size; ERANGE when it is too small.</summary>
    public Errno GetXattr(UnionNode node, string name, Span<byte> value, out int size)
    {
        size = 0;
        if (Markers.IsPrivateXattr(name)) return Errno.ENODATA;
        // Before every write to a file the kernel asks for security.capability (to drop it, killpriv):
        // a file open for writing is answered from that handle's descriptor, without resolving its path.
        if (_nodes.Writer(node) is { } writer && writer.GetXattr(name, value, out size) is var we && we != Errno.EBADF) return we;
        byte[]? data = null;
        var e = Guard(() =>
        {
            using var scope = Read();
            var re = ResolveNode(node, out var res);
            if (re != Errno.None) return re;
            using (res)
            {
                re = OpenTopPath(res, out var pfd);
                if (re != Errno.None) return re;
                using (pfd)
                {
                    data = BranchIo.GetXattr(pfd.Fd, name);
                    return data is null ? (Sys.LastErrno == Errno.None ? Errno.ENODATA : Sys.LastErrno) : Errno.None;
                }
            }
        });
        if (e != Errno.None) return e;
        size = data!.Length;
        if (value.Length == 0) return Errno.None;
        if (value.Length < data.Length) return Errno.ERANGE;
        data.CopyTo(value);
        return Errno.None;
    }

    /// <summary>listxattr as a NUL-separated list; empty <paramref name="list"/> asks for the size.</summary>
    public Errno ListXattr(UnionNode node, Span<byte> list, out int size)
    {
        size = 0;
        List<string> names = [];
        var e = Guard(() =>
        {
            using var scope = Read();
            var re = ResolveNode(node, out var res);
            if (re != Errno.None) return re;
            using (res)
            {
                re = OpenTopPath(res, out var pfd);
                if (re != Errno.None) return re;
                using (pfd) return BranchIo.ListXattr(pfd.Fd, out names);
            }
        });
        if (e != Errno.None) return e;
        var visible = names.Where(n => !Markers.IsPrivateXattr(n)).ToList();
        int total = visible.Sum(n => Encoding.UTF8.GetByteCount(n) + 1);
        size = total;
        if (list.Length == 0) return Errno.None;
        if (list.Length < total) return Errno.ERANGE;
        int pos = 0;
        foreach (var n in visible)
        {
            pos += Encoding.UTF8.GetBytes(n, list[pos..]);
            list[pos++] = 0;
        }
        return Errno.None;
    }

    /// <summary>All visible xattr names (convenience over <see cref="ListXattr(UnionNode, Span{byte}, out int)"/>).</summary>
    public Errno ListXattr(UnionNode node, out List<string> names)
    {
        names = [];
        var e = ListXattr(node, Span<byte>.Empty, out int size);
        if (e != Errno.None) return e;
        var buf = new byte[size];
        e = ListXattr(node, buf, out size);
        if (e != Errno.None) return e;
        names = Encoding.UTF8.GetString(buf, 0, size).Split('\0', StringSplitOptions.RemoveEmptyEntries).ToList();
        return Errno.None;
    }

    public Errno SetXattr(UnionNode node, string name, ReadOnlySpan<byte> value, int flags, Caller caller)
    {
        if (Markers.IsPrivateXattr(name)) return Errno.EPERM;
        var copy = value.ToArray();
        return ChangeXattr(node, pfd => BranchIo.SetXattr(pfd, name, copy, flags));
    }

    public Errno RemoveXattr(UnionNode node, string name, Caller caller)
    {
        if (Markers.IsPrivateXattr(name)) return Errno.ENODATA;
        // Nothing to remove is not a reason to copy up.
        var probe = GetXattr(node, name, Span<byte>.Empty, out _);
        if (probe != Errno.None) return probe;
        return ChangeXattr(node, pfd => BranchIo.RemoveXattr(pfd, name));
    }

    private Errno ChangeXattr(UnionNode node, Func<int, Errno> change) => Guard(() =>
    {
        using var scope = Write();
        var e = ResolveNode(node, out var res);
        if (e != Errno.None) return e;
        string path = _nodes.PathOf(node)!;
        res.Dispose();
        e = EnsureWritable(path, withData: true, out res, metadataOnly: true);
        if (e != Errno.None) return e;
        using (res)
        {
            e = OpenTopPath(res, out var pfd);
            if (e != Errno.None) return e;
            using (pfd) e = change(pfd.Fd);
            if (e == Errno.None) NotifyAttrib(node); // observers
            return e;
        }
    });

    private static Errno OpenTopPath(Resolution res, out SafeFd fd)
    {
        var top = res.Top;
        if (top.DirFd is not null)
        {
            fd = new SafeFd(top.DirFd.Fd, ownsHandle: false);
            return Errno.None;
        }
        return BranchIo.OpenPath(top.ParentFd, top.Name, out fd);
    }
}
