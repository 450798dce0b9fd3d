using Lamina.Native;

namespace Lamina.Mount.Tests.Safety;

/// <summary>
/// Writing a file drops what would let the new content run with more rights, as the kernel does on
/// ext4 (killpriv): setuid always for an ordinary writer, setgid with group-execute, and file
/// capabilities (security.capability) for any writer; root keeps setuid and setgid (CAP_FSETID).
/// Every case runs on a plain directory beside the mount too, and the union must end the same.
/// Several layers take part: the kernel's check on the FUSE inode (a GETXATTR of
/// security.capability before every write, a SETATTR for the mode), and the branch filesystem's own
/// check when the daemon writes with the caller's identity, or the kernel writes the backing file
/// (passthrough). The branch's check alone already drops capabilities, so this pins the outcome, not
/// the GETXATTR answer (XattrTests checks the handle answers as the path does); a daemon writing as
/// root keeps setgid and fails here.
/// </summary>
public class KillPrivTests
{
    private const uint Nobody = 65534;
    private const uint SetUidGid = 0xC00; // S_ISUID | S_ISGID

    // A version 2 file capability (VFS_CAP_REVISION_2): magic, then permitted and inheritable
    // words for capabilities 0-31 and 32-63. Permitted: CAP_NET_BIND_SERVICE (10).
    private static readonly byte[] Capability = [0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private sealed record Case(string Name, bool InLower, uint Mode, bool WithCapability, uint? Writer);

    private static readonly Case[] Cases =
    [
        new("suid-lower-by-nobody", InLower: true, Mode: 0xDFF, WithCapability: false, Writer: Nobody), // 06777
        new("suid-upper-by-nobody", InLower: false, Mode: 0xDFF, WithCapability: false, Writer: Nobody),
        new("suid-upper-by-root", InLower: false, Mode: 0xDFF, WithCapability: false, Writer: null),
        new("sgid-noexec-by-nobody", InLower: false, Mode: 0x5F6, WithCapability: false, Writer: Nobody), // 02766: no group-execute
        new("cap-lower-by-nobody", InLower: true, Mode: 0x1B6, WithCapability: true, Writer: Nobody), // 0666
        new("cap-upper-by-root", InLower: false, Mode: 0x1B6, WithCapability: true, Writer: null),
    ];

    [MountFact] public void Writes_drop_setuid_setgid_and_capabilities_as_on_ext4_default_mode() => Check("");

    [MountFact] public void Writes_drop_setuid_setgid_and_capabilities_as_on_ext4_without_passthrough() => Check("passthrough=off");

    private static void Check(string options)
    {
        using var m = new LaminaMount(1, m =>
        {
            foreach (var c in Cases)
                Make(Path.Combine(c.InLower ? m.Lower(0) : m.Upper, c.Name), c);
        });
        string reference = Path.Combine(m.Root, "reference");
        Directory.CreateDirectory(reference);
        foreach (var c in Cases) Make(Path.Combine(reference, c.Name), c);
        Sys.FChmodAt(Sys.AT_FDCWD, m.Root, 0x1ED, 0); // 0755: nobody reaches the reference directory
        m.Mount(string.IsNullOrEmpty(options) ? "allow_other" : "allow_other," + options);

        var differences = new List<string>();
        foreach (var c in Cases)
        {
            var expected = WriteAndLook(Path.Combine(reference, c.Name), c.Writer);
            var got = WriteAndLook(Path.Combine(m.Merged, c.Name), c.Writer);
            if (expected != got) differences.Add($"{c.Name}: ext4 {expected}, union {got}");
        }
        Assert.True(differences.Count == 0, string.Join("\n", differences));
        // What the cases stand for, so they cannot all pass by changing nothing.
        Assert.Equal((0x1FFu, false), WriteAndLook(Path.Combine(reference, "suid-lower-by-nobody"), null));
        Assert.Equal((0xDFFu, false), WriteAndLook(Path.Combine(reference, "suid-upper-by-root"), null));
        Assert.Equal((0x1B6u, false), WriteAndLook(Path.Combine(reference, "cap-upper-by-root"), null));
    }

    private static void Make(string path, Case c)
    {
        File.WriteAllText(path, "content\n");
        if (c.WithCapability) Assert.Equal(0, Sys.SetXattr(path, "security.capability", Capability, 0));
        Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, path, c.Mode, 0));
    }

    /// <summary>Appends as <paramref name="writer"/> (root when null); then the mode's low 12 bits and whether a capability is left.</summary>
    private static (uint Mode, bool Capability) WriteAndLook(string path, uint? writer)
    {
        Assert.Equal("ok", FsCall.Run($"write('{path}', 'more\\n')", writer));
        Assert.Equal(0, Sys.LStatxAt(Sys.AT_FDCWD, path, out var st));
        var buf = new byte[64];
        bool cap = Sys.GetXattr(path, "security.capability", buf) >= 0;
        return ((uint)st.Mode & 0xFFF, cap);
    }
}
