using Lamina.Native;

namespace Lamina;

/// <summary>
/// Path-based in-process API over the node API. Paths are relative to the union root ("/a/b" or "a/b").
/// Symlinks are not followed anywhere (stat is lstat; a symlink in the middle of a path gives ENOTDIR),
/// as for a filesystem driver. Every call returns an <see cref="Errno"/>; nothing throws for filesystem errors.
/// Objects are created with <see cref="Caller"/> (default: this process).
/// </summary>
public sealed class UnionPaths
{
    private readonly UnionFileSystem _fs;

    internal UnionPaths(UnionFileSystem fs) => _fs = fs;

    /// <summary>Identity used for created objects.</summary>
    public Caller Caller { get; set; } = Caller.Current;

    /// <summary>Umask applied to created objects.</summary>
    public uint Umask { get; set; } = 0x12; // 022

    /// <summary>Runs <paramref name="op"/> on the node at <paramref name="path"/>, holding a lookup on it meanwhile.</summary>
    public Errno WithNode(string path, Func<UnionNode, Errno> op)
    {
        var acquired = new List<UnionNode>();
        try
        {
            var node = _fs.Root;
            foreach (var comp in UnionPath.Normalize(path).Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var e = _fs.Lookup(node, comp, out var child);
                if (e != Errno.None) return e;
                acquired.Add(child!);
                node = child!;
            }
            return op(node);
        }
        finally
        {
            foreach (var n in acquired) _fs.Forget(n, 1);
        }
    }

    private Errno WithParent(string path, Func<UnionNode, string, Errno> op)
    {
        string norm = UnionPath.Normalize(path);
        if (norm.Length == 0) return Errno.EBUSY;
        // A parent that is not a directory fails here, before any other path is looked at, as in the kernel.
        return WithNode(UnionPath.Parent(norm), parent => parent.IsDirectory ? op(parent, UnionPath.FileName(norm)) : Errno.ENOTDIR);
    }

    public Errno Stat(string path, out Statx st)
    {
        Statx s = default;
        var e = WithNode(path, n => _fs.GetAttr(n, out s));
        st = s;
        return e;
    }

    public bool Exists(string path) => Stat(path, out _) == Errno.None;

    /// <summary>Opens (and with O_CREAT creates) a file. Dispose the handle when done.</summary>
    public Errno Open(string path, int flags, out UnionHandle? handle, uint mode = 0x1A4)
    {
        UnionHandle? h = null;
        var e = WithParent(path, (parent, name) =>
        {
            var le = _fs.Lookup(parent, name, out var node);
            if (le == Errno.None)
            {
                try
                {
                    if ((flags & Sys.O_CREAT) != 0 && (flags & Sys.O_EXCL) != 0) return Errno.EEXIST;
                    return _fs.Open(node!, flags, Caller, out h);
                }
                finally { _fs.Forget(node!, 1); }
            }
            if (le != Errno.ENOENT || (flags & Sys.O_CREAT) == 0) return le;
            var ce = _fs.Create(parent, name, mode, Umask, flags, Caller, out var created, out h);
            if (created is not null) _fs.Forget(created, 1);
            return ce;
        });
        handle = h;
        return e;
    }

    public Errno Create(string path, uint mode, out UnionHandle? handle) =>
        Open(path, Sys.O_CREAT | Sys.O_EXCL | Sys.O_RDWR, out handle, mode);

    public Errno ReadAllBytes(string path, out byte[] data)
    {
        data = [];
        var e = Open(path, Sys.O_RDONLY, out var h);
        if (e != Errno.None) return e;
        using (h!)
        {
            var ms = new MemoryStream();
            var buf = new byte[1 << 16];
            long off = 0;
            while (true)
            {
                e = h!.Read(buf, off, out int n);
                if (e != Errno.None) return e;
                if (n == 0) break;
                ms.Write(buf, 0, n);
                off += n;
            }
            data = ms.ToArray();
            return Errno.None;
        }
    }

    /// <summary>Creates or truncates <paramref name="path"/> and writes <paramref name="data"/>.</summary>
    public Errno WriteAllBytes(string path, ReadOnlySpan<byte> data, uint mode = 0x1A4)
    {
        var e = Open(path, Sys.O_WRONLY | Sys.O_CREAT | Sys.O_TRUNC, out var h, mode);
        if (e != Errno.None) return e;
        using (h!)
        {
            long off = 0;
            while (off < data.Length)
            {
                e = h!.Write(data[(int)off..], off, out int n);
                if (e != Errno.None) return e;
                off += n;
            }
            return Errno.None;
        }
    }

