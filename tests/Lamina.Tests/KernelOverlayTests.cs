using Lamina.Native;
using Lamina.Tests.Model;
using Xunit.Abstractions;

namespace Lamina.Tests;

/// <summary>
/// Side by side with kernel overlayfs (mounted with redirect_dir=on, index=off):
/// the same generated operation sequences run on the union and on a kernel mount of identical layers;
/// errno and merged views must match after every step. Then each system reads the other's layers:
/// the engine mounts the upper the kernel wrote, and the kernel mounts the upper the engine wrote.
///
/// Deliberate differences, excluded from the sequences here and covered by their own tests:
/// - Lamina never returns EXDEV for a directory rename (overlayfs does without redirect_dir=on; with
///   it, as mounted here, both agree).
/// - Handles opened before a copy-up follow the node in Lamina; overlayfs keeps them on the lower file.
/// - Lower hard links stay one file after copy-up in Lamina (overlayfs only with index=on); the
///   generated layers have no lower hard links.
/// </summary>
public class KernelOverlayTests(ITestOutputHelper output)
{
    private static string? CannotMountReason()
    {
        using var t = new TestLayers(1);
        var mnt = t.MountKernel(out var why);
        if (mnt is not null) t.UnmountKernel(mnt);
        return why;
    }

    [Fact]
    public void Same_operations_give_same_results_as_kernel_overlayfs()
    {
        var why = CannotMountReason();
        Assert.True(why is null, $"kernel overlayfs is needed for this test and cannot be mounted here: {why}");
        int runs = int.TryParse(Environment.GetEnvironmentVariable("LAMINA_DIFF_RUNS"), out var r) ? r : 25;
        int total = 0;
        for (int i = 0; i < runs; i++)
        {
            var scenario = Scenario.Generate(5000 + i, 40);
            var failure = RunBoth(scenario, scenario.Ops);
            if (failure is not null)
            {
                var minimal = Scenario.Shrink(scenario.Ops, c => RunBoth(scenario, c) is not null, budget: 80);
                Assert.Fail($"union and kernel overlayfs disagree.\nMinimal sequence:\n{scenario.Describe(minimal)}\n{RunBoth(scenario, minimal)}");
            }
            total += scenario.Ops.Count;
        }
        output.WriteLine($"{runs} sequences, {total} operations matched kernel overlayfs, both ways of interop checked");
    }

    [Fact]
    public void Same_results_as_kernel_overlayfs_with_metacopy()
    {
        var why = CannotMountReason();
        Assert.True(why is null, $"kernel overlayfs is needed for this test and cannot be mounted here: {why}");
        for (int i = 0; i < 10; i++)
        {
            var scenario = Scenario.Generate(7000 + i, 40);
            var failure = RunBoth(scenario, scenario.Ops, metacopy: true);
            if (failure is not null)
            {
                var minimal = Scenario.Shrink(scenario.Ops, c => RunBoth(scenario, c, metacopy: true) is not null, budget: 80);
                Assert.Fail($"union and kernel overlayfs (metacopy=on) disagree.\nMinimal sequence:\n{scenario.Describe(minimal)}\n{RunBoth(scenario, minimal, metacopy: true)}");
            }
        }
    }

    private static string? RunBoth(Scenario scenario, List<Op> ops, bool metacopy = false)
    {
        string kernelOptions = metacopy ? "redirect_dir=on,metacopy=on,index=off" : "redirect_dir=on,index=off";
        string engineOptions = metacopy ? "metacopy=on" : "";
        using var kt = new TestLayers(lowers: 2);
        using var et = new TestLayers(lowers: 2);
        scenario.Materialize(kt);
        scenario.Materialize(et);
        var mnt = kt.MountKernel(out var why, kernelOptions);
        if (mnt is null) return why;
        var kernel = new KernelDriver(mnt);
        var fs = et.Mount(engineOptions);
        var engine = new EngineDriver(fs);
        try
        {
            var diff = Scenario.CompareSnapshots(kernel.Snapshot(), engine.Snapshot(), "kernel", "union");
            if (diff is not null) return $"initial merged view differs:\n{diff}";
            for (int i = 0; i < ops.Count; i++)
            {
                var op = ops[i];
                var expected = op.Apply(kernel);
                var actual = op.Apply(engine);
                if (expected != actual) return $"step {i} ({op}): kernel says {expected}, union says {actual}";
                diff = Scenario.CompareSnapshots(kernel.Snapshot(), engine.Snapshot(), "kernel", "union");
                if (diff is not null) return $"after step {i} ({op}):\n{diff}";
            }
            var finalView = kernel.Snapshot();

            // The engine reads what the kernel wrote.
            kt.UnmountKernel(mnt);
            var reader = kt.Mount(engineOptions);
            diff = Scenario.CompareSnapshots(finalView, new EngineDriver(reader).Snapshot(), "kernel", "union over the kernel's upper");
            if (diff is not null) return $"engine reading kernel-written layers:\n{diff}";

            // The kernel reads what the engine wrote.
            et.Unmount(fs);
            var kmnt = et.MountKernel(out why, kernelOptions);
            if (kmnt is null) return $"kernel cannot mount the engine's layers: {why}";
            diff = Scenario.CompareSnapshots(finalView, new KernelDriver(kmnt).Snapshot(), "kernel", "kernel over the union's upper");
            et.UnmountKernel(kmnt);
            return diff is null ? null : $"kernel reading engine-written layers:\n{diff}";
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return $"exception: {ex}";
        }
    }

