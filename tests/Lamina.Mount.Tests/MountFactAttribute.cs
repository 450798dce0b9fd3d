using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>A test that mounts: skipped, with the reason in the test output, where it cannot run.</summary>
public sealed class MountFactAttribute : FactAttribute
{
    public MountFactAttribute()
    {
        if (Why() is { } reason) Skip = reason;
    }

    /// <summary>Programs the test runs (space-separated): the test is skipped, saying which is missing, when one is not on PATH.</summary>
    public string? Needs
    {
        get => _needs;
        set
        {
            _needs = value;
            if (Skip is not null || value is null) return;
            foreach (var tool in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                if (!OnPath(tool)) { Skip = $"cannot run here: '{tool}' is not installed"; return; }
        }
    }
    private string? _needs;

    internal static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, tool)));

    internal static string? Why()
    {
        if (!File.Exists("/dev/fuse")) return "cannot run here: /dev/fuse does not exist";
        if (Sys.GetEUid() != 0) return "cannot run here: mounting with mount(2) needs root";
        return null;
    }
}

/// <summary>A theory that mounts: skipped, with the reason, where it cannot run (as <see cref="MountFactAttribute"/>).</summary>
public sealed class MountTheoryAttribute : TheoryAttribute
{
    public MountTheoryAttribute()
    {
        if (MountFactAttribute.Why() is { } reason) Skip = reason;
    }
}
