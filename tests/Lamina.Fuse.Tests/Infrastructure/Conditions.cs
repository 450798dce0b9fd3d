using Lamina.Native;

namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>What this machine offers; every test that needs something missing is skipped with the reason.</summary>
public static class Conditions
{
    public static bool IsRoot => Sys.GetEUid() == 0;

    public static bool HasDevFuse => File.Exists("/dev/fuse");

    /// <summary>fusermount3 opens /dev/fuse with the caller's rights: it must be crw-rw-rw- as udev makes it.</summary>
    public static bool DevFuseOpenToAll => HasDevFuse && (File.GetUnixFileMode("/dev/fuse") & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) == (UnixFileMode.OtherRead | UnixFileMode.OtherWrite);

    public static string? Fusermount => FindOnPath("fusermount3");

    public static string? Gcc => FindOnPath("gcc") ?? FindOnPath("cc");

    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/bin", "/bin", "/usr/sbin", "/sbin"]))
        {
            if (dir.Length == 0) continue;
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Why a test that mounts cannot run here, or null when it can.</summary>
    public static string? WhyNoFuse()
    {
        if (!OperatingSystem.IsLinux()) return "FUSE tests need Linux";
        if (!HasDevFuse) return "/dev/fuse is missing (no FUSE in this kernel or container: modprobe fuse / --device /dev/fuse)";
        if (!IsRoot) return "FUSE integration tests mount with mount(2) and need root (run the tests as root)";
        return null;
    }
}

/// <summary>A fact that needs /dev/fuse and root; skipped, with the reason printed by dotnet test, otherwise.</summary>
public sealed class FuseFactAttribute : FactAttribute
{
    public FuseFactAttribute()
    {
        if (Conditions.WhyNoFuse() is string why) Skip = why;
    }
}

/// <summary>A theory that needs /dev/fuse and root.</summary>
public sealed class FuseTheoryAttribute : TheoryAttribute
{
    public FuseTheoryAttribute()
    {
        if (Conditions.WhyNoFuse() is string why) Skip = why;
    }
}

/// <summary>A fact that needs /dev/fuse, root (to prepare users and directories) and fusermount3 (package fuse3).</summary>
public sealed class UnprivilegedFuseFactAttribute : FactAttribute
{
    /// <param name="ordinaryUser">The test runs fusermount3 as a user other than root (then /dev/fuse must be open to all).</param>
    public UnprivilegedFuseFactAttribute(bool ordinaryUser = true)
    {
        if (Conditions.WhyNoFuse() is string why) Skip = why;
        else if (Conditions.Fusermount is null) Skip = "fusermount3 is not installed: install the Debian package fuse3 (apt-get install -y fuse3) to test unprivileged mounts";
        else if (Conditions.FindOnPath("setpriv") is null) Skip = "setpriv (util-linux) is not installed: cannot run the server as an unprivileged user";
        else if (ordinaryUser && !Conditions.DevFuseOpenToAll) Skip = "/dev/fuse is not read-write for all users (udev's usual crw-rw-rw-), so fusermount3 cannot open it for an ordinary user: chmod 0666 /dev/fuse to run this test";
    }
}

/// <summary>A fact that compiles C against the kernel's uapi headers.</summary>
public sealed class GccFactAttribute : FactAttribute
{
    public GccFactAttribute()
    {
        if (Conditions.Gcc is null) Skip = "gcc is not installed: the layout check against <linux/fuse.h> compiled by C is skipped (the hand-derived layout tests still run)";
        else if (!File.Exists("/usr/include/linux/fuse.h")) Skip = "/usr/include/linux/fuse.h is missing (install linux-libc-dev): cannot compare with the C layout";
    }
}

/// <summary>A fact that needs root but not FUSE (e.g. making a tmpfs mount).</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!Conditions.IsRoot) Skip = "needs root";
    }
}
