using System.Diagnostics;
using Lamina.Tests.Model;
using Xunit.Abstractions;

namespace Lamina.Tests;

/// <summary>
/// Model-based property test: random operation sequences applied to the union (real temp layers:
/// two pre-populated lowers with whiteouts and opaque dirs, plus an upper) and to an in-memory model
/// of the merged tree. After every step errno, listing, type, mode and content must agree; at the end
/// a fresh mount of the same branches must show the same tree. A failure prints the shrunk sequence.
/// Seeds are fixed for reproducibility; LAMINA_PROPERTY_SEED=n and LAMINA_PROPERTY_RUNS=k explore more.
/// </summary>
public class ModelBasedTests(ITestOutputHelper output)
{
    private const int OpsPerRun = 60;

    [Fact]
    public void Union_agrees_with_model_on_random_operation_sequences()
    {
        int baseSeed = int.TryParse(Environment.GetEnvironmentVariable("LAMINA_PROPERTY_SEED"), out var s) ? s : 1000;
        int runs = int.TryParse(Environment.GetEnvironmentVariable("LAMINA_PROPERTY_RUNS"), out var r) ? r : 1000;
        var sw = Stopwatch.StartNew();
        int ops = 0;
        for (int i = 0; i < runs; i++)
        {
            var scenario = Scenario.Generate(baseSeed + i, OpsPerRun);
            var failure = Run(scenario, scenario.Ops);
            if (failure is not null)
            {
                var minimal = Scenario.Shrink(scenario.Ops, candidate => Run(scenario, candidate) is not null);
                var minimalFailure = Run(scenario, minimal);
                Assert.Fail($"union and model disagree.\nMinimal sequence:\n{scenario.Describe(minimal)}\n{minimalFailure}");
            }
            ops += scenario.Ops.Count;
        }
        output.WriteLine($"{runs} runs, {ops} operations, {sw.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public void Union_with_metacopy_agrees_with_model()
    {
        for (int i = 0; i < 20; i++)
        {
            var scenario = Scenario.Generate(3000 + i, OpsPerRun);
            var failure = Run(scenario, scenario.Ops, "metacopy=on");
            if (failure is not null)
            {
                var minimal = Scenario.Shrink(scenario.Ops, candidate => Run(scenario, candidate, "metacopy=on") is not null);
                Assert.Fail($"union (metacopy=on) and model disagree.\nMinimal sequence:\n{scenario.Describe(minimal)}\n{Run(scenario, minimal, "metacopy=on")}");
            }
        }
    }

    /// <summary>Runs <paramref name="ops"/> on a fresh union and a fresh model; the first disagreement, or null.</summary>
    internal static string? Run(Scenario scenario, List<Op> ops, string mountOptions = "")
    {
        using var t = new TestLayers(lowers: 2);
        scenario.Materialize(t);
        var model = scenario.InitialModel();
        var fs = t.Mount(mountOptions);
        var engine = new EngineDriver(fs);
        try
        {
            var diff = Scenario.CompareSnapshots(model.Snapshot(), engine.Snapshot(), "model", "union");
            if (diff is not null) return $"initial merged view differs:\n{diff}";
            for (int i = 0; i < ops.Count; i++)
            {
                var op = ops[i];
                var expected = op.Apply(model);
                var actual = op.Apply(engine);
                if (expected != actual) return $"step {i} ({op}): model says {expected}, union says {actual}";
                diff = Scenario.CompareSnapshots(model.Snapshot(), engine.Snapshot(), "model", "union");
                if (diff is not null) return $"after step {i} ({op}):\n{diff}";
            }
            t.Unmount(fs);
            fs = t.Mount(mountOptions);
            diff = Scenario.CompareSnapshots(model.Snapshot(), new EngineDriver(fs).Snapshot(), "model", "remounted union");
            return diff is null ? null : $"after remount:\n{diff}";
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return $"exception: {ex}";
        }
    }
}
