namespace Lamina;

/// <summary>
/// Names of the on-disk markers: overlayfs's xattrs (trusted.overlay.* or, with userxattr, user.overlay.*),
/// Lamina's own private xattrs, and aufs's ".wh." names. None of them is ever visible through the union.
/// </summary>
internal sealed class Markers
{
    public const string AufsWhiteoutPrefix = ".wh.";
    public const string AufsOpaque = ".wh..wh..opq";
    /// <summary>At a branch root: this branch uses aufs markers (aufs creates it; so does Lamina when it writes them).</summary>
    public const string AufsBranchMarker = ".wh..wh.aufs";

    public Markers(bool userXattr)
    {
        string overlay = userXattr ? "user.overlay." : "trusted.overlay.";
        string own = userXattr ? "user.lamina." : "trusted.lamina.";
        Opaque = overlay + "opaque";
        Redirect = overlay + "redirect";
        Whiteout = overlay + "whiteout";
        Whiteouts = overlay + "whiteouts";
        Metacopy = overlay + "metacopy";
        OverlayImpure = overlay + "impure";
        Origin = own + "origin";
        Impure = own + "impure";
    }

    /// <summary>"y": lower layers are cut below this directory; "x": not opaque but holds xattr whiteouts.</summary>
    public string Opaque { get; }
    /// <summary>Where a renamed directory's lower layers are ("/abs/path" from the layer root, or a name in the same parent).</summary>
    public string Redirect { get; }
    /// <summary>On a zero-size regular file: this name is a whiteout (needs the parent marked).</summary>
    public string Whiteout { get; }
    /// <summary>Older form of the parent marker for xattr whiteouts.</summary>
    public string Whiteouts { get; }
    /// <summary>On an upper regular file: metadata only; the data is in the lower file (by redirect or the same name).</summary>
    public string Metacopy { get; }
    /// <summary>overlayfs's own "entries here carry an origin" marker.</summary>
    public string OverlayImpure { get; }
    /// <summary>Lamina: the union inode number of a copied-up object (8 bytes, little endian).</summary>
    public string Origin { get; }
    /// <summary>Lamina: this upper directory holds entries carrying <see cref="Origin"/>; readdir must read it per entry.</summary>
    public string Impure { get; }

    /// <summary>True for xattrs that belong to the union format and are hidden from and refused to users.</summary>
    public static bool IsPrivateXattr(string name) =>
        name.StartsWith("trusted.overlay.", StringComparison.Ordinal) ||
        name.StartsWith("user.overlay.", StringComparison.Ordinal) ||
        name.StartsWith("trusted.lamina.", StringComparison.Ordinal) ||
        name.StartsWith("user.lamina.", StringComparison.Ordinal);

    /// <summary>Names that are markers in aufs format and can be neither seen nor created through the union.</summary>
    public static bool IsMarkerName(string name) => name.StartsWith(AufsWhiteoutPrefix, StringComparison.Ordinal);
}
