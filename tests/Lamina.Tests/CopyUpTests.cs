using System.Text;
using Lamina.Native;

namespace Lamina.Tests;

public class CopyUpTests
{
    [Fact]
    public void Write_copies_up_with_metadata_and_leaves_lower_untouched()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "d/f", "lower data", 0x1E4 /* 0744 */);
        var lowerFile = Path.Combine(t.Lowers[0], "d/f");
        Sys.FChownAt(Sys.AT_FDCWD, lowerFile, 1234, 5678, 0);
        File.SetLastWriteTimeUtc(lowerFile, new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc));
        TestLayers.SetXattr(lowerFile, "user.color", "blue");
        TestLayers.SetXattr(Path.Combine(t.Lowers[0], "d"), "user.dir", "yes");
        var before = new Statx();
        Sys.LStatxAt(Sys.AT_FDCWD, lowerFile, out before);

        using var fs = t.Mount();
        fs.Paths.SetXattr("/d/f", "user.extra", "1"u8).Ok();
        var upperFile = Path.Combine(t.Upper!, "d/f");
        Assert.True(File.Exists(upperFile));
        Sys.LStatxAt(Sys.AT_FDCWD, upperFile, out var up);
        Assert.Equal(before.Mode, up.Mode);
        Assert.Equal(1234u, up.Uid);
        Assert.Equal(5678u, up.Gid);
        Assert.Equal(before.MTime.Sec, up.MTime.Sec);
        Assert.Equal(before.MTime.Nsec, up.MTime.Nsec);
        Assert.Equal("blue", TestLayers.GetXattr(upperFile, "user.color"));
        Assert.Equal("1", TestLayers.GetXattr(upperFile, "user.extra"));
        Assert.Equal("yes", TestLayers.GetXattr(Path.Combine(t.Upper!, "d"), "user.dir"));
        Assert.Equal("lower data", File.ReadAllText(upperFile));

        fs.WriteText("/d/f", "new");
        Assert.Equal("lower data", File.ReadAllText(lowerFile));
        Assert.Equal("new", fs.ReadText("/d/f"));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(t.Work!, "work")));
    }

    [Fact]
    public void Open_for_write_without_truncate_keeps_data_and_holes()
    {
        using var t = new TestLayers(1);
        var lower = Path.Combine(t.Lowers[0], "sparse");
        using (var f = new FileStream(lower, FileMode.Create))
        {
            f.Write(Encoding.ASCII.GetBytes("head"));
            f.Seek(64L << 20, SeekOrigin.Begin);
            f.Write(Encoding.ASCII.GetBytes("tail"));
        }
        using var fs = t.Mount();
        fs.Paths.Open("/sparse", Sys.O_RDWR, out var h).Ok();
        using (h!)
        {
            var buf = new byte[4];
            h!.Read(buf, (64L << 20), out int n).Ok();
            Assert.Equal("tail", Encoding.ASCII.GetString(buf, 0, n));
        }
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Upper!, "sparse"), out var up);
        Assert.Equal((ulong)(64L << 20) + 4, up.Size);
        Assert.True(up.Blocks * 512 < 4 << 20, $"holes kept: {up.Blocks * 512} bytes allocated");
    }

    [Fact]
    public void Data_copy_without_reflink_or_copy_file_range_fallbacks()
    {
        using var t = new TestLayers(1);
        using var fs = t.Mount();
        var src = Path.Combine(t.Root, "src");
        var data = new byte[3 << 20];
        new Random(7).NextBytes(data);
        File.WriteAllBytes(src, data);
        // Force each path: CopyData is called directly on descriptors of ordinary files.
        int inFd = Sys.Open(src, Sys.O_RDONLY);
        int outFd = Sys.Open(Path.Combine(t.Root, "dst"), Sys.O_WRONLY | Sys.O_CREAT, 0x1A4);
        try { fs.CopyData(inFd, outFd, data.Length, "/x").Ok(); }
        finally { Sys.Close(inFd); Sys.Close(outFd); }
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(t.Root, "dst")));
    }

    [Fact]
    public void Symlink_and_fifo_copy_up_on_chown()
    {
        using var t = new TestLayers(1);
        File.CreateSymbolicLink(Path.Combine(t.Lowers[0], "ln"), "/nowhere/at/all");
        Assert.Equal(0, Sys.MknodAt(Sys.AT_FDCWD, Path.Combine(t.Lowers[0], "fifo"), ModeBits.S_IFIFO | 0x1A4, 0));
        using var fs = t.Mount();
        fs.Paths.Chown("/ln", 42, 43).Ok("chown symlink");
        fs.Paths.Chown("/fifo", 44, 45).Ok("chown fifo");
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Upper!, "ln"), out var l);
        Assert.True(l.IsSymlink);
        Assert.Equal(42u, l.Uid);
        Assert.Equal("/nowhere/at/all", new FileInfo(Path.Combine(t.Upper!, "ln")).LinkTarget);
        Sys.LStatxAt(Sys.AT_FDCWD, Path.Combine(t.Upper!, "fifo"), out var f);
        Assert.Equal(ModeBits.S_IFIFO, f.FileType);
        Assert.Equal(44u, f.Uid);
    }

    [Fact]
    public void Chmod_truncate_and_utimes_copy_up()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "0123456789");
        using var fs = t.Mount();
        fs.Paths.Chmod("/f", 0x180).Ok();
        Assert.Equal(0x180u, fs.StatOk("/f").Mode & 0xFFFu);
        fs.Paths.Truncate("/f", 4).Ok();
        Assert.Equal("0123", fs.ReadText("/f"));
        fs.Paths.Utimes("/f", new StatxTimestamp(1000, 5), new StatxTimestamp(2000, 7)).Ok();
        var st = fs.StatOk("/f");
        Assert.Equal(2000, st.MTime.Sec);
        Assert.Equal(7u, st.MTime.Nsec);
        Assert.Equal("0123456789", File.ReadAllText(Path.Combine(t.Lowers[0], "f")));
    }

    [Fact]
    public void Open_with_truncate_does_not_copy_data()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "old contents");
        int copies = 0;
        using var fs = t.Mount(configure: o => o.CopyFaultInjector = _ => { copies++; return Errno.None; });
        fs.Paths.Open("/f", Sys.O_WRONLY | Sys.O_TRUNC, out var h).Ok();
        h!.Dispose();
        Assert.Equal(0, copies);
        Assert.Equal("", fs.ReadText("/f"));
    }
}
