using System.Diagnostics;
using Lamina.Native;

namespace Lamina.Fuse.Mounting;

/// <summary>
/// A FUSE mount: the /dev/fuse descriptor the kernel talks through, attached at a mount point.
/// As root the mount is made with mount(2); otherwise fusermount3 (setuid) makes it and passes
/// the descriptor back over a socket. Disposing does not unmount: the mount lives until
/// <see cref="Unmount"/> or until the kernel sees the last descriptor of the session close.
/// </summary>
public sealed class FuseMount
{
    private FuseMount(SafeFd device, string mountPoint, bool viaFusermount)
    {
        Device = device;
        MountPoint = mountPoint;
        ViaFusermount = viaFusermount;
    }

    /// <summary>The session descriptor; the session reads requests from it and from its clones.</summary>
    public SafeFd Device { get; }
    public string MountPoint { get; }
    public bool ViaFusermount { get; }

    /// <summary>
    /// Test hook: a "mount" over any descriptor that behaves like /dev/fuse (e.g. one end of a
    /// SOCK_SEQPACKET socketpair), so a session can be driven without the kernel.
    /// </summary>
    internal static FuseMount ForDescriptor(SafeFd device, string mountPoint) => new(device, mountPoint, viaFusermount: false);

    public static FuseMount Mount(string mountPoint, FuseMountOptions options)
    {
        string target = Path.GetFullPath(mountPoint);
        CheckMountPoint(target);
        if (!File.Exists("/dev/fuse"))
            throw new FuseMountException("/dev/fuse does not exist: load the fuse module (modprobe fuse) or run where FUSE is available", Errno.ENODEV);
        bool root = Sys.GetEUid() == 0;
        return root && !options.ForceUnprivileged ? MountDirect(target, options) : MountWithFusermount(target, options);
    }

    private static void CheckMountPoint(string target)
    {
        if (Sys.LStatxAt(Sys.AT_FDCWD, target, out var st) != 0)
        {
            var e = Sys.LastErrno;
            throw new FuseMountException(e == Errno.ENOENT
                ? $"mount point {target} does not exist"
                : $"mount point {target}: {Sys.StrError(e)}", e);
        }
        if (!st.IsDirectory) throw new FuseMountException($"mount point {target} is not a directory", Errno.ENOTDIR);
        const ulong STATX_ATTR_MOUNT_ROOT = 0x2000;
        if ((st.Attributes & STATX_ATTR_MOUNT_ROOT) != 0 && target != "/")
            throw new FuseMountException($"mount point {target} is already a mount; unmount it first", Errno.EBUSY);
    }

    private static FuseMount MountDirect(string target, FuseMountOptions options)
    {
        int fd = Sys.Open("/dev/fuse", Sys.O_RDWR | Sys.O_CLOEXEC);
        if (fd < 0)
        {
            var e = Sys.LastErrno;
            throw new FuseMountException($"cannot open /dev/fuse: {Sys.StrError(e)}", e);
        }
        var device = new SafeFd(fd);
        Sys.LStatxAt(Sys.AT_FDCWD, target, out var st);
        string data = $"fd={fd},rootmode={Convert.ToString(st.Mode & ModeBits.S_IFMT, 8)},user_id={Sys.GetUid()},group_id={Sys.GetGid()}";
        if (options.AllowOther) data += ",allow_other";
        if (options.DefaultPermissions) data += ",default_permissions";
        ulong flags = (options.NoSuid ? Sys.MS_NOSUID : 0) | (options.NoDev ? Sys.MS_NODEV : 0)
            | (options.NoExec ? Sys.MS_NOEXEC : 0) | (options.ReadOnly ? Sys.MS_RDONLY : 0)
            | (options.NoAtime ? Sys.MS_NOATIME : 0);
        string type = string.IsNullOrEmpty(options.Subtype) ? "fuse" : "fuse." + options.Subtype;
        if (Sys.Mount(options.FsName, target, type, flags, data) != 0)
        {
            var e = Sys.LastErrno;
            device.Dispose();
            throw new FuseMountException(e switch
            {
                Errno.EPERM => $"mount {target}: permission denied (mounting needs CAP_SYS_ADMIN; as a user, fusermount3 is used)",
                Errno.ENODEV => $"mount {target}: the kernel has no FUSE support (modprobe fuse)",
                _ => $"mount {target}: {Sys.StrError(e)}",
            }, e);
        }
        return new FuseMount(device, target, viaFusermount: false);
    }

