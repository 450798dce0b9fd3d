using Lamina.Policies;

namespace Lamina.Branches;

/// <summary>overlayfs's redirect_dir= setting.</summary>
public enum RedirectDirMode { On, Follow, NoFollow, Off }

/// <summary>
/// A parsed union configuration: the ordered branches (index 0 is the top) and the on-disk
/// format options. Built by <see cref="OptionParser"/> from overlayfs or mergerfs syntax.
/// </summary>
public sealed class UnionOptions
{
    /// <summary>Branches, top first. In overlay syntax: the upper (if any), then lowerdir left to right.</summary>
    public List<BranchSpec> Branches { get; } = [];

    /// <summary>overlayfs workdir; null for mergerfs-style lists (each writable branch then keeps a hidden work dir).</summary>
    public string? WorkDir { get; set; }

    /// <summary>Use user.overlay.* (and user.lamina.*) instead of trusted.*.</summary>
    public bool UserXattr { get; set; }

    public RedirectDirMode RedirectDir { get; set; } = RedirectDirMode.On;
    public bool Metacopy { get; set; }
    public string Xino { get; set; } = "auto";
    /// <summary>Keep an index of copied-up hard links so they stay one file (overlayfs index=on); on by default.</summary>
    public bool Index { get; set; } = true;

    /// <summary>Placement policies per operation class.</summary>
    public PolicySet Policies { get; } = new();

    /// <summary>Generic mount flags accepted and kept for the transport (rw, ro, allow_other, fsname=...).</summary>
    public Dictionary<string, string?> MountFlags { get; } = new(StringComparer.Ordinal);

    /// <summary>Test hook: called by copy-up before each data chunk; return an errno to inject a fault.</summary>
    public Func<string, Native.Errno>? CopyFaultInjector { get; set; }

    /// <summary>
    /// Cache the layer stacks of directories between requests (on by default). Off resolves every
    /// path from the branch roots, which is slower and gives the same answers.
    /// </summary>
    public bool CacheDirectories { get; set; } = true;

    /// <summary>
    /// How long a cached directory stack is used without checking its branch directories for
    /// changes made outside the union (zero: checked on every use). Changes made through the union
    /// are seen at once either way.
    /// </summary>
    public TimeSpan TrustDirectoriesFor { get; set; } = TimeSpan.Zero;

    /// <summary>Force the aufs ".wh." whiteout form even when device nodes can be made.</summary>
    public bool ForceAufsWhiteouts { get; set; }
}
