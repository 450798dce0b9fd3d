using Lamina.Fuse.Wire;

namespace Lamina.Fuse;

/// <summary>What the kernel and the session agreed on at INIT.</summary>
public sealed class FuseConnectionInfo
{
    public uint ProtocolMajor { get; init; }
    public uint ProtocolMinor { get; init; }
    /// <summary>Everything the kernel offered.</summary>
    public InitFlags KernelFlags { get; init; }
    /// <summary>What the session enabled.</summary>
    public InitFlags Flags { get; init; }
    public uint MaxWrite { get; init; }
    public uint MaxReadahead { get; init; }
    public bool Passthrough => (Flags & InitFlags.Passthrough) != 0;
}
