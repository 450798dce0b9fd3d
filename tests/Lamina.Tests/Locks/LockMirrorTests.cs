using Lamina.Locks;
using Lamina.Native;

namespace Lamina.Tests.Locks;

/// <summary>Mirroring: union locks are also OFD locks (or flocks) on the branch file behind the node, so parties outside the union see them and the other way round.</summary>
public sealed class LockMirrorTests : IDisposable
{
    private const short R = LockType.Read, W = LockType.Write;
    private readonly TestLayers _layers = new(1);
    private readonly UnionFileSystem _fs;
    private readonly List<UnionHandle> _handles = [];
    private readonly List<SafeFd> _direct = [];

    public LockMirrorTests()
    {
        TestLayers.WriteFile(_layers.Lowers[0], "lower.txt", "lower data\n");
        TestLayers.WriteFile(_layers.Upper!, "upper.txt", "upper data\n");
        _fs = _layers.Mount();
        Assert.Equal(LockMirroring.Mirror, _fs.Locks.Mirroring);
    }

    public void Dispose()
    {
        foreach (var h in _handles) h.Release();
        foreach (var fd in _direct) fd.Dispose();
        _fs.Locks.Clear();
        _layers.Dispose();
    }

    private UnionHandle Open(string path, int flags)
    {
        Assert.Equal(Errno.None, _fs.Paths.Open(path, flags, out var h));
        _handles.Add(h!);
        return h!;
    }

    /// <summary>A descriptor of the branch file itself, as a process using the branch directly has.</summary>
    private SafeFd Direct(string branchPath, int flags = Sys.O_RDWR)
    {
        var fd = new SafeFd(Sys.Open(branchPath, flags | Sys.O_CLOEXEC));
        Assert.False(fd.IsInvalid, $"open {branchPath}: {Sys.LastErrno}");
        _direct.Add(fd);
        return fd;
    }

    private static Errno OfdSet(SafeFd fd, short type, long start = 0, long len = 0)
    {
        var fl = new FLock { Type = type, Start = start, Len = len };
        return Sys.FcntlLock(fd.Fd, Sys.F_OFD_SETLK, ref fl) == 0 ? Errno.None : Sys.LastErrno;
    }

    /// <summary>The type of lock that would block a write lock on the whole file, as the branch file's lock manager sees it.</summary>
    private static short Holder(SafeFd probe)
    {
        var fl = new FLock { Type = Sys.F_WRLCK };
        Assert.Equal(0, Sys.FcntlLock(probe.Fd, Sys.F_OFD_GETLK, ref fl));
        return fl.Type;
    }

    private static LockRequest P(ulong owner, short type, UnionHandle h, long start = 0, long end = LockRequest.ToEnd) =>
        new(LockKind.Posix, owner, type, start, end, (int)owner, h);

    [Fact]
    public void A_union_lock_is_held_on_the_branch_file_and_refuses_a_direct_locker()
    {
        var h = Open("/lower.txt", Sys.O_RDONLY);
        var direct = Direct(Path.Combine(_layers.Lowers[0], "lower.txt"));
        Assert.Equal(Sys.F_UNLCK, Holder(direct));
        Assert.Equal(Errno.None, _fs.Locks.Set(h.Node, P(1, R, h)));
        Assert.Equal(Sys.F_RDLCK, Holder(direct));
        Assert.Equal(Errno.EAGAIN, OfdSet(direct, Sys.F_WRLCK));
        Assert.Equal(Errno.None, OfdSet(direct, Sys.F_RDLCK)); // readers share, as through the union
        Assert.Equal(Errno.None, OfdSet(direct, Sys.F_UNLCK));
        Assert.Equal(Errno.None, _fs.Locks.Set(h.Node, P(1, LockType.Unlock, h)));
        Assert.Equal(Sys.F_UNLCK, Holder(direct));
    }

