using System.Text;
using Lamina.Native;

namespace Lamina.Tests.Model;

/// <summary>One object in a tree snapshot: type, permission bits and (for files) content.</summary>
public sealed record Snap(uint Type, uint Mode, string? Content)
{
    public override string ToString() => $"{TypeName(Type)} {Convert.ToString(Mode, 8)}{(Content is null ? "" : $" \"{Content}\"")}";
    public static string TypeName(uint t) => t switch { ModeBits.S_IFDIR => "dir", ModeBits.S_IFREG => "file", ModeBits.S_IFLNK => "link", _ => $"type{t:x}" };
}

/// <summary>The operations the model-based and differential tests apply to each system under test.</summary>
public interface IFsDriver
{
    Errno Create(string path, string content);
    Errno Mkdir(string path);
    Errno Unlink(string path);
    Errno Rmdir(string path);
    Errno Rename(string from, string to, uint flags);
    Errno Link(string from, string to);
    Errno Write(string path, long offset, string data);
    Errno Truncate(string path, long size);
    Errno Chmod(string path, uint mode);
    /// <summary>Open for writing without changing anything (triggers copy-up) and close.</summary>
    Errno Touch(string path);
    SortedDictionary<string, Snap> Snapshot();
}

/// <summary>The union engine through its path API.</summary>
public sealed class EngineDriver(UnionFileSystem fs) : IFsDriver
{
    public Errno Create(string path, string content)
    {
        var e = fs.Paths.Create(path, 0x1A4, out var h);
        if (e != Errno.None) return e;
        using (h!) return h!.Write(Encoding.UTF8.GetBytes(content), 0, out _);
    }

    public Errno Mkdir(string path) => fs.Paths.Mkdir(path, 0x1ED);
    public Errno Unlink(string path) => fs.Paths.Unlink(path);
    public Errno Rmdir(string path) => fs.Paths.Rmdir(path);
    public Errno Rename(string from, string to, uint flags) => fs.Paths.Rename(from, to, flags);
    public Errno Link(string from, string to) => fs.Paths.Link(from, to);

    public Errno Write(string path, long offset, string data)
    {
        var e = fs.Paths.Open(path, Sys.O_WRONLY, out var h);
        if (e != Errno.None) return e;
        using (h!) return h!.Write(Encoding.UTF8.GetBytes(data), offset, out _);
    }

    public Errno Truncate(string path, long size) => fs.Paths.Truncate(path, size);
    public Errno Chmod(string path, uint mode) => fs.Paths.Chmod(path, mode);

    public Errno Touch(string path)
    {
        var e = fs.Paths.Open(path, Sys.O_RDWR, out var h);
        h?.Dispose();
        return e;
    }

    public SortedDictionary<string, Snap> Snapshot()
    {
        var result = new SortedDictionary<string, Snap>(StringComparer.Ordinal);
        Walk("", result);
        return result;
    }

    private void Walk(string dir, SortedDictionary<string, Snap> result)
    {
        fs.Paths.ReadDir("/" + dir, out var entries).Ok("readdir " + dir);
        foreach (var e in entries)
        {
            string p = dir.Length == 0 ? e.Name : dir + "/" + e.Name;
            fs.Paths.Stat("/" + p, out var st).Ok("stat " + p);
            Assert.True((uint)e.Type << 12 == st.FileType, $"d_type of {p} disagrees with stat");
            Assert.True(e.Ino == st.Ino, $"d_ino of {p} ({e.Ino}) disagrees with st_ino ({st.Ino})");
            string? content = null;
            if (st.IsRegular)
            {
                fs.Paths.ReadAllBytes("/" + p, out var data).Ok("read " + p);
                content = Encoding.UTF8.GetString(data);
            }
            result[p] = new Snap(st.FileType, st.Mode & 0xFFFu, content);
            if (st.IsDirectory) Walk(p, result);
        }
    }
}

/// <summary>A real directory tree (a kernel overlayfs mount) through system calls.</summary>
public sealed class KernelDriver(string root) : IFsDriver
{
    private string P(string path) => Path.Combine(root, path.TrimStart('/'));

    private static Errno R(long r) => r < 0 ? Sys.LastErrno : Errno.None;

    public Errno Create(string path, string content)
    {
        int fd = Sys.Open(P(path), Sys.O_CREAT | Sys.O_EXCL | Sys.O_WRONLY, 0x1A4);
        if (fd < 0) return Sys.LastErrno;
        try { return R(Sys.PWrite(fd, Encoding.UTF8.GetBytes(content), 0)); }
        finally { Sys.Close(fd); }
    }

    public Errno Mkdir(string path) => R(Sys.MkdirAt(Sys.AT_FDCWD, P(path), 0x1ED));
    public Errno Unlink(string path) => R(Sys.UnlinkAt(Sys.AT_FDCWD, P(path), 0));
    public Errno Rmdir(string path) => R(Sys.UnlinkAt(Sys.AT_FDCWD, P(path), Sys.AT_REMOVEDIR));
    public Errno Rename(string from, string to, uint flags) => R(Sys.RenameAt2(Sys.AT_FDCWD, P(from), Sys.AT_FDCWD, P(to), flags));
    public Errno Link(string from, string to) => R(Sys.LinkAt(Sys.AT_FDCWD, P(from), Sys.AT_FDCWD, P(to), 0));

    public Errno Write(string path, long offset, string data)
    {
        int fd = Sys.Open(P(path), Sys.O_WRONLY | Sys.O_NOFOLLOW);
        if (fd < 0) return Sys.LastErrno;
        try { return R(Sys.PWrite(fd, Encoding.UTF8.GetBytes(data), offset)); }
        finally { Sys.Close(fd); }
    }

    public Errno Truncate(string path, long size)
    {
        int fd = Sys.Open(P(path), Sys.O_WRONLY | Sys.O_NOFOLLOW);
        if (fd < 0) return Sys.LastErrno;
        try { return R(Sys.FTruncate(fd, size)); }
        finally { Sys.Close(fd); }
    }

    public Errno Chmod(string path, uint mode) => R(Sys.FChmodAt(Sys.AT_FDCWD, P(path), mode, 0));

    public Errno Touch(string path)
    {
        int fd = Sys.Open(P(path), Sys.O_RDWR | Sys.O_NOFOLLOW);
        if (fd < 0) return Sys.LastErrno;
        Sys.Close(fd);
        return Errno.None;
    }

    public SortedDictionary<string, Snap> Snapshot()
    {
        var result = new SortedDictionary<string, Snap>(StringComparer.Ordinal);
        Walk("", result);
        return result;
    }

    private void Walk(string dir, SortedDictionary<string, Snap> result)
    {
        foreach (var full in Directory.EnumerateFileSystemEntries(P(dir)))
        {
            string name = Path.GetFileName(full);
            string p = dir.Length == 0 ? name : dir + "/" + name;
            if (Sys.LStatxAt(Sys.AT_FDCWD, full, out var st) != 0)
            {
                // overlayfs lists a lower-only directory without filtering: a whiteout that hides
                // nothing shows in readdir but not in lookup. Lamina hides it; that is the defined view.
                Assert.True(Sys.LastErrno == Errno.ENOENT, $"lstat {p} on the kernel mount: {Sys.LastErrno}");
                continue;
            }
            string? content = st.IsRegular ? File.ReadAllText(full) : null;
            result[p] = new Snap(st.FileType, st.Mode & 0xFFFu, content);
            if (st.IsDirectory) Walk(p, result);
        }
    }
}
