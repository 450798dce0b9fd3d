using Lamina.Fuse.Mounting;
using Lamina.Fuse.Tests.Infrastructure;
using Lamina.Native;
using Xunit.Abstractions;

namespace Lamina.Fuse.Tests;

/// <summary>Starting, stopping and killing the server; unprivileged mounts; mount errors.</summary>
public sealed class LifecycleTests(ITestOutputHelper output)
{
    [FuseFact]
    public void Kill_9_of_the_server_leaves_ENOTCONN_until_unmounted()
    {
        // Zero cache timeouts: otherwise the kernel answers stat from its attribute cache for up to
        // that long, even on a dead connection.
        using var s = LoopbackServer.Start(timeout: 0, prepare: src => File.WriteAllText(Path.Combine(src, "f"), "x"));
        Assert.Equal("x", File.ReadAllText(Path.Combine(s.MountPoint, "f")));
        s.Signal(Posix.SIGKILL);
        Assert.True(s.WaitForExit(TimeSpan.FromSeconds(10)), "the server did not die");
        Assert.True(s.Mounted, "the mount should outlive a killed server");
        Assert.Equal(Errno.ENOTCONN, Posix.LStatErrno(s.MountPoint));
        Assert.Equal(Errno.ENOTCONN, Posix.LStatErrno(Path.Combine(s.MountPoint, "f")));

        FuseMount.Unmount(s.MountPoint); // a plain (not lazy) umount clears a dead connection
        Assert.False(s.Mounted, "still mounted after FuseMount.Unmount");
        Assert.Equal(Errno.None, Posix.LStatErrno(s.MountPoint));
        Assert.Empty(Directory.EnumerateFileSystemEntries(s.MountPoint));
        Assert.Equal("x", File.ReadAllText(Path.Combine(s.Source, "f")));
    }

    [FuseTheory]
    [InlineData(Posix.SIGTERM)]
    [InlineData(2 /* SIGINT */)]
    public void A_signal_unmounts_cleanly_and_exits_0(int signal)
    {
        using var s = LoopbackServer.Start();
        File.WriteAllText(Path.Combine(s.MountPoint, "kept"), "k");
        s.Signal(signal);
        Assert.True(s.WaitForExit(TimeSpan.FromSeconds(15)), "the server did not exit after the signal");
        Assert.Equal(0, s.Process!.ExitCode);
        Assert.False(s.Mounted, "the server exited but left its mount");
        Assert.Equal("k", File.ReadAllText(Path.Combine(s.Source, "kept")));
        output.WriteLine($"stderr: {s.Stderr}");
    }

