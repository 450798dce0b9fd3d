using Lamina.Native;

namespace Lamina.Mount.Tests.Safety;

/// <summary>
/// A symlink planted by an ordinary user (through an allow_other mount) or directly in the upper
/// branch is never followed by what root asks of the union: the symlink itself changes, nothing
/// outside the branches does.
/// </summary>
public class PlantedSymlinkTests
{
    private const uint Nobody = 65534;

    [MountFact]
    public void Root_changing_a_symlink_an_ordinary_user_planted_changes_the_symlink_not_its_target()
    {
        var outside = Directory.CreateTempSubdirectory("lamina-outside-").FullName;
        try
        {
            string secret = Path.Combine(outside, "secret");
            File.WriteAllText(secret, "root's\n");
            Sys.LStatxAt(Sys.AT_FDCWD, secret, out var before);
            using var m = new LaminaMount(1, m =>
            {
                Directory.CreateDirectory(Path.Combine(m.Lower(0), "d"));
                File.WriteAllText(Path.Combine(m.Lower(0), "d", "f"), "lower\n");
                Sys.FChmodAt(Sys.AT_FDCWD, Path.Combine(m.Lower(0), "d"), 0x3FF, 0); // 1777: anyone may plant here
            });
            Sys.FChmodAt(Sys.AT_FDCWD, m.Root, 0x1ED, 0);
            m.Mount("allow_other");
            string link = Path.Combine(m.Merged, "d", "link");
            Assert.Equal("ok", FsCall.Run($"os.symlink('{secret}', '{link}')", Nobody));

            Assert.Equal("ok", FsCall.Run($"os.chown('{link}', 4242, 4243, follow_symlinks=False)"));     // chown -h
            Assert.Equal("ok", FsCall.Run($"os.utime('{link}', (1000000, 1000000), follow_symlinks=False)")); // touch -h
            Assert.Equal("ok", FsCall.Run($"os.setxattr('{link}', 'trusted.planted', b'x', follow_symlinks=False)")); // setfattr -h
            Assert.Equal("ok", FsCall.Run($"write('{Path.Combine(m.Merged, "d", "f")}', 'more\\n')")); // copy-up beside the link

            // The symlink (in the upper branch) changed ...
            string upperLink = Path.Combine(m.Upper, "d", "link");
            Sys.LStatxAt(Sys.AT_FDCWD, upperLink, out var l);
            Assert.True(l.IsSymlink);
            Assert.Equal((4242u, 4243u), (l.Uid, l.Gid));
            Assert.Equal(1000000, l.MTime.Sec);
            Assert.Equal("lower\nmore\n", File.ReadAllText(Path.Combine(m.Upper, "d", "f")));
            // ... and its target did not.
            Sys.LStatxAt(Sys.AT_FDCWD, secret, out var after);
            Assert.Equal((before.Uid, before.Gid, before.Mode, before.MTime.Sec, before.MTime.Nsec), (after.Uid, after.Gid, after.Mode, after.MTime.Sec, after.MTime.Nsec));
            Assert.Equal("root's\n", File.ReadAllText(secret));
            Assert.Equal("ENODATA", FsCall.Run($"os.getxattr('{secret}', 'trusted.planted')"));
            m.Unmount();
        }
        finally { Directory.Delete(outside, recursive: true); }
    }

    [MountFact]
    public void A_symlink_planted_in_the_upper_branch_in_place_of_a_directory_is_not_followed_by_copy_up()
    {
        var outside = Directory.CreateTempSubdirectory("lamina-outside-").FullName;
        try
        {
            using var m = new LaminaMount(1, m =>
            {
                Directory.CreateDirectory(Path.Combine(m.Lower(0), "d"));
                File.WriteAllText(Path.Combine(m.Lower(0), "d", "f"), "lower\n");
            });
            m.Mount();
            // Hold the merged directory open, then replace its upper part by a symlink to outside
            // the branches: race-free, the plant is done before the operation starts.
            int dirFd = Sys.Open(Path.Combine(m.Merged, "d"), Sys.O_RDONLY | Sys.O_DIRECTORY);
            Assert.True(dirFd >= 0, $"open d: {Sys.LastErrno}");
            try
            {
                Directory.CreateSymbolicLink(Path.Combine(m.Upper, "d"), outside);
                int fd = Sys.OpenAt(dirFd, "f", Sys.O_WRONLY | Sys.O_APPEND, 0);
                if (fd >= 0) Sys.Close(fd);
                Assert.Empty(Directory.GetFileSystemEntries(outside));
                var link = new FileInfo(Path.Combine(m.Upper, "d"));
                Assert.NotNull(link.LinkTarget);
                Assert.Equal("lower\n", File.ReadAllText(Path.Combine(m.Lower(0), "d", "f")));
            }
            finally { Sys.Close(dirFd); }
            m.Unmount();
        }
        finally { Directory.Delete(outside, recursive: true); }
    }
}
