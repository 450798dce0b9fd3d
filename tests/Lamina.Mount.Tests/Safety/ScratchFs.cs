using Lamina.Native;

namespace Lamina.Mount.Tests.Safety;

/// <summary>
/// A small filesystem of its own for a branch: tmpfs, or an ext4 or btrfs image on a loop device,
/// so a test can fill it, remount it read-only, put a quota on it or unmount it underneath a union.
/// Disposing unmounts it (waiting for a daemon that is still closing its descriptors) and removes it.
/// </summary>
public sealed class ScratchFs : IDisposable
{
    public string Path { get; }
    private readonly string? _image;
    private bool _mounted = true;

    private ScratchFs(string path, string? image)
    {
        Path = path;
        _image = image;
    }

    public static ScratchFs Tmpfs(string options = "size=16m")
    {
        var dir = Directory.CreateTempSubdirectory("lamina-scratch-").FullName;
        Must($"mount -t tmpfs -o {options} lamina-scratch {dir}");
        return new ScratchFs(dir, null);
    }

    /// <summary>An ext4 image of <paramref name="megabytes"/> MiB made with <c>mkfs.ext4 -F</c>, loop-mounted.</summary>
    public static ScratchFs Ext4(int megabytes, string mkfsOptions = "", string mountOptions = "")
    {
        var dir = Directory.CreateTempSubdirectory("lamina-scratch-").FullName;
        var image = dir + ".img";
        Must($"truncate -s {megabytes}M {image} && mkfs.ext4 -q -F {mkfsOptions} {image}");
        Must($"mount -o loop{(mountOptions.Length > 0 ? "," + mountOptions : "")} {image} {dir}");
        return new ScratchFs(dir, image);
    }

    /// <summary>
    /// A btrfs image with quotas on and one subvolume, <c>vol</c>, limited to <paramref name="limit"/>
    /// (btrfs qgroup syntax, e.g. 4M): writes past it fail with EDQUOT, for root and everyone else.
    /// </summary>
    public static ScratchFs BtrfsWithQuota(string limit)
    {
        var dir = Directory.CreateTempSubdirectory("lamina-scratch-").FullName;
        var image = dir + ".img";
        Must($"truncate -s 256M {image} && mkfs.btrfs -q -f {image} >/dev/null");
        Must($"mount -o loop {image} {dir}");
        var fs = new ScratchFs(dir, image);
        Must($"btrfs quota enable {dir} && btrfs subvolume create {dir}/vol >/dev/null && btrfs qgroup limit {limit} {dir}/vol");
        return fs;
    }

    public void Remount(string options) => Must($"mount -o remount,{options} {Path}");

    /// <summary>Detaches the filesystem from the tree (umount -l); whoever holds descriptors into it keeps it alive.</summary>
    public void UnmountLazily()
    {
        Must($"umount -l {Path}");
        _mounted = false;
    }

    public static void Must(string command)
    {
        var r = Cli.Shell(command);
        Assert.True(r.ExitCode == 0, $"'{command}' failed ({r.ExitCode}): {r.StdErr}");
    }

    public void Dispose()
    {
        if (_mounted)
        {
            // A daemon that has just been unmounted may still be closing its branch descriptors.
            for (int i = 0; i < 50 && Sys.Umount2(Path, 0) != 0 && Sys.LastErrno == Errno.EBUSY; i++) Thread.Sleep(100);
            Sys.Umount2(Path, Sys.MNT_DETACH);
        }
        try { Directory.Delete(Path, recursive: false); } catch (IOException) { }
        if (_image is not null) File.Delete(_image);
    }
}

/// <summary>
/// Runs one filesystem operation in a separate process (python3), optionally as another user, and
/// tells its result the way errno does: "ok" or the error's name (EROFS, EDQUOT, ...).
/// </summary>
public static class FsCall
{
    private const string Prelude = """
        import os, sys, errno
        def write(p, data, flags=os.O_WRONLY | os.O_APPEND):
            fd = os.open(p, flags, 0o644)
            try:
                view = data.encode() if isinstance(data, str) else data
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        def create(p, data=''):
            write(p, data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        def read(p):
            with open(p, 'rb') as f:
                return f.read()
        try:
            exec(sys.argv[1])
            print('ok')
        except OSError as e:
            print(errno.errorcode.get(e.errno, str(e.errno)))
        """;

    /// <param name="code">Python statements; <c>write</c>, <c>create</c> and <c>read</c> are at hand.</param>
    /// <param name="uid">Run as this user and group (setpriv), or as root.</param>
    public static string Run(string code, uint? uid = null, int timeoutMs = 30_000)
    {
        // The system's interpreter: one installed under root's home is not reachable for another user.
        string python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var psi = new System.Diagnostics.ProcessStartInfo(uid is null ? python : "setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (uid is uint u) foreach (var a in new[] { $"--reuid={u}", $"--regid={u}", "--clear-groups", python }) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(Prelude);
        psi.ArgumentList.Add(code);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            return "hang";
        }
        string result = output.Result.Trim();
        return result.Length > 0 ? result : "python failed: " + err.Result;
    }
}

/// <summary>A mount test that also needs the named programs; skipped with the reason when one is missing.</summary>
public sealed class MountWithToolsFactAttribute : FactAttribute
{
    public MountWithToolsFactAttribute(params string[] tools)
    {
        if (MountFactAttribute.Why() is { } reason) Skip = reason;
        else if (tools.FirstOrDefault(t => !OnPath(t)) is { } missing)
            Skip = $"cannot run here: {missing} is not installed (./test installs it with apt when run as root)";
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':')
            .Concat(["/usr/sbin", "/sbin"]).Any(d => File.Exists(System.IO.Path.Combine(d, tool)));
}
