namespace Lamina.Fuse.Mounting;

/// <summary>How a FUSE filesystem is attached to the tree.</summary>
public sealed record FuseMountOptions
{
    /// <summary>The "source" shown in /proc/self/mountinfo (and found by findmnt -S).</summary>
    public string FsName { get; init; } = "lamina";

    /// <summary>The type suffix: the mount shows as fuse.&lt;Subtype&gt;.</summary>
    public string Subtype { get; init; } = "lamina";

    /// <summary>Let users other than the mounter use the mount (root only, or user_allow_other).</summary>
    public bool AllowOther { get; init; }

    /// <summary>The kernel checks permissions from the reported modes before sending requests.</summary>
    public bool DefaultPermissions { get; init; } = true;

    public bool ReadOnly { get; init; }
    public bool NoSuid { get; init; }
    public bool NoDev { get; init; }
    public bool NoExec { get; init; }
    public bool NoAtime { get; init; }

    /// <summary>Force fusermount3 even when running as root (for tests of the unprivileged path).</summary>
    public bool ForceUnprivileged { get; init; }
}