    [Fact]
    public void Kernel_written_whiteouts_opaque_and_redirects_read_correctly()
    {
        var why = CannotMountReason();
        Assert.True(why is null, $"kernel overlayfs is needed for this test and cannot be mounted here: {why}");
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "dir/a", "A");
        TestLayers.WriteFile(t.Lowers[0], "dir/sub/b", "B");
        TestLayers.WriteFile(t.Lowers[0], "gone", "x");
        TestLayers.WriteFile(t.Lowers[0], "replaced/old", "x");
        var mnt = t.MountKernel(out why)!;
        File.Delete(Path.Combine(mnt, "gone"));
        File.Delete(Path.Combine(mnt, "replaced/old"));
        Directory.Delete(Path.Combine(mnt, "replaced"));
        Directory.CreateDirectory(Path.Combine(mnt, "replaced"));
        File.WriteAllText(Path.Combine(mnt, "replaced/new"), "N");
        Directory.Move(Path.Combine(mnt, "dir"), Path.Combine(mnt, "moved"));
        File.WriteAllText(Path.Combine(mnt, "moved/a"), "A2");
        t.UnmountKernel(mnt);
        // What the kernel left: a whiteout, an opaque dir, a redirect.
        Assert.NotNull(TestLayers.GetXattr(Path.Combine(t.Upper!, "moved"), "trusted.overlay.redirect"));
        Assert.Equal("y", TestLayers.GetXattr(Path.Combine(t.Upper!, "replaced"), "trusted.overlay.opaque"));

        using var fs = t.Mount();
        Assert.Equal(["moved", "replaced"], fs.List("/"));
        Assert.Equal(["new"], fs.List("/replaced"));
        Assert.Equal(["a", "sub"], fs.List("/moved"));
        Assert.Equal("A2", fs.ReadText("/moved/a"));
        Assert.Equal("B", fs.ReadText("/moved/sub/b"));
    }

    [Fact]
    public void Kernel_mounts_what_the_engine_wrote()
    {
        var why = CannotMountReason();
        Assert.True(why is null, $"kernel overlayfs is needed for this test and cannot be mounted here: {why}");
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "dir/a", "A");
        TestLayers.WriteFile(t.Lowers[0], "dir/sub/b", "B");
        TestLayers.WriteFile(t.Lowers[0], "gone", "x");
        TestLayers.WriteFile(t.Lowers[0], "replaced/old", "x");
        var fs = t.Mount();
        fs.Paths.Unlink("/gone").Ok();
        fs.Paths.Unlink("/replaced/old").Ok();
        fs.Paths.Rmdir("/replaced").Ok();
        fs.Paths.Mkdir("/replaced").Ok();
        fs.WriteText("/replaced/new", "N");
        fs.Paths.Rename("/dir", "/moved").Ok();
        fs.WriteText("/moved/a", "A2");
        t.Unmount(fs);
        var mnt = t.MountKernel(out why);
        Assert.True(mnt is not null, why);
        var view = new KernelDriver(mnt!).Snapshot();
        Assert.Equal(["moved", "moved/a", "moved/sub", "moved/sub/b", "replaced", "replaced/new"], view.Keys);
        Assert.Equal("A2", view["moved/a"].Content);
        Assert.Equal("B", view["moved/sub/b"].Content);
        Assert.Equal("N", view["replaced/new"].Content);
        t.UnmountKernel(mnt!);
    }
}
