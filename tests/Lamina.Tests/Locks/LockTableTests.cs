using Lamina.Locks;
using Lamina.Native;

namespace Lamina.Tests.Locks;

/// <summary>The engine's lock table through the in-process API: fcntl(2) and flock(2) semantics, keyed by union node.</summary>
public sealed class LockTableTests : IDisposable
{
    private const short R = LockType.Read, W = LockType.Write, U = LockType.Unlock;
    private readonly TestLayers _layers = new(1);
    private readonly UnionFileSystem _fs;
    private readonly List<UnionHandle> _handles = [];

    public LockTableTests()
    {
        TestLayers.WriteFile(_layers.Lowers[0], "lower.txt", "lower data\n");
        TestLayers.WriteFile(_layers.Upper!, "upper.txt", "upper data\n");
        _fs = _layers.Mount();
        _fs.Locks.Mirroring = LockMirroring.Local;
    }

    public void Dispose()
    {
        foreach (var h in _handles) h.Release();
        _fs.Locks.Clear();
        _layers.Dispose();
    }

    private UnionHandle Open(string path, int flags)
    {
        Assert.Equal(Errno.None, _fs.Paths.Open(path, flags, out var h));
        _handles.Add(h!);
        return h!;
    }

    private static LockRequest P(ulong owner, short type, long start, long end, UnionHandle h, int pid = 0) =>
        new(LockKind.Posix, owner, type, start, end, pid == 0 ? (int)owner : pid, h);

    private List<(ulong Owner, short Type, long Start, long End)> Held() =>
        _fs.Locks.Snapshot().Select(l => (l.Owner, l.Type, l.Start, l.End)).ToList();