    /// <summary>
    /// More live directories than the server has descriptors (each directory the kernel knows keeps
    /// one): making one must fail with EMFILE, not crash the server, which must still serve and
    /// stop cleanly. (It used to abort on SIGTERM: the runtime could not make the pipe of a new
    /// thread, and the mount was left dead.)
    /// </summary>
    [FuseFact]
    public void Running_out_of_descriptors_is_EMFILE_and_the_server_still_stops_cleanly()
    {
        // A small limit (for the server only) keeps the test quick.
        string prlimit = Conditions.FindOnPath("prlimit") ?? throw new InvalidOperationException("prlimit (util-linux) is missing");
        using var s = LoopbackServer.Start(launcher: [prlimit, "--nofile=3000:3000", "--"]);
        string dir = Path.Combine(s.MountPoint, "many");
        Directory.CreateDirectory(dir);
        int made = 0;
        Errno failure = Errno.None;
        for (int i = 0; i < 4000; i++)
        {
            if (Sys.MkdirAt(Sys.AT_FDCWD, Path.Combine(dir, $"d{i}"), 0x1ed) != 0) { failure = Sys.LastErrno; break; }
            made++;
        }
        output.WriteLine($"made {made} directories before {failure}");
        Assert.Equal(Errno.EMFILE, failure);
        Assert.InRange(made, 1000, 2999);
        Assert.True(s.IsRunning, $"the server died; stderr:\n{s.Stderr}");
        // Still serving: known nodes work, the listing is complete, and the mkdir that failed left
        // nothing behind (the directory it made before its node failed is taken away again).
        Assert.False(Directory.Exists(Path.Combine(s.Source, "many", $"d{made}")), $"d{made} was reported as failed but exists");
        Assert.Equal(made, Directory.EnumerateDirectories(Path.Combine(s.Source, "many")).Count());
        Assert.Equal(made, Directory.EnumerateDirectories(dir).Count());
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dir, "d0")));
        Directory.SetLastWriteTimeUtc(Path.Combine(dir, "d0"), new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc));
        Assert.Equal(2001, Directory.GetLastWriteTimeUtc(Path.Combine(s.Source, "many", "d0")).Year);

        s.Signal(Posix.SIGTERM);
        Assert.True(s.WaitForExit(TimeSpan.FromSeconds(15)), "the server did not exit after SIGTERM");
        Assert.True(s.Process!.ExitCode == 0, $"exit code {s.Process.ExitCode}; stderr:\n{s.Stderr}");
        Assert.False(s.Mounted, $"the server exited but left its mount; stderr:\n{s.Stderr}");
    }

    /// <summary>
    /// As root (CAP_DAC_READ_SEARCH) files keep file handles, not descriptors: the kernel may know
    /// far more files than the server may open, and each still reads, writes and stats.
    /// </summary>
    [FuseFact]
    public void Files_beyond_the_descriptor_limit_are_served_from_file_handles()
    {
        if (!Conditions.IsRoot)
        {
            output.WriteLine("not root: without CAP_DAC_READ_SEARCH the loopback keeps a descriptor per file; nothing to test");
            return;
        }
        string prlimit = Conditions.FindOnPath("prlimit") ?? throw new InvalidOperationException("prlimit (util-linux) is missing");
        using var s = LoopbackServer.Start(launcher: [prlimit, "--nofile=3000:3000", "--"]);
        string dir = Path.Combine(s.MountPoint, "many");
        Directory.CreateDirectory(dir);
        const int Count = 5000; // well past the server's 3,000 descriptors
        for (int i = 0; i < Count; i++)
        {
            int fd = Sys.Open(Path.Combine(dir, $"f{i}"), Sys.O_CREAT | Sys.O_EXCL | Sys.O_WRONLY | Sys.O_CLOEXEC, 0x1a4);
            if (fd < 0) Assert.Fail($"creating f{i} failed with {Sys.LastErrno}; stderr:\n{s.Stderr}");
            Sys.Close(fd);
        }
        Assert.Equal(Count, Directory.EnumerateFiles(dir).Count());
        // Every file is still known to the kernel (looked up, not forgotten): stat, write and read some through their handles.
        foreach (int i in new[] { 0, 1234, Count - 1 })
        {
            string f = Path.Combine(dir, $"f{i}");
            File.WriteAllText(f, $"file {i}");
            Assert.Equal($"file {i}", File.ReadAllText(f));
            Assert.Equal($"file {i}", File.ReadAllText(Path.Combine(s.Source, "many", $"f{i}")));
            Assert.Equal($"file {i}".Length, new FileInfo(f).Length);
        }
        Assert.True(s.IsRunning, $"the server died; stderr:\n{s.Stderr}");
    }

    [UnprivilegedFuseFact]
    public void An_ordinary_user_mounts_through_fusermount3()
    {
        using var s = LoopbackServer.Start(asUid: LoopbackServer.Nobody,
            prepare: src => File.WriteAllText(Path.Combine(src, "hello"), "hi from the source\n"));
        output.WriteLine(s.ReadyLine);
        Assert.False(s.Passthrough, "passthrough needs CAP_SYS_ADMIN: an ordinary user must not get it");
        var line = File.ReadLines("/proc/self/mountinfo").Single(l => l.Split(' ')[4] == s.MountPoint);
        output.WriteLine(line);
        Assert.Contains("fuse.lamina-loopback", line);
        Assert.Contains($"user_id={LoopbackServer.Nobody}", line);

        // Without allow_other only the mounting user may enter: do the I/O as that user.
        string script = $"set -e; cd '{s.MountPoint}'; cat hello; echo written > new; cat new; mkdir d; mv new d/renamed; ls d; stat -c %u d/renamed; ln d/renamed d/hard; stat -c %h d/hard; ln -s renamed d/sym; readlink d/sym";
        string outp = Posix.Run(Conditions.FindOnPath("setpriv")!, out int rc,
            $"--reuid={LoopbackServer.Nobody}", $"--regid={LoopbackServer.Nobody}", "--clear-groups", "--", "/bin/sh", "-c", script);
        output.WriteLine(outp);
        Assert.True(rc == 0, $"I/O as uid {LoopbackServer.Nobody} failed ({rc}):\n{outp}\nserver stderr:\n{s.Stderr}");
        Assert.Equal($"hi from the source\nwritten\nrenamed\n{LoopbackServer.Nobody}\n2\nrenamed\n", outp);
        Assert.Equal("written\n", File.ReadAllText(Path.Combine(s.Source, "d", "renamed")));
        Assert.Equal((uint)LoopbackServer.Nobody, Posix.LStat(Path.Combine(s.Source, "d", "renamed")).Uid);
        if (Conditions.IsRoot)
            Assert.Equal(Errno.EACCES, Posix.LStatErrno(Path.Combine(s.MountPoint, "hello"))); // not even root, without allow_other

        s.Signal(Posix.SIGTERM);
        Assert.True(s.WaitForExit(TimeSpan.FromSeconds(15)), "the unprivileged server did not exit on SIGTERM");
        Assert.Equal(0, s.Process!.ExitCode);
        Assert.False(s.Mounted, $"fusermount3 -u did not remove the mount; stderr:\n{s.Stderr}");
    }

    [UnprivilegedFuseFact(ordinaryUser: false)]
    public void Root_can_force_the_fusermount3_path()
    {
        using var s = LoopbackServer.Start(extraArgs: ["--unprivileged"], prepare: src => File.WriteAllText(Path.Combine(src, "a"), "a"));
        Assert.Equal("a", File.ReadAllText(Path.Combine(s.MountPoint, "a")));
        File.WriteAllText(Path.Combine(s.MountPoint, "b"), "b");
        Assert.Equal("b", File.ReadAllText(Path.Combine(s.Source, "b")));
        s.Signal(Posix.SIGTERM);
        Assert.True(s.WaitForExit(TimeSpan.FromSeconds(15)));
        Assert.Equal(0, s.Process!.ExitCode);
        Assert.False(s.Mounted, $"left mounted; stderr:\n{s.Stderr}");
    }

    /// <summary>The source path becomes fsname= in fusermount3's option list: commas and backslashes must be escaped.</summary>
    [UnprivilegedFuseFact(ordinaryUser: false)]
    public void A_source_path_with_a_comma_mounts_through_fusermount3()
    {
        using var s = LoopbackServer.Start(extraArgs: ["--unprivileged"], sourceName: @"a,b\c",
            prepare: src => File.WriteAllText(Path.Combine(src, "f"), "f"));
        Assert.Equal("f", File.ReadAllText(Path.Combine(s.MountPoint, "f")));
        var line = File.ReadLines("/proc/self/mountinfo").Single(l => l.Split(' ')[4] == s.MountPoint);
        output.WriteLine(line);
        Assert.Contains(@"/a,b\134c ", line); // the source as fsname, mountinfo octal-escapes the backslash
    }

    // ---- mount errors: these need neither root nor /dev/fuse (the mount point is checked first) ----

    [Fact]
    public void Mounting_on_a_missing_path_names_it()
    {
        string missing = Path.Combine(Path.GetTempPath(), "lamina-no-such-dir-" + Guid.NewGuid().ToString("N"));
        var ex = Assert.Throws<FuseMountException>(() => FuseMount.Mount(missing, new FuseMountOptions()));
        Assert.Contains(missing, ex.Message);
        Assert.Contains("does not exist", ex.Message);
        Assert.Equal(Errno.ENOENT, ex.Errno);
    }

    [Fact]
    public void Mounting_on_a_file_names_it()
    {
        string file = Path.GetTempFileName();
        try
        {
            var ex = Assert.Throws<FuseMountException>(() => FuseMount.Mount(file, new FuseMountOptions()));
            Assert.Contains(file, ex.Message);
            Assert.Contains("not a directory", ex.Message);
            Assert.Equal(Errno.ENOTDIR, ex.Errno);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Mounting_on_an_existing_mount_names_it()
    {
        var ex = Assert.Throws<FuseMountException>(() => FuseMount.Mount("/proc", new FuseMountOptions()));
        Assert.Contains("/proc", ex.Message);
        Assert.Contains("already a mount", ex.Message);
        Assert.Equal(Errno.EBUSY, ex.Errno);
    }

    [RootFact]
    public void Mounting_on_a_fresh_tmpfs_mount_names_it_and_unmounting_a_plain_dir_says_so()
    {
        var dir = Directory.CreateTempSubdirectory("lamina-tmpfs-").FullName;
        try
        {
            Posix.Check(Sys.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"), "mount tmpfs", dir);
            try
            {
                var ex = Assert.Throws<FuseMountException>(() => FuseMount.Mount(dir, new FuseMountOptions()));
                Assert.Contains(dir, ex.Message);
                Assert.Contains("already a mount", ex.Message);
            }
            finally { Posix.Check(Sys.Umount2(dir, 0), "umount tmpfs", dir); }

            var un = Assert.Throws<FuseMountException>(() => FuseMount.Unmount(dir));
            Assert.Contains(dir, un.Message);
            Assert.Contains("not a mount point", un.Message);
        }
        finally { Directory.Delete(dir); }
    }

    [Fact]
    public void The_loopback_sample_reports_bad_arguments()
    {
        string missing = Path.Combine(Path.GetTempPath(), "lamina-missing-" + Guid.NewGuid().ToString("N"));
        string outp = Posix.Run(LoopbackServer.Dotnet, out int rc, LoopbackServer.LoopbackDll, missing, "/tmp");
        Assert.Equal(2, rc);
        Assert.Contains($"source {missing} is not a directory", outp);

        outp = Posix.Run(LoopbackServer.Dotnet, out rc, LoopbackServer.LoopbackDll, "/tmp", missing);
        Assert.Equal(1, rc);
        Assert.Contains($"mount point {missing} does not exist", outp);

        outp = Posix.Run(LoopbackServer.Dotnet, out rc, LoopbackServer.LoopbackDll, "/tmp", "/tmp", "--bogus");
        Assert.Equal(2, rc);
        Assert.Contains("unknown option --bogus", outp);
        Assert.False(LoopbackServer.IsMounted(missing));
    }
}
