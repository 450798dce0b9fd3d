using System.Text;

namespace Lamina.Fuse;

/// <summary>Extended attribute names as they arrive in GETXATTR, SETXATTR and REMOVEXATTR requests.</summary>
public static class XattrNames
{
    /// <summary>The name the kernel asks for before every write(2) to a file, to drop it (killpriv).</summary>
    public const string Capability = "security.capability";

    /// <summary>
    /// The name as a string. <see cref="Capability"/> comes once per write, so it is answered with
    /// the constant instead of a new string; any other name is decoded.
    /// </summary>
    public static string Decode(ReadOnlySpan<byte> name) =>
        name.SequenceEqual("security.capability"u8) ? Capability : Encoding.UTF8.GetString(name);
}
