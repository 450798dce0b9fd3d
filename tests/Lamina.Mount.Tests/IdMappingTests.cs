using Lamina.Native;

namespace Lamina.Mount.Tests;

/// <summary>
/// fuse-overlayfs's ID mapping options through a real mount: uidmapping=/gidmapping= ranges
/// STORED:SHOWN:COUNT (ids on the branches → ids through the mount), the overflow id for what no
/// range covers, and squash_to_root / squash_to_uid= / squash_to_gid=.
/// </summary>
public class IdMappingTests
{
    // Stored 0..9 show as 1000..1009 (uids) and 2000..2009 (gids); stored 100..104 show as 5000..5004.
    private const string Mapping = "uidmapping=0:1000:10:100:5000:5,gidmapping=0:2000:10";

    private static LaminaMount Layers() => new(1, m =>
    {
        Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, m.Root, 0x1ED, 0)); // 0755, so other users reach the mount point
        Own(Touch(Path.Combine(m.Lower(0), "root-owned")), 0, 0);
        Own(Touch(Path.Combine(m.Lower(0), "second-range")), 102, 5);
        Own(Touch(Path.Combine(m.Lower(0), "unmapped")), 500, 500);
        var pub = Path.Combine(m.Lower(0), "pub");
        Directory.CreateDirectory(pub);
        Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, pub, 0x1FF, 0)); // 0777: anyone may create in it
        Own(pub, 0, 0);
    });

    private static string Touch(string path)
    {
        File.WriteAllText(path, "x\n");
        return path;
    }

    private static string Own(string path, uint uid, uint gid)
    {
        Assert.Equal(0, Sys.FChownAt(Sys.AT_FDCWD, path, uid, gid, 0));
        return path;
    }

    private static (uint Uid, uint Gid) Owner(string path)
    {
        Assert.Equal(0, Sys.LStatxAt(Sys.AT_FDCWD, path, out var st));
        return (st.Uid, st.Gid);
    }

    private static uint Overflow(string kind) => uint.Parse(File.ReadAllText($"/proc/sys/kernel/overflow{kind}").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    [MountFact]
    public void Stat_shows_stored_owners_through_the_ranges_and_the_overflow_id_for_the_rest()
    {
        using var m = Layers().Mount(Mapping);
        // A listing first, so the attributes come from readdirplus.
        var listed = Cli.Shell($"find {m.Merged} -mindepth 1 -maxdepth 1 -printf '%f %U:%G\\n'").StdOut;
        Assert.Contains("root-owned 1000:2000\n", listed);
        Assert.Contains("second-range 5002:2005\n", listed);
        Assert.Contains($"unmapped {Overflow("uid")}:{Overflow("gid")}\n", listed);
        Assert.Equal((1000u, 2000u), Owner(Path.Combine(m.Merged, "root-owned")));
        Assert.Equal((5002u, 2005u), Owner(Path.Combine(m.Merged, "second-range")));
        Assert.Equal((Overflow("uid"), Overflow("gid")), Owner(Path.Combine(m.Merged, "unmapped")));
        Assert.Equal((1000u, 2000u), Owner(m.Merged)); // the root, from the upper directory (stored 0:0)
        // The branch itself is untouched.
        Assert.Equal((0u, 0u), Owner(Path.Combine(m.Lower(0), "root-owned")));
    }

    [MountFact(Needs = "setpriv")]
    public void A_file_created_by_a_mapped_caller_is_stored_with_the_callers_stored_ids()
    {
        using var m = Layers().Mount(Mapping);
        var r = Cli.Shell($"setpriv --reuid=1003 --regid=2004 --clear-groups sh -c 'echo made > {m.Merged}/pub/new && mkdir {m.Merged}/pub/dir'");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Equal((3u, 4u), Owner(Path.Combine(m.Upper, "pub", "new")));
        Assert.Equal((3u, 4u), Owner(Path.Combine(m.Upper, "pub", "dir")));
        Assert.Equal((1003u, 2004u), Owner(Path.Combine(m.Merged, "pub", "new")));
        // The copied-up parent keeps its stored owner.
        Assert.Equal((0u, 0u), Owner(Path.Combine(m.Upper, "pub")));
        // A caller no range covers (root here) creates files owned by the overflow id, as fuse-overlayfs does.
        File.WriteAllText(Path.Combine(m.Merged, "pub", "by-root"), "x");
        Assert.Equal((Overflow("uid"), Overflow("gid")), Owner(Path.Combine(m.Upper, "pub", "by-root")));
    }

    [MountFact]
    public void Chown_through_the_mount_stores_the_reverse_mapped_ids()
    {
        using var m = Layers().Mount(Mapping);
        Own(Path.Combine(m.Merged, "root-owned"), 5004, 2009);
        Assert.Equal((104u, 9u), Owner(Path.Combine(m.Upper, "root-owned")));
        Assert.Equal((5004u, 2009u), Owner(Path.Combine(m.Merged, "root-owned")));
        Assert.Equal((0u, 0u), Owner(Path.Combine(m.Lower(0), "root-owned")));
        // An id no range covers is stored as the overflow id.
        Own(Path.Combine(m.Merged, "second-range"), 42, 43);
        Assert.Equal((Overflow("uid"), Overflow("gid")), Owner(Path.Combine(m.Upper, "second-range")));
    }

    [MountFact(Needs = "setfacl getfacl")]
    public void Posix_acl_entries_are_translated_both_ways()
    {
        using var m = Layers().Mount(Mapping);
        var set = Cli.Shell($"setfacl -m u:1003:rw,g:2004:r {m.Merged}/root-owned");
        Assert.True(set.ExitCode == 0, set.StdErr);
        var stored = Cli.Shell($"getfacl -n {m.Upper}/root-owned").StdOut;
        Assert.Contains("user:3:rw-", stored);
        Assert.Contains("group:4:r--", stored);
        var shown = Cli.Shell($"getfacl -n {m.Merged}/root-owned").StdOut;
        Assert.Contains("user:1003:rw-", shown);
        Assert.Contains("group:2004:r--", shown);
    }

    [MountFact(Needs = "setpriv")]
    public void Squash_to_root_shows_every_owner_as_root_and_stores_callers_unchanged()
    {
        using var m = Layers().Mount("squash_to_root");
        Assert.Equal((0u, 0u), Owner(Path.Combine(m.Merged, "unmapped")));
        Assert.Equal((0u, 0u), Owner(Path.Combine(m.Merged, "second-range")));
        // Not touch: its utimensat fails on a file shown as root's, as it does with fuse-overlayfs.
        var r = Cli.Shell($"setpriv --reuid=1234 --regid=1235 --clear-groups sh -c 'echo > {m.Merged}/pub/new'");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Equal((1234u, 1235u), Owner(Path.Combine(m.Upper, "pub", "new")));
        Assert.Equal((0u, 0u), Owner(Path.Combine(m.Merged, "pub", "new")));
    }

    [MountFact]
    public void Squash_to_uid_and_gid_win_over_squash_to_root()
    {
        using var m = Layers().Mount("squash_to_root,squash_to_uid=1500");
        Assert.Equal((1500u, 0u), Owner(Path.Combine(m.Merged, "unmapped")));
        m.Unmount();
        m.Mount("squash_to_gid=1600");
        Assert.Equal((500u, 1600u), Owner(Path.Combine(m.Merged, "unmapped")));
    }

    [MountFact]
    public void The_man_pages_comma_form_and_podmans_leading_colon_are_accepted()
    {
        using var m = Layers().Mount("uidmapping=0:1000:10,100:5000:5,gidmapping=0:2000:10");
        Assert.Equal((5002u, 2005u), Owner(Path.Combine(m.Merged, "second-range")));
        Assert.Equal((1000u, 2000u), Owner(Path.Combine(m.Merged, "root-owned")));
        m.Unmount();
        // containers/storage in podman 4.x writes each triple after a colon, the first one too.
        m.Mount("uidmapping=:0:1000:10:100:5000:5,gidmapping=:0:2000:10");
        Assert.Equal((5002u, 2005u), Owner(Path.Combine(m.Merged, "second-range")));
        Assert.Equal((1000u, 2000u), Owner(Path.Combine(m.Merged, "root-owned")));
    }

    [MountFact]
    public void Wrong_mapping_options_are_one_line_and_nothing_is_mounted()
    {
        using var m = Layers();
        foreach (var (option, expected) in new[]
        {
            ("uidmapping=0:1000", "STORED:SHOWN:COUNT"),
            ("gidmapping=0:x:1", "'x' is not an id"),
            ("uidmapping=0:1000:0", "is empty"),
            ("uidmapping=4294967295:0:2", "past the largest id"),
            ("squash_to_uid=-1", "needs an id"),
            ("xattr_permissions=2", "not supported"),
        })
        {
            var r = Cli.Run("mount", "-o", m.Options(option), m.Merged);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains(expected, r.StdErr);
            Assert.Single(r.StdErr.Trim().Split('\n'));
            Assert.DoesNotContain(m.Merged, File.ReadAllText("/proc/self/mountinfo"));
        }
    }
}
