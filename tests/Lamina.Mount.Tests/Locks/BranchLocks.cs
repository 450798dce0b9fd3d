using Lamina.Native;

namespace Lamina.Mount.Tests.Locks;

/// <summary>What a branch file's own lock manager holds, asked through a fresh open file description (so the asker's own locks are not in the way).</summary>
internal static class BranchLocks
{
    /// <summary>What would block a write lock on all of the file (l_type; F_UNLCK when nothing).</summary>
    public static short Holder(string branchFile)
    {
        using var fd = new SafeFd(Sys.Open(branchFile, Sys.O_RDONLY | Sys.O_CLOEXEC));
        Assert.False(fd.IsInvalid);
        var fl = new FLock { Type = Sys.F_WRLCK };
        Assert.Equal(0, Sys.FcntlLock(fd.Fd, Sys.F_OFD_GETLK, ref fl));
        return fl.Type;
    }

    /// <summary>Whether an exclusive flock on the file is granted at once.</summary>
    public static bool FlockFree(string branchFile)
    {
        using var fd = new SafeFd(Sys.Open(branchFile, Sys.O_RDONLY | Sys.O_CLOEXEC));
        Assert.False(fd.IsInvalid);
        if (Sys.Flock(fd.Fd, Sys.LOCK_EX | Sys.LOCK_NB) != 0) return false;
        Sys.Flock(fd.Fd, Sys.LOCK_UN);
        return true;
    }
}
