using System.Text;

namespace Lamina.Native;

/// <summary>Converts names and paths to the NUL-terminated bytes native calls take.</summary>
public static class PathBytes
{
    /// <summary>PATH_MAX plus room for the terminator: the largest path a call accepts.</summary>
    public const int MaxStack = 4097;

    /// <summary>UTF-8 bytes of <paramref name="path"/> and a NUL, in <paramref name="scratch"/> when it fits.</summary>
    public static ReadOnlySpan<byte> NulTerminated(string path, Span<byte> scratch)
    {
        int n = Encoding.UTF8.GetByteCount(path);
        Span<byte> dest = n < scratch.Length ? scratch : new byte[n + 1];
        Encoding.UTF8.GetBytes(path, dest);
        dest[n] = 0;
        return dest[..(n + 1)];
    }
}