    [Fact]
    public void Unlocking_the_middle_splits_a_range_and_frees_exactly_that_part()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(1, W, 0, 99, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(1, U, 40, 59, h)));
        Assert.Equal([(1ul, W, 0L, 39L), (1ul, W, 60L, 99L)], Held());
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(2, W, 40, 59, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(2, W, 30, 45, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(3, R, 99, LockRequest.ToEnd, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(3, R, 100, LockRequest.ToEnd, h)));
    }

    [Fact]
    public void Touching_ranges_of_one_type_merge_and_of_another_type_do_not()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(1, R, 0, 9, h));
        _fs.Locks.Set(n, P(1, R, 20, 29, h));
        _fs.Locks.Set(n, P(1, R, 10, 19, h));
        Assert.Equal([(1ul, R, 0L, 29L)], Held());
        _fs.Locks.Set(n, P(1, W, 30, LockRequest.ToEnd, h));
        Assert.Equal([(1ul, R, 0L, 29L), (1ul, W, 30L, LockRequest.ToEnd)], Held());
        // A write lock over the middle of the read range cuts it in three.
        _fs.Locks.Set(n, P(1, W, 5, 9, h));
        Assert.Equal([(1ul, R, 0L, 4L), (1ul, W, 5L, 9L), (1ul, R, 10L, 29L), (1ul, W, 30L, LockRequest.ToEnd)], Held());
    }

    [Fact]
    public void An_upgrade_that_conflicts_fails_atomically_and_a_downgrade_lets_readers_in()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(1, R, 0, 99, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(2, R, 50, 59, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(1, W, 0, 99, h)));
        Assert.Contains((1ul, R, 0L, 99L), Held()); // the read lock is still whole
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(2, U, 0, LockRequest.ToEnd, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(1, W, 0, 99, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(2, R, 60, 70, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(1, R, 50, 99, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, P(2, R, 60, 70, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(2, R, 10, 20, h)));
    }

    [Fact]
    public void Getlk_names_the_first_conflicting_lock_in_the_kernels_list_order()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(7, R, 50, 59, h, pid: 700));
        _fs.Locks.Set(n, P(8, R, 0, 9, h, pid: 800));
        _fs.Locks.Set(n, P(7, R, 0, 4, h, pid: 700)); // joins owner 7's group, ahead of owner 8
        Assert.Equal(Errno.None, _fs.Locks.Test(n, P(9, W, 0, 100, h), out var c));
        Assert.NotNull(c);
        Assert.Equal((700, 0L, 4L, R), (c!.Pid, c.Start, c.End, c.Type));
        Assert.Equal(Errno.None, _fs.Locks.Test(n, P(9, R, 0, 100, h), out c));
        Assert.Null(c);
        Assert.Equal(Errno.None, _fs.Locks.Test(n, P(7, W, 0, 100, h), out c));
        Assert.Equal(800, c!.Pid); // owner 7's own locks never conflict with it
    }

    [Fact]
    public void Ofd_and_posix_locks_with_the_same_id_are_different_owners_and_ofd_holders_show_pid_minus_one()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        Assert.Equal(Errno.None, _fs.Locks.Set(n, new LockRequest(LockKind.Ofd, 5, W, 0, 9, 123, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(5, R, 0, 0, h)));
        _fs.Locks.Test(n, P(5, R, 0, 0, h), out var c);
        Assert.Equal(-1, c!.Pid);
    }

    [Fact]
    public void Flock_shares_and_excludes_and_a_conversion_drops_the_old_lock_first()
    {
        var h = Open("/lower.txt", Sys.O_RDONLY);
        var n = h.Node;
        Assert.Equal(Errno.None, _fs.Locks.Set(n, LockRequest.Flock(1, R, 10, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, LockRequest.Flock(2, R, 20, h)));
        // flock and POSIX locks do not see each other.
        Assert.Equal(Errno.EBADF, _fs.Locks.Set(n, P(3, W, 0, 9, h))); // read-only handle: EBADF like fcntl
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, LockRequest.Flock(1, W, 10, h)));
        Assert.Equal([(2ul, R, 0L, LockRequest.ToEnd)], Held()); // owner 1 lost its shared lock, as with flock(2)
        Assert.Equal(Errno.None, _fs.Locks.Set(n, LockRequest.Flock(2, W, 20, h)));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, LockRequest.Flock(1, R, 10, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, LockRequest.Flock(2, U, 20, h)));
        Assert.Equal(Errno.None, _fs.Locks.Set(n, LockRequest.Flock(1, R, 10, h)));
    }

    [Fact]
    public async Task Past_MaxWaiters_a_request_that_would_wait_fails_with_ENOLCK()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.MaxWaiters = 2;
        _fs.Locks.Set(n, P(1, W, 0, 9, h));
        var w2 = _fs.Locks.SetWait(n, P(2, W, 0, 0, h), CancellationToken.None);
        var w3 = _fs.Locks.SetWait(n, P(3, R, 5, 5, h), CancellationToken.None);
        Assert.Equal(Errno.ENOLCK, await _fs.Locks.SetWait(n, P(4, W, 9, 9, h), CancellationToken.None));
        Assert.Equal(2, _fs.Locks.WaiterCount);
        // Requests that need not wait are not limited.
        Assert.Equal(Errno.None, await _fs.Locks.SetWait(n, P(4, W, 20, 29, h), CancellationToken.None));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(n, P(5, W, 0, 0, h)));
        // A place frees up when a waiter is granted.
        _fs.Locks.Set(n, P(1, U, 0, 9, h));
        Assert.Equal(Errno.None, await w2.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(Errno.None, await w3.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        var w5 = _fs.Locks.SetWait(n, P(5, W, 0, 0, h), CancellationToken.None);
        Assert.False(w5.IsCompleted);
        Assert.Equal(1, _fs.Locks.WaiterCount);
        _fs.Locks.Set(n, P(2, U, 0, 0, h));
        Assert.Equal(Errno.None, await w5.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_blocked_request_is_granted_when_the_holder_unlocks()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(1, W, 0, 9, h));
        var wait = _fs.Locks.SetWait(n, P(2, W, 5, 15, h), CancellationToken.None);
        Assert.False(wait.IsCompleted);
        Assert.Equal(1, _fs.Locks.WaiterCount);
        _fs.Locks.Set(n, P(1, U, 0, 4, h)); // still overlaps: keeps waiting
        await Task.Delay(20);
        Assert.False(wait.IsCompleted);
        _fs.Locks.Set(n, P(1, U, 5, 9, h));
        Assert.Equal(Errno.None, await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Contains((2ul, W, 5L, 15L), Held());
    }

    [Fact]
    public async Task A_cycle_of_blocking_posix_requests_is_refused_with_EDEADLK()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(1, W, 0, 0, h));
        _fs.Locks.Set(n, P(2, W, 1, 1, h));
        _fs.Locks.Set(n, P(3, W, 2, 2, h));
        var w1 = _fs.Locks.SetWait(n, P(1, W, 1, 1, h), CancellationToken.None); // 1 waits for 2
        var w2 = _fs.Locks.SetWait(n, P(2, W, 2, 2, h), CancellationToken.None); // 2 waits for 3
        Assert.Equal(Errno.EDEADLK, await _fs.Locks.SetWait(n, P(3, W, 0, 0, h), CancellationToken.None)); // 3 -> 1 closes the cycle
        // OFD owners are not followed, as in the kernel: the same shape with an OFD requester just waits.
        var w3 = _fs.Locks.SetWait(n, new LockRequest(LockKind.Ofd, 3, W, 0, 0, 3, h), CancellationToken.None);
        Assert.False(w3.IsCompleted);
        _fs.Locks.ReleaseOwner(n, 3); // 3 closes: 2 gets its lock
        Assert.Equal(Errno.None, await w2.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(w1.IsCompleted);
        _fs.Locks.ReleaseOwner(n, 2);
        Assert.Equal(Errno.None, await w1.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        _fs.Locks.ReleaseOwner(n, 1);
        Assert.Equal(Errno.None, await w3.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_waiter_that_wakes_into_a_cycle_is_refused_with_EDEADLK_as_the_kernel_retry_does()
    {
        // Found by the mount soak (LockSoakTests): a waiter whose blocker lets go, and that then
        // conflicts with a lock whose owner waits for it, must not wait again. The kernel runs its
        // detector on every retry of a blocked request (posix_lock_inode) and answers EDEADLK.
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(1, W, 0, 0, h));
        _fs.Locks.Set(n, P(2, W, 1, 1, h));
        _fs.Locks.Set(n, P(3, W, 2, 2, h));
        var w1 = _fs.Locks.SetWait(n, P(1, W, 1, 2, h), CancellationToken.None); // 1 waits for 2 (the first conflict)
        Assert.False(w1.IsCompleted);
        var w3 = _fs.Locks.SetWait(n, P(3, W, 0, 0, h), CancellationToken.None); // 3 waits for 1, which waits for 2: no cycle yet
        Assert.False(w3.IsCompleted);
        _fs.Locks.Set(n, P(2, U, 1, 1, h)); // 1 wakes and now conflicts with 3, which waits for 1
        Assert.Equal(Errno.EDEADLK, await w1.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(w3.IsCompleted);
        _fs.Locks.ReleaseOwner(n, 1);
        Assert.Equal(Errno.None, await w3.AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Cancelling_a_wait_removes_it()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(1, W, 0, 9, h));
        using var cts = new CancellationTokenSource();
        var wait = _fs.Locks.SetWait(n, P(2, R, 0, 0, h), cts.Token);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.AsTask());
        Assert.Equal(0, _fs.Locks.WaiterCount);
        _fs.Locks.Set(n, P(1, U, 0, 9, h));
        Assert.DoesNotContain(Held(), l => l.Owner == 2);
    }

    [Fact]
    public void Releasing_a_handle_drops_the_locks_taken_through_it()
    {
        var a = Open("/upper.txt", Sys.O_RDWR);
        var b = Open("/upper.txt", Sys.O_RDWR);
        _fs.Locks.Set(a.Node, new LockRequest(LockKind.Ofd, 1, W, 0, 9, 1, a));
        _fs.Locks.Set(b.Node, LockRequest.Flock(2, R, 2, b));
        a.Release();
        Assert.Equal([(2ul, R, 0L, LockRequest.ToEnd)], Held());
        b.Release();
        Assert.Empty(Held());
    }

    [Fact]
    public void Start_and_length_convert_as_fcntl_does()
    {
        Assert.True(LockRequest.FromStartLen(10, 5, out var s, out var e));
        Assert.Equal((10L, 14L), (s, e));
        Assert.True(LockRequest.FromStartLen(10, 0, out s, out e));
        Assert.Equal((10L, LockRequest.ToEnd), (s, e));
        Assert.True(LockRequest.FromStartLen(10, -5, out s, out e));
        Assert.Equal((5L, 9L), (s, e));
        Assert.False(LockRequest.FromStartLen(2, -5, out _, out _));
        Assert.False(LockRequest.FromStartLen(long.MaxValue, 2, out _, out _));
    }

    [Fact]
    public async Task Mandatory_mode_refuses_writes_into_another_owners_range_only()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(1, R, 10, 19, h, pid: 100));
        Assert.Equal(Errno.None, _fs.Locks.CheckWrite(n, 15, 1, owner: null, pid: 200, wait: false)); // not mandatory yet
        _fs.Locks.Mandatory = true;
        Assert.Equal(Errno.EAGAIN, _fs.Locks.CheckWrite(n, 15, 1, owner: null, pid: 200, wait: false));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.CheckWrite(n, 0, 11, owner: 2, pid: 200, wait: false));
        Assert.Equal(Errno.None, _fs.Locks.CheckWrite(n, 0, 10, owner: null, pid: 200, wait: false));
        Assert.Equal(Errno.None, _fs.Locks.CheckWrite(n, 15, 1, owner: 1, pid: 200, wait: false)); // its owner
        Assert.Equal(Errno.None, _fs.Locks.CheckWrite(n, 15, 1, owner: null, pid: 100, wait: false)); // its process
        var waiting = Task.Run(() => _fs.Locks.CheckWrite(n, 15, 1, owner: null, pid: 200, wait: true));
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        _fs.Locks.ReleaseOwner(n, 1);
        Assert.Equal(Errno.None, await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Releasing_a_file_owner_drops_its_flock_and_ofd_style_locks_but_not_others()
    {
        var h = Open("/upper.txt", Sys.O_RDWR);
        var n = h.Node;
        _fs.Locks.Set(n, P(9, W, 0, 9, h));
        _fs.Locks.Set(n, LockRequest.Flock(9, R, 9, h));
        _fs.Locks.Set(n, P(8, W, 10, 19, h));
        _fs.Locks.ReleaseFileOwner(n, 9);
        Assert.Equal([(8ul, W, 10L, 19L)], Held());
    }

    [Fact]
    public void Copy_up_changes_nothing_a_read_lock_on_the_lower_file_blocks_a_writer_that_copied_it_up()
    {
        var ro = Open("/lower.txt", Sys.O_RDONLY);
        var node = ro.Node;
        Assert.Equal(Errno.None, _fs.Locks.Set(node, P(1, R, 0, LockRequest.ToEnd, ro, pid: 4242)));
        var rw = Open("/lower.txt", Sys.O_RDWR); // copies up
        Assert.Same(node, rw.Node);
        Assert.True(File.Exists(Path.Combine(_layers.Upper!, "lower.txt")));
        Assert.Equal(Errno.EAGAIN, _fs.Locks.Set(rw.Node, P(2, W, 0, 0, rw)));
        Assert.Equal(Errno.None, _fs.Locks.Test(rw.Node, P(2, W, 0, 0, rw), out var c));
        Assert.Equal((4242, R), (c!.Pid, c.Type));
    }
}