    private static unsafe FuseMount MountWithFusermount(string target, FuseMountOptions options)
    {
        string? fusermount = FindFusermount()
            ?? throw new FuseMountException("fusermount3 was not found: install the fuse3 package to mount as an ordinary user", Errno.ENOENT);
        int* pair = stackalloc int[2];
        if (Sys.SocketPair(Sys.AF_UNIX, Sys.SOCK_STREAM, 0, pair) != 0)
            throw new FuseMountException($"socketpair: {Sys.StrError(Sys.LastErrno)}", Sys.LastErrno);
        using var ours = new SafeFd(pair[0]);
        using var theirs = new SafeFd(pair[1]);
        Sys.Fcntl(pair[0], Sys.F_SETFD, Sys.FD_CLOEXEC);

        // fusermount3 splits -o at commas and takes a backslash as an escape (as libfuse escapes them).
        static string Escape(string v) => v.Replace("\\", "\\\\").Replace(",", "\\,");
        var opts = new List<string> { $"fsname={Escape(options.FsName)}", $"subtype={Escape(options.Subtype)}" };
        if (options.AllowOther) opts.Add("allow_other");
        if (options.DefaultPermissions) opts.Add("default_permissions");
        if (options.ReadOnly) opts.Add("ro");
        if (options.NoSuid) opts.Add("nosuid");
        if (options.NoDev) opts.Add("nodev");
        if (options.NoExec) opts.Add("noexec");
        if (options.NoAtime) opts.Add("noatime");

        var psi = new ProcessStartInfo(fusermount)
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-o");
        psi.ArgumentList.Add(string.Join(',', opts));
        psi.ArgumentList.Add("--");
        psi.ArgumentList.Add(target);
        psi.Environment["_FUSE_COMMFD"] = pair[1].ToString(System.Globalization.CultureInfo.InvariantCulture);
        // Process.Start closes inherited descriptors only when they are close-on-exec; ours (pair[1]) is not.
        using var proc = Process.Start(psi) ?? throw new FuseMountException($"cannot start {fusermount}");
        theirs.Dispose();
        int fd = Sys.ReceiveDescriptor(pair[0]);
        string err = proc.StandardError.ReadToEnd().Trim();
        proc.WaitForExit();
        if (fd < 0 || proc.ExitCode != 0)
        {
            if (fd >= 0) Sys.Close(fd);
            throw new FuseMountException($"fusermount3 could not mount {target}: {(err.Length > 0 ? err : $"exit code {proc.ExitCode}")}", Errno.EPERM);
        }
        Sys.Fcntl(fd, Sys.F_SETFD, Sys.FD_CLOEXEC);
        return new FuseMount(new SafeFd(fd), target, viaFusermount: true);
    }

    internal static string? FindFusermount()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Append("/usr/bin").Append("/bin"))
        {
            string candidate = Path.Combine(dir, "fusermount3");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Detaches the mount. Lazy unmount detaches it even while busy.</summary>
    public void Unmount(bool lazy = false) => Unmount(MountPoint, lazy, ViaFusermount);

    /// <summary>Unmounts any FUSE mount point: umount2 as root, fusermount3 -u otherwise.</summary>
    public static void Unmount(string mountPoint, bool lazy = false, bool viaFusermount = false)
    {
        string target = Path.GetFullPath(mountPoint);
        if (Sys.GetEUid() == 0 && !viaFusermount)
        {
            if (Sys.Umount2(target, lazy ? Sys.MNT_DETACH : 0) == 0) return;
            var e = Sys.LastErrno;
            throw new FuseMountException(e switch
            {
                Errno.EBUSY => $"{target} is busy (use a lazy unmount to detach it anyway)",
                Errno.EINVAL => $"{target} is not a mount point",
                Errno.ENOENT => $"{target} does not exist",
                _ => $"unmount {target}: {Sys.StrError(e)}",
            }, e);
        }
        string fusermount = FindFusermount() ?? throw new FuseMountException("fusermount3 was not found: install the fuse3 package", Errno.ENOENT);
        var psi = new ProcessStartInfo(fusermount) { RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(lazy ? "-uz" : "-u");
        psi.ArgumentList.Add("--");
        psi.ArgumentList.Add(target);
        using var proc = Process.Start(psi)!;
        string err = proc.StandardError.ReadToEnd().Trim();
        proc.WaitForExit();
        if (proc.ExitCode != 0) throw new FuseMountException($"fusermount3 -u {target}: {err}", Errno.EINVAL);
    }
}
