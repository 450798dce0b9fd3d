using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>A test that mounts: skipped, with the reason in the test output, where it cannot run.</summary>
public sealed class MountFactAttribute : FactAttribute
{
    public MountFactAttribute()
    {
        if (Why() is { } reason) Skip = reason;
    }

    internal static string? Why()
    {
        if (!File.Exists("/dev/fuse")) return "cannot run here: /dev/fuse does not exist";
        if (Sys.GetEUid() != 0) return "cannot run here: mounting with mount(2) needs root";
        return null;
    }
}
