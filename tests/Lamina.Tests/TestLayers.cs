using System.Text;
using Lamina.Branches;
using Lamina.Native;

namespace Lamina.Tests;

/// <summary>
/// Real temporary directories for a union: lowers (top-most first), an upper and a work dir, with
/// helpers to build layer content directly (including whiteouts and markers) and to mount the engine.
/// </summary>
public sealed class TestLayers : IDisposable
{
    private readonly List<UnionFileSystem> _mounted = [];
    private readonly List<string> _mountPoints = [];

    public TestLayers(int lowers = 2, bool upper = true, string? root = null)
    {
        Root = root ?? Path.Combine("/tmp", "lamina-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Root);
        for (int i = 0; i < lowers; i++) Lowers.Add(Dir($"lower{i}"));
        if (upper)
        {
            Upper = Dir("upper");
            Work = Dir("work");
        }
    }

    public string Root { get; }
    public List<string> Lowers { get; } = [];
    public string? Upper { get; }
    public string? Work { get; }

    public string Dir(string name)
    {
        var p = Path.Combine(Root, name);
        Directory.CreateDirectory(p);
        return p;
    }

    public string OverlayOptions(string extra = "") =>
        $"lowerdir={string.Join(':', Lowers)}" + (Upper is null ? "" : $",upperdir={Upper},workdir={Work}") + (extra.Length > 0 ? "," + extra : "");

    public UnionFileSystem Mount(string extra = "", Action<UnionOptions>? configure = null)
    {
        var options = OptionParser.ParseOverlay(OverlayOptions(extra));
        configure?.Invoke(options);
        var fs = UnionFileSystem.Mount(options);
        _mounted.Add(fs);
        return fs;
    }

    /// <summary>Unmounts an engine early (e.g. to remount the same branches).</summary>
    public void Unmount(UnionFileSystem fs)
    {
        fs.Dispose();
        _mounted.Remove(fs);
    }

    // ---- building layer content directly -----------------------------------------------------

    public static void WriteFile(string layer, string rel, string content, uint? mode = null)
    {
        var p = Path.Combine(layer, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.WriteAllText(p, content);
        if (mode is { } m && OperatingSystem.IsLinux()) File.SetUnixFileMode(p, (UnixFileMode)m);
    }

    public static void MakeDir(string layer, string rel) => Directory.CreateDirectory(Path.Combine(layer, rel));

    /// <summary>An overlayfs whiteout: a 0/0 character device (needs root).</summary>
    public static void Whiteout(string layer, string rel)
    {
        var p = Path.Combine(layer, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        if (Sys.MknodAt(Sys.AT_FDCWD, p, ModeBits.S_IFCHR, 0) != 0) throw new ErrnoException(Sys.LastErrno, "mknod", p);
    }

    public static unsafe void SetXattr(string path, string name, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        fixed (byte* p = bytes)
            if (Sys.LSetXattr(path, name, p, (nuint)bytes.Length, 0) != 0) throw new ErrnoException(Sys.LastErrno, "setxattr " + name, path);
    }

    public static unsafe string? GetXattr(string path, string name)
    {
        var buf = new byte[4096];
        nint n;
        fixed (byte* p = buf) n = Sys.LGetXattr(path, name, p, (nuint)buf.Length);
        return n < 0 ? null : Encoding.UTF8.GetString(buf, 0, (int)n);
    }

    public static void Opaque(string layer, string rel) => SetXattr(Path.Combine(layer, rel), "trusted.overlay.opaque", "y");

    // ---- kernel overlayfs ------------------------------------------------------------------

    /// <summary>Mounts kernel overlayfs over these layers; null (with the reason) when that is impossible here.</summary>
    public string? MountKernel(out string? whyNot, string extra = "redirect_dir=on,index=off")
    {
        var mnt = Dir("kmnt-" + _mountPoints.Count);
        string opts = OverlayOptions(extra);
        if (Sys.Mount("overlay", mnt, "overlay", 0, opts) != 0)
        {
            whyNot = $"mount -t overlay failed: {Sys.StrError(Sys.LastErrno)} ({opts})";
            return null;
        }
        _mountPoints.Add(mnt);
        whyNot = null;
        return mnt;
    }

    public void UnmountKernel(string mnt)
    {
        Sys.Umount2(mnt, 0);
        _mountPoints.Remove(mnt);
    }

    public void Dispose()
    {
        foreach (var fs in _mounted) fs.Dispose();
        foreach (var m in _mountPoints) Sys.Umount2(m, Sys.MNT_DETACH);
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public static class TestExtensions
{
    public static string ReadText(this UnionFileSystem fs, string path)
    {
        var e = fs.Paths.ReadAllBytes(path, out var data);
        Assert.True(e == Errno.None, $"read {path}: {e}");
        return Encoding.UTF8.GetString(data);
    }

    public static void WriteText(this UnionFileSystem fs, string path, string text)
    {
        var e = fs.Paths.WriteAllBytes(path, Encoding.UTF8.GetBytes(text));
        Assert.True(e == Errno.None, $"write {path}: {e}");
    }

    public static List<string> List(this UnionFileSystem fs, string path)
    {
        var e = fs.Paths.ReadDir(path, out var entries);
        Assert.True(e == Errno.None, $"readdir {path}: {e}");
        return entries.Select(x => x.Name).Order(StringComparer.Ordinal).ToList();
    }

    public static Statx StatOk(this UnionFileSystem fs, string path)
    {
        var e = fs.Paths.Stat(path, out var st);
        Assert.True(e == Errno.None, $"stat {path}: {e}");
        return st;
    }

    public static void Ok(this Errno e, string what = "")
    {
        Assert.True(e == Errno.None, $"{what}: {e}");
    }
}
