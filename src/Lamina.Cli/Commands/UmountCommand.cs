using Lamina.Fuse.Mounting;

namespace Lamina.Cli.Commands;

/// <summary>`lamina umount [-l] MOUNTPOINT`: unmounts a live mount, or clears one whose daemon died.</summary>
public static class UmountCommand
{
    public static int Run(string[] args)
    {
        bool lazy = args.Contains("-l") || args.Contains("--lazy");
        var targets = args.Where(a => !a.StartsWith('-')).ToList();
        if (targets.Count != 1) throw new CommandLineException("usage: lamina umount [-l] MOUNTPOINT");
        string target = Path.GetFullPath(targets[0]);
        try
        {
            FuseMount.Unmount(target, lazy);
        }
        catch (FuseMountException ex) when (Native.Sys.GetEUid() == 0 && ex.Errno == Native.Errno.EPERM)
        {
            return Program.Fail(ex.Message, 1);
        }
        catch (FuseMountException ex)
        {
            if (Native.Sys.GetEUid() != 0)
            {
                try { FuseMount.Unmount(target, lazy, viaFusermount: true); return 0; }
                catch (FuseMountException) { }
            }
            return Program.Fail(ex.Message, 1);
        }
        return 0;
    }
}
