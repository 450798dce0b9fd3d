using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace Lamina.Mount.Tests.Watches;

/// <summary>A running `lamina watch -m --json ...` (or inotifywait) whose output lines are collected; disposing kills it.</summary>
public sealed class WatchProcess : IDisposable
{
    private readonly Process _p;
    private readonly BlockingCollection<string> _lines = [];
    private readonly ManualResetEventSlim _established = new();
    private readonly List<string> _stderr = [];

    public WatchProcess(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data is not null) _lines.Add(e.Data); };
        _p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr) _stderr.Add(e.Data);
            if (e.Data.Contains("Watches established", StringComparison.Ordinal)) _established.Set();
        };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
        if (!_established.Wait(TimeSpan.FromSeconds(30)))
        {
            Dispose();
            lock (_stderr) throw new TimeoutException($"{program} did not establish its watches: {string.Join('\n', _stderr)}");
        }
    }

    /// <summary>`lamina watch -m --json PATHS...`.</summary>
    public static WatchProcess Lamina(params string[] args) => new("dotnet", [Cli.Dll, "watch", "-m", .. args]);

    /// <summary>Lines up to the first one containing <paramref name="marker"/> (not included).</summary>
    public List<string> Until(string marker, TimeSpan? timeout = null) => Until(marker, out _, timeout);

    /// <summary>Lines up to the first one containing <paramref name="marker"/>, which comes out as <paramref name="matched"/>.</summary>
    public List<string> Until(string marker, out string matched, TimeSpan? timeout = null)
    {
        var got = new List<string>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !_lines.TryTake(out var line, left))
                throw new TimeoutException($"no line with '{marker}'; got:\n{string.Join('\n', got)}");
            if (line.Contains(marker, StringComparison.Ordinal)) { matched = line; return got; }
            got.Add(line);
        }
    }

    /// <summary>The first line containing <paramref name="marker"/>.</summary>
    public string Line(string marker, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !_lines.TryTake(out var line, left)) throw new TimeoutException($"no line with '{marker}'");
            if (line.Contains(marker, StringComparison.Ordinal)) return line;
        }
    }

    /// <summary>Parses --json lines into (wd, path, name, events).</summary>
    public static (int Wd, string Path, string? Name, string Events) Parse(string json)
    {
        using var d = JsonDocument.Parse(json);
        var r = d.RootElement;
        return (r.GetProperty("wd").GetInt32(), r.GetProperty("path").GetString()!,
            r.GetProperty("name").ValueKind == JsonValueKind.Null ? null : r.GetProperty("name").GetString(),
            string.Join(',', r.GetProperty("events").EnumerateArray().Select(e => e.GetString())));
    }

    /// <summary>Whether the process ends by itself within <paramref name="within"/>.</summary>
    public bool WaitForExit(TimeSpan within) => _p.WaitForExit(within);

    public void Dispose()
    {
        try { if (!_p.HasExited) _p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _p.WaitForExit(10_000);
        _p.Dispose();
    }
}
