using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>Writes the engine never sees (kernel passthrough goes straight to the branch file) are reported by the close.</summary>
public sealed class PassthroughCloseTests : IDisposable
{
    private readonly TestLayers _t = new(lowers: 1);

    public void Dispose() => _t.Dispose();

    [Fact]
    public void WritesBehindTheEnginesBackAreModifyBeforeCloseWriteAndEchoesAreSilent()
    {
        TestLayers.WriteFile(_t.Lowers[0], "d/f", "lower");
        using var fs = _t.Mount();
        using var i = fs.Watches.CreateInstance();
        i.AddWatch("/d", InotifyMask.AllEvents, out _);
        i.AddWatch("/d/f", InotifyMask.AllEvents, out _);
        using var bw = new BranchWatcher(fs);
        bw.Start();
        fs.Paths.Open("/d/f", Sys.O_WRONLY | Sys.O_APPEND, out var h).Ok();
        File.AppendAllText(Path.Combine(_t.Upper!, "d/f"), "written by the kernel"); // as passthrough would
        h!.Release();
        Thread.Sleep(500);
        var got = i.ReadEvents().Select(e => $"{e.Wd} {InotifyMask.Format(e.Mask)} {e.Name}").ToList();
        Assert.Equal(["2 OPEN ", "1 OPEN f", "2 MODIFY ", "1 MODIFY f", "2 CLOSE_WRITE,CLOSE ", "1 CLOSE_WRITE,CLOSE f"], got);
    }
}
