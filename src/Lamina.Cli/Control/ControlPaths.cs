using System.Security.Cryptography;
using System.Text;
using Lamina.Native;

namespace Lamina.Cli.Control;

/// <summary>Where a mount's daemon listens: one socket per mount point, in a directory only its owner can use.</summary>
public static class ControlPaths
{
    public static string Directory
    {
        get
        {
            if (Environment.GetEnvironmentVariable("LAMINA_RUN_DIR") is { Length: > 0 } custom) return custom;
            if (Sys.GetEUid() == 0) return "/run/lamina";
            var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            return string.IsNullOrEmpty(runtime) ? $"/tmp/lamina-{Sys.GetEUid()}" : Path.Combine(runtime, "lamina");
        }
    }

    public static string SocketFor(string mountPoint) => Path.Combine(Directory, Key(mountPoint) + ".sock");

    /// <summary>Where the daemon of <paramref name="mountPoint"/> keeps its watch table between runs.</summary>
    public static string WatchStateFor(string mountPoint) => Path.Combine(Directory, Key(mountPoint) + ".watches");

    private static string Key(string mountPoint)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(mountPoint).TrimEnd('/')));
        return Convert.ToHexString(hash, 0, 8).ToLowerInvariant();
    }
}
