namespace Lamina.Branches;

/// <summary>How a branch may be used, in mergerfs's terms.</summary>
public enum BranchMode
{
    /// <summary>Writable; new objects may be placed here.</summary>
    ReadWrite,
    /// <summary>Never written.</summary>
    ReadOnly,
    /// <summary>Writable for objects already here, but never chosen for new objects or copy-up.</summary>
    NoCreate,
}

/// <summary>A branch as configured, before it is opened and validated.</summary>
public sealed record BranchSpec(string Path, BranchMode Mode);

/// <summary>A configuration that cannot be used; the message names the option or branch at fault.</summary>
public sealed class UnionConfigException(string message, string? subject = null) : Exception(message)
{
    /// <summary>The option or branch path the error is about.</summary>
    public string? Subject { get; } = subject;
}
