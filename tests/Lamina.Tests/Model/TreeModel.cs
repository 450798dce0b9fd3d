using System.Text;
using Lamina.Native;

namespace Lamina.Tests.Model;

/// <summary>
/// A plain in-memory model of the merged tree with POSIX semantics for the operations under test.
/// Files are shared objects so hard links see each other's changes.
/// </summary>
public sealed class TreeModel : IFsDriver
{
    private sealed class FileData
    {
        public byte[] Content = [];
        public uint Mode = 0x1A4;
    }

    private sealed class Node
    {
        public bool IsDir;
        public uint DirMode = 0x1ED;
        public FileData? File;
        public SortedDictionary<string, Node> Children = new(StringComparer.Ordinal);
    }

    private readonly Node _root = new() { IsDir = true };

    private static (string Parent, string Name) Split(string path)
    {
        int i = path.LastIndexOf('/');
        return i < 0 ? ("", path) : (path[..i], path[(i + 1)..]);
    }

    /// <summary>Resolves a path: ENOENT for a missing component, ENOTDIR for a non-directory in the middle.</summary>
    private Errno Walk(string path, out Node node)
    {
        node = _root;
        if (path.Length == 0) return Errno.None;
        foreach (var part in path.Split('/'))
        {
            if (!node.IsDir) return Errno.ENOTDIR;
            if (!node.Children.TryGetValue(part, out var c)) return Errno.ENOENT;
            node = c;
        }
        return Errno.None;
    }

    private Errno Parent(string path, out Node dir, out string name)
    {
        (string p, name) = Split(path);
        var e = Walk(p, out dir);
        if (e != Errno.None) return e;
        return dir.IsDir ? Errno.None : Errno.ENOTDIR;
    }

    /// <summary>Adds an object while building the initial merged view from layer specs.</summary>
    public void Put(string path, bool isDir, string content = "")
    {
        var (p, name) = Split(path);
        Walk(p, out var dir);
        dir.Children[name] = isDir ? new Node { IsDir = true } : new Node { File = new FileData { Content = Encoding.UTF8.GetBytes(content) } };
    }

    public void Remove(string path)
    {
        var (p, name) = Split(path);
        if (Walk(p, out var dir) == Errno.None && dir.IsDir) dir.Children.Remove(name);
    }

    public void ClearDir(string path)
    {
        if (Walk(path, out var dir) == Errno.None && dir.IsDir) dir.Children.Clear();
    }

    public bool IsDir(string path) => Walk(path, out var n) == Errno.None && n.IsDir;
    public bool Exists(string path) => Walk(path, out _) == Errno.None;

    public Errno Create(string path, string content)
    {
        var e = Parent(path, out var dir, out var name);
        if (e != Errno.None) return e;
        if (dir.Children.ContainsKey(name)) return Errno.EEXIST;
        dir.Children[name] = new Node { File = new FileData { Content = Encoding.UTF8.GetBytes(content) } };
        return Errno.None;
    }

    public Errno Mkdir(string path)
    {
        var e = Parent(path, out var dir, out var name);
        if (e != Errno.None) return e;
        if (dir.Children.ContainsKey(name)) return Errno.EEXIST;
        dir.Children[name] = new Node { IsDir = true };
        return Errno.None;
    }

    public Errno Unlink(string path)
    {
        var e = Parent(path, out var dir, out var name);
        if (e != Errno.None) return e;
        if (!dir.Children.TryGetValue(name, out var n)) return Errno.ENOENT;
        if (n.IsDir) return Errno.EISDIR;
        dir.Children.Remove(name);
        return Errno.None;
    }

    public Errno Rmdir(string path)
    {
        var e = Parent(path, out var dir, out var name);
        if (e != Errno.None) return e;
        if (!dir.Children.TryGetValue(name, out var n)) return Errno.ENOENT;
        if (!n.IsDir) return Errno.ENOTDIR;
        if (n.Children.Count > 0) return Errno.ENOTEMPTY;
        dir.Children.Remove(name);
        return Errno.None;
    }

