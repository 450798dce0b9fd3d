using Lamina.Native;

namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>
/// The last resort against a FUSE connection nobody answers (a test that serves its own mount and
/// got stuck): /sys/fs/fuse/connections/N/abort fails every request with ENOTCONN, which frees
/// every thread waiting on the mount.
/// </summary>
public static class FuseControl
{
    private const string Connections = "/sys/fs/fuse/connections";

    /// <summary>The connection number (the minor of the mount's device) of the FUSE mount at <paramref name="mountPoint"/>, from mountinfo (no FUSE request).</summary>
    public static int? ConnectionOf(string mountPoint)
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var f = line.Split(' ');
            if (f.Length > 4 && f[4] == mountPoint && f[2].Split(':') is [_, var minor])
                return int.Parse(minor, System.Globalization.CultureInfo.InvariantCulture);
        }
        return null;
    }

    /// <summary>Aborts connection <paramref name="connection"/>, mounting fusectl for the moment if it is not mounted.</summary>
    public static bool Abort(int connection)
    {
        bool mounted = false;
        try
        {
            if (!File.Exists(Path.Combine(Connections, connection.ToString(System.Globalization.CultureInfo.InvariantCulture), "abort")))
            {
                if (!Directory.Exists(Connections) || Sys.Mount("fusectl", Connections, "fusectl", 0, null) != 0) return false;
                mounted = true;
            }
            string abort = Path.Combine(Connections, connection.ToString(System.Globalization.CultureInfo.InvariantCulture), "abort");
            if (!File.Exists(abort)) return false;
            File.WriteAllText(abort, "1");
            return true;
        }
        finally
        {
            if (mounted) Sys.Umount2(Connections, Sys.MNT_DETACH);
        }
    }
}
