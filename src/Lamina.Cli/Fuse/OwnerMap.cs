using System.Buffers.Binary;
using System.Globalization;

namespace Lamina.Cli.Fuse;

/// <summary>
/// fuse-overlayfs's ID mapping (uidmapping=, gidmapping=, squash_to_root, squash_to_uid=,
/// squash_to_gid=), applied where the union meets the kernel.
///
/// A range <c>STORED:SHOWN:COUNT</c> (containers/storage writes it as
/// ContainerID:HostID:Size) says that the ids STORED..STORED+COUNT-1 found on the branches are
/// shown through the mount as SHOWN..SHOWN+COUNT-1. Several ranges follow one another in the same
/// value, colon-separated; the first range that matches wins.
/// <list type="bullet">
/// <item>Shown (attributes in replies, POSIX ACL entries read): a stored id no range covers is
///   the overflow id (/proc/sys/kernel/overflowuid, 65534). squash_to_uid / squash_to_gid /
///   squash_to_root replace every shown owner; squash_to_uid and squash_to_gid win over
///   squash_to_root.</item>
/// <item>Stored (the caller's ids in a request header, which become the owner of what it
///   creates; chown; POSIX ACL entries written): the reverse of the ranges. An id no range covers
///   is stored as the overflow id. Squashing does not change what is stored.</item>
/// </list>
/// With no range for uids (or gids), ids of that kind are stored and shown as they are.
/// </summary>
public sealed class OwnerMap
{
    public readonly record struct Range(uint Stored, uint Shown, uint Count);

    public IReadOnlyList<Range> Uids { get; init; } = [];
    public IReadOnlyList<Range> Gids { get; init; } = [];
    public uint? SquashUid { get; init; }
    public uint? SquashGid { get; init; }
    public uint OverflowUid { get; init; } = 65534;
    public uint OverflowGid { get; init; } = 65534;

    /// <summary>True when nothing is translated: the adapter then skips the map entirely.</summary>
    public bool IsIdentity => Uids.Count == 0 && Gids.Count == 0 && SquashUid is null && SquashGid is null;

    public uint ShowUid(uint stored) => SquashUid ?? Show(Uids, stored, OverflowUid);
    public uint ShowGid(uint stored) => SquashGid ?? Show(Gids, stored, OverflowGid);
    public uint StoreUid(uint shown) => Store(Uids, shown, OverflowUid);
    public uint StoreGid(uint shown) => Store(Gids, shown, OverflowGid);

    /// <summary>A supplementary group as stored, or null when no range covers it (it then grants nothing).</summary>
    public uint? StoreGroup(uint shown)
    {
        if (Gids.Count == 0) return shown;
        foreach (var r in Gids)
            if (shown - r.Shown < r.Count) return r.Stored + (shown - r.Shown);
        return null;
    }

    private static uint Show(IReadOnlyList<Range> ranges, uint stored, uint overflow)
    {
        if (ranges.Count == 0) return stored;
        foreach (var r in ranges)
            if (stored - r.Stored < r.Count) return r.Shown + (stored - r.Stored);
        return overflow;
    }

    private static uint Store(IReadOnlyList<Range> ranges, uint shown, uint overflow)
    {
        if (ranges.Count == 0) return shown;
        foreach (var r in ranges)
            if (shown - r.Shown < r.Count) return r.Stored + (shown - r.Shown);
        return overflow;
    }

    /// <summary>
    /// Parses <c>STORED:SHOWN:COUNT[:STORED:SHOWN:COUNT...]</c> (empty fields ignored). Throws
    /// <see cref="FormatException"/> with a message fit for the user.
    /// </summary>
    public static IReadOnlyList<Range> ParseRanges(string option, string value)
    {
        // Empty fields are skipped, as fuse-overlayfs's tokenizer skips them: containers/storage
        // (podman 4.x) writes uidmapping=:0:100000:65536, with a leading colon.
        var parts = value.Split(':', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts.Length % 3 != 0)
            throw new FormatException($"option {option}= takes STORED:SHOWN:COUNT triples separated by ':', not '{value}'");
        var ranges = new List<Range>();
        for (int i = 0; i < parts.Length; i += 3)
        {
            uint stored = Id(option, parts[i]), shown = Id(option, parts[i + 1]), count = Id(option, parts[i + 2]);
            if (count == 0) throw new FormatException($"option {option}=: the range {stored}:{shown}:0 is empty");
            if ((ulong)stored + count > 1UL << 32 || (ulong)shown + count > 1UL << 32)
                throw new FormatException($"option {option}=: the range {stored}:{shown}:{count} goes past the largest id");
            ranges.Add(new Range(stored, shown, count));
        }
        return ranges;
    }

    private static uint Id(string option, string text) =>
        uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new FormatException($"option {option}=: '{text}' is not an id (a whole number from 0 to 4294967295)");

    /// <summary>The kernel's overflow id for uids or gids (what an unmapped id looks like), 65534 when it cannot be read.</summary>
    public static uint KernelOverflowId(bool uid)
    {
        try
        {
            var text = File.ReadAllText(uid ? "/proc/sys/kernel/overflowuid" : "/proc/sys/kernel/overflowgid").Trim();
            return uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 65534;
        }
        catch (IOException) { return 65534; }
        catch (UnauthorizedAccessException) { return 65534; }
    }

    // POSIX ACL xattrs (system.posix_acl_access, system.posix_acl_default): a 4-byte version (2)
    // then 8-byte entries { u16 tag, u16 perm, u32 id }; only ACL_USER (2) and ACL_GROUP (8)
    // entries carry an id.
    private const int AclHeader = 4, AclEntry = 8;
    private const ushort AclUser = 0x02, AclGroup = 0x08;

    public static bool IsAclName(ReadOnlySpan<byte> name) =>
        name.SequenceEqual("system.posix_acl_access"u8) || name.SequenceEqual("system.posix_acl_default"u8);

    /// <summary>Rewrites the ids of a POSIX ACL value in place, stored → shown. Leaves a value it does not understand alone.</summary>
    public void ShowAcl(Span<byte> value) => RewriteAcl(value, ShowUid, ShowGid);

    /// <summary>Rewrites the ids of a POSIX ACL value in place, shown → stored.</summary>
    public void StoreAcl(Span<byte> value) => RewriteAcl(value, StoreUid, StoreGid);

    private static void RewriteAcl(Span<byte> value, Func<uint, uint> uid, Func<uint, uint> gid)
    {
        if (value.Length < AclHeader || (value.Length - AclHeader) % AclEntry != 0) return;
        if (BinaryPrimitives.ReadUInt32LittleEndian(value) != 2) return;
        for (int at = AclHeader; at < value.Length; at += AclEntry)
        {
            ushort tag = BinaryPrimitives.ReadUInt16LittleEndian(value[at..]);
            var id = value.Slice(at + 4, 4);
            if (tag == AclUser) BinaryPrimitives.WriteUInt32LittleEndian(id, uid(BinaryPrimitives.ReadUInt32LittleEndian(id)));
            else if (tag == AclGroup) BinaryPrimitives.WriteUInt32LittleEndian(id, gid(BinaryPrimitives.ReadUInt32LittleEndian(id)));
        }
    }
}