    /// <summary>renameat2 with the kernel's order of checks.</summary>
    public Errno Rename(string from, string to, uint flags)
    {
        var e = Parent(from, out var sdir, out var sname);
        if (e != Errno.None) return e;
        e = Parent(to, out var ddir, out var dname);
        if (e != Errno.None) return e;
        if (!sdir.Children.TryGetValue(sname, out var src)) return Errno.ENOENT;
        ddir.Children.TryGetValue(dname, out var dst);
        bool exchange = (flags & Sys.RENAME_EXCHANGE) != 0;
        if ((flags & Sys.RENAME_NOREPLACE) != 0 && dst is not null) return Errno.EEXIST;
        if (exchange && dst is null) return Errno.ENOENT;
        if (to.StartsWith(from + "/", StringComparison.Ordinal)) return Errno.EINVAL;
        if (from.StartsWith(to + "/", StringComparison.Ordinal)) return exchange ? Errno.EINVAL : Errno.ENOTEMPTY;
        if (src == dst || (dst is not null && !src.IsDir && !dst.IsDir && src.File == dst.File)) return Errno.None;
        if (exchange)
        {
            sdir.Children[sname] = dst!;
            ddir.Children[dname] = src;
            return Errno.None;
        }
        if (dst is not null)
        {
            if (src.IsDir && !dst.IsDir) return Errno.ENOTDIR;
            if (!src.IsDir && dst.IsDir) return Errno.EISDIR;
            if (dst.IsDir && dst.Children.Count > 0) return Errno.ENOTEMPTY;
        }
        sdir.Children.Remove(sname);
        ddir.Children[dname] = src;
        return Errno.None;
    }

    public Errno Link(string from, string to)
    {
        var e = Walk(from, out var src);
        if (e != Errno.None) return e;
        e = Parent(to, out var dir, out var name);
        if (e != Errno.None) return e;
        if (dir.Children.ContainsKey(name)) return Errno.EEXIST;
        if (src.IsDir) return Errno.EPERM;
        dir.Children[name] = new Node { File = src.File };
        return Errno.None;
    }

    private Errno FileAt(string path, out FileData file)
    {
        file = null!;
        var e = Walk(path, out var n);
        if (e != Errno.None) return e;
        if (n.IsDir) return Errno.EISDIR;
        file = n.File!;
        return Errno.None;
    }

    public Errno Write(string path, long offset, string data)
    {
        var e = FileAt(path, out var f);
        if (e != Errno.None) return e;
        var bytes = Encoding.UTF8.GetBytes(data);
        long end = offset + bytes.Length;
        if (end > f.Content.Length) Array.Resize(ref f.Content, (int)end);
        bytes.CopyTo(f.Content, offset);
        return Errno.None;
    }

    public Errno Truncate(string path, long size)
    {
        var e = FileAt(path, out var f);
        if (e != Errno.None) return e;
        Array.Resize(ref f.Content, (int)size);
        return Errno.None;
    }

    public Errno Chmod(string path, uint mode)
    {
        var e = Walk(path, out var n);
        if (e != Errno.None) return e;
        if (n.IsDir) n.DirMode = mode & 0xFFF;
        else n.File!.Mode = mode & 0xFFF;
        return Errno.None;
    }

    public Errno Touch(string path)
    {
        var e = Walk(path, out var n);
        if (e != Errno.None) return e;
        return n.IsDir ? Errno.EISDIR : Errno.None;
    }

    public SortedDictionary<string, Snap> Snapshot()
    {
        var result = new SortedDictionary<string, Snap>(StringComparer.Ordinal);
        void Visit(Node n, string prefix)
        {
            foreach (var (name, c) in n.Children)
            {
                string p = prefix.Length == 0 ? name : prefix + "/" + name;
                result[p] = c.IsDir
                    ? new Snap(ModeBits.S_IFDIR, c.DirMode, null)
                    : new Snap(ModeBits.S_IFREG, c.File!.Mode, Encoding.UTF8.GetString(c.File.Content));
                if (c.IsDir) Visit(c, p);
            }
        }
        Visit(_root, "");
        return result;
    }
}