    [Fact]
    public async Task A_lock_held_directly_on_the_branch_file_is_refused_through_the_union_reported_and_waited_for()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var direct = Direct(Path.Combine(_layers.Upper!, "upper.txt"));
        Assert.Equal(Errno.None, OfdSet(direct, Sys.F_WRLCK, 10, 10));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(h.Node, P(1, R, h, 0, 15)));
        Assert.Equal(Errno.None, _fs.Locks.Set(h.Node, P(1, R, h, 0, 9)));
        Assert.Equal(Errno.None, _fs.Locks.Test(h.Node, P(2, W, h, 0, 100), out var c));
        Assert.False(c!.External); // the union's own holder comes first
        Assert.Equal((1ul, R), (c.Owner, c.Type));
        Assert.Equal(Errno.None, _fs.Locks.Test(h.Node, P(1, W, h, 5, 100), out c));
        Assert.True(c!.External);
        Assert.Equal((W, 10L, 19L), (c.Type, c.Start, c.End));

        var wait = _fs.Locks.SetWait(h.Node, P(1, W, h, 0, 15), CancellationToken.None);
        await Task.Delay(50);
        Assert.False(wait.IsCompleted);
        Assert.Equal(Errno.None, OfdSet(direct, Sys.F_UNLCK));
        Assert.Equal(Errno.None, await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(Sys.F_WRLCK, Holder(direct));
    }

    [Fact]
    public void Copy_up_takes_the_mirrored_locks_on_the_upper_copy_and_lets_the_lower_file_go()
    {
        var ro = Open("/lower.txt", Sys.O_RDONLY);
        var lowerProbe = Direct(Path.Combine(_layers.Lowers[0], "lower.txt"));
        Assert.Equal(Errno.None, _fs.Locks.Set(ro.Node, P(1, R, ro, 0, 99)));
        Assert.Equal(Errno.None, _fs.Locks.Set(ro.Node, LockRequest.Flock(7, W, 7, ro)));
        Assert.Equal(Sys.F_RDLCK, Holder(lowerProbe));

        var rw = Open("/lower.txt", Sys.O_RDWR); // copy-up
        var upperProbe = Direct(Path.Combine(_layers.Upper!, "lower.txt"));
        Assert.Equal(Sys.F_RDLCK, Holder(upperProbe));
        Assert.Equal(Sys.F_UNLCK, Holder(lowerProbe)); // every open file followed the node: nothing needs the lower locks
        Assert.Equal(-1, Sys.Flock(upperProbe.Fd, Sys.LOCK_SH | Sys.LOCK_NB)); // the flock moved too
        Assert.Equal(0, Sys.Flock(lowerProbe.Fd, Sys.LOCK_SH | Sys.LOCK_NB));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(rw.Node, P(2, W, rw, 0, 0)));
        Assert.All(_fs.Locks.Snapshot(), l => Assert.StartsWith(_layers.Upper!, l.Mirror));
    }

    [Fact]
    public void Releasing_the_handle_leaves_nothing_on_the_branch_file()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var probe = Direct(Path.Combine(_layers.Upper!, "upper.txt"));
        _fs.Locks.Set(h.Node, new LockRequest(LockKind.Ofd, 3, W, 0, 0, 3, h));
        _fs.Locks.Set(h.Node, LockRequest.Flock(4, R, 4, h));
        Assert.Equal(Sys.F_WRLCK, Holder(probe));
        h.Release();
        Assert.Equal(Sys.F_UNLCK, Holder(probe));
        Assert.Equal(0, Sys.Flock(probe.Fd, Sys.LOCK_EX | Sys.LOCK_NB));
        Assert.Equal(0, _fs.Locks.Count);
    }

    [Fact]
    public void With_locks_local_nothing_reaches_the_branch_file()
    {
        _fs.Locks.Mirroring = LockMirroring.Local;
        var h = Open("/upper.txt", Sys.O_RDWR);
        var probe = Direct(Path.Combine(_layers.Upper!, "upper.txt"));
        Assert.Equal(Errno.None, _fs.Locks.Set(h.Node, P(1, W, h)));
        Assert.Equal(Sys.F_UNLCK, Holder(probe));
    }
}
