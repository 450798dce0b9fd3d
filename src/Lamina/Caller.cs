using Lamina.Native;

namespace Lamina;

/// <summary>Who asks for an operation: objects it creates get this uid/gid (subject to setgid directories).</summary>
public readonly record struct Caller(uint Uid, uint Gid, int Pid = 0, uint[]? Groups = null)
{
    /// <summary>The identity of this process, for in-process use.</summary>
    public static Caller Current => new(Sys.GetEUid(), Sys.GetEGid(), Sys.GetPid());
}