    /// <summary>The merged listing (without "." and "..").</summary>
    public Errno ReadDir(string path, out List<DirEntry> entries)
    {
        List<DirEntry> list = [];
        var e = WithNode(path, n =>
        {
            var oe = _fs.OpenDir(n, Caller, out var dh);
            if (oe != Errno.None) return oe;
            using (dh!)
            {
                return _fs.ReadDir(dh!, 2, (entry, _) => { list.Add(entry); return true; });
            }
        });
        entries = list;
        return e;
    }

    public Errno Mkdir(string path, uint mode = 0x1ED) =>
        WithParent(path, (p, name) => Forget(_fs.Mkdir(p, name, mode, Umask, Caller, out var n), n));

    public Errno Mknod(string path, uint mode, uint rdev = 0) =>
        WithParent(path, (p, name) => Forget(_fs.Mknod(p, name, mode, rdev, Umask, Caller, out var n), n));

    public Errno Symlink(string target, string path) =>
        WithParent(path, (p, name) => Forget(_fs.Symlink(p, name, target, Caller, out var n), n));

    public Errno Link(string existing, string newPath) =>
        WithNode(existing, src => WithParent(newPath, (p, name) => Forget(_fs.Link(src, p, name, Caller, out var n), n)));

    public Errno ReadLink(string path, out string target)
    {
        string t = "";
        var e = WithNode(path, n => _fs.ReadLink(n, out t));
        target = t;
        return e;
    }

    public Errno Unlink(string path) => WithParent(path, (p, name) => _fs.Unlink(p, name, Caller));

    public Errno Rmdir(string path) => WithParent(path, (p, name) => _fs.Rmdir(p, name, Caller));

    public Errno Rename(string from, string to, uint flags = 0) =>
        WithParent(from, (p1, n1) => WithParent(to, (p2, n2) => _fs.Rename(p1, n1, p2, n2, flags, Caller)));

    public Errno Chmod(string path, uint mode) =>
        WithNode(path, n => _fs.SetAttr(n, null, new SetAttrRequest { Mode = mode }, Caller, out _));

    public Errno Chown(string path, uint uid, uint gid) =>
        WithNode(path, n => _fs.SetAttr(n, null, new SetAttrRequest { Uid = uid, Gid = gid }, Caller, out _));

    public Errno Truncate(string path, long size) =>
        WithNode(path, n => _fs.SetAttr(n, null, new SetAttrRequest { Size = size }, Caller, out _));

    /// <summary>Sets times; null means "now".</summary>
    public Errno Utimes(string path, StatxTimestamp? atime, StatxTimestamp? mtime) =>
        WithNode(path, n => _fs.SetAttr(n, null, new SetAttrRequest
        {
            ATime = atime, MTime = mtime, ATimeNow = atime is null, MTimeNow = mtime is null,
        }, Caller, out _));

    public Errno GetXattr(string path, string name, out byte[] value)
    {
        byte[] v = [];
        var e = WithNode(path, n =>
        {
            var ge = _fs.GetXattr(n, name, Span<byte>.Empty, out int size);
            if (ge != Errno.None) return ge;
            var buf = new byte[size];
            ge = _fs.GetXattr(n, name, buf, out size);
            v = buf[..size];
            return ge;
        });
        value = v;
        return e;
    }

    public Errno SetXattr(string path, string name, ReadOnlySpan<byte> value, int flags = 0)
    {
        var copy = value.ToArray();
        return WithNode(path, n => _fs.SetXattr(n, name, copy, flags, Caller));
    }

    public Errno ListXattr(string path, out List<string> names)
    {
        List<string> list = [];
        var e = WithNode(path, n => _fs.ListXattr(n, out list));
        names = list;
        return e;
    }

    public Errno RemoveXattr(string path, string name) => WithNode(path, n => _fs.RemoveXattr(n, name, Caller));

    public Errno StatFs(out StatFs st)
    {
        var e = _fs.StatFs(_fs.Root, out var s);
        st = s;
        return e;
    }

    private Errno Forget(Errno e, UnionNode? node)
    {
        if (node is not null) _fs.Forget(node, 1);
        return e;
    }
}
