using System.Text;
using Lamina.Native;
using Lamina.Tests.Model;

namespace Lamina.Tests;

/// <summary>metacopy=on: attribute changes copy only metadata; data is copied on the first write.</summary>
public class MetacopyTests
{
    private static bool IsMetacopy(string path) => TestLayers.GetXattr(path, "trusted.overlay.metacopy") is not null;

    [Fact]
    public void Chmod_copies_metadata_only_and_write_copies_the_data()
    {
        using var t = new TestLayers(1);
        var data = new byte[1 << 20];
        new Random(5).NextBytes(data);
        File.WriteAllBytes(Path.Combine(t.Lowers[0], "f"), data);
        using var fs = t.Mount("metacopy=on");
        ulong ino = fs.StatOk("/f").Ino;
        fs.Paths.Open("/f", Sys.O_RDONLY, out var reader).Ok();
        fs.Paths.Chmod("/f", 0x180).Ok();
        var upper = Path.Combine(t.Upper!, "f");
        Assert.True(IsMetacopy(upper));
        Sys.LStatxAt(Sys.AT_FDCWD, upper, out var up);
        Assert.Equal((ulong)data.Length, up.Size);
        Assert.True(up.Blocks < 16, "no data in the metadata-only copy");
        var st = fs.StatOk("/f");
        Assert.Equal(0x180u, st.Mode & 0xFFFu);
        Assert.Equal(ino, st.Ino);
        Assert.True(st.Blocks >= (ulong)(data.Length / 512), "blocks come from the data file");
        fs.Paths.ReadAllBytes("/f", out var back).Ok();
        Assert.Equal(data, back);

        // Renamed, it still finds its data.
        fs.Paths.Rename("/f", "/g").Ok();
        fs.Paths.ReadAllBytes("/g", out back).Ok();
        Assert.Equal(data, back);

        // The first write copies the data; the earlier reader follows.
        fs.Paths.Open("/g", Sys.O_WRONLY, out var writer).Ok();
        using (writer!) writer!.Write("XY"u8, 0, out _).Ok();
        Assert.False(IsMetacopy(Path.Combine(t.Upper!, "g")));
        var buf = new byte[4];
        reader!.Read(buf, 0, out int n).Ok();
        Assert.Equal("XY", Encoding.ASCII.GetString(buf, 0, 2));
        reader.Dispose();
        fs.Paths.ReadAllBytes("/g", out back).Ok();
        Assert.Equal(data.AsSpan(2).ToArray(), back.AsSpan(2).ToArray());
        Assert.Equal(0x180u, fs.StatOk("/g").Mode & 0xFFFu);
        Assert.Equal(ino, fs.StatOk("/g").Ino);
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(t.Lowers[0], "f")));
    }

    [Fact]
    public void Without_metacopy_chmod_copies_data()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "data");
        using var fs = t.Mount();
        fs.Paths.Chmod("/f", 0x180).Ok();
        Assert.False(IsMetacopy(Path.Combine(t.Upper!, "f")));
        Assert.Equal("data", File.ReadAllText(Path.Combine(t.Upper!, "f")));
    }

    [Fact]
    public void Kernel_overlayfs_reads_the_engine_metacopy_and_the_engine_reads_the_kernels()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "a", "data of a");
        TestLayers.WriteFile(t.Lowers[0], "b", "data of b");
        var fs = t.Mount("metacopy=on");
        fs.Paths.Chmod("/a", 0x180).Ok();
        fs.Paths.Rename("/a", "/moved").Ok();
        t.Unmount(fs);
        Assert.True(IsMetacopy(Path.Combine(t.Upper!, "moved")));
        var mnt = t.MountKernel(out var why, "redirect_dir=on,metacopy=on,index=off");
        Assert.True(mnt is not null, $"kernel overlayfs with metacopy=on is needed: {why}");
        Assert.Equal("data of a", File.ReadAllText(Path.Combine(mnt!, "moved")));
        // The kernel makes its own metadata-only copy.
        Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, Path.Combine(mnt!, "b"), 0x180, 0));
        t.UnmountKernel(mnt!);
        Assert.True(IsMetacopy(Path.Combine(t.Upper!, "b")), "kernel wrote a metacopy");
        using var again = t.Mount("metacopy=on");
        Assert.Equal("data of b", again.ReadText("/b"));
        Assert.Equal(0x180u, again.StatOk("/b").Mode & 0xFFFu);
        Assert.Equal("data of a", again.ReadText("/moved"));
    }
}
