using Lamina.Native;

namespace Lamina.Locks;

/// <summary>
/// The union's lock table: POSIX, OFD and flock locks keyed by union node, so copy-up (which moves a
/// node to another branch file) changes nothing in it. With <see cref="LockMirroring.Mirror"/> every
/// granted lock is also held on the branch file currently behind the node — POSIX and OFD ranges as
/// OFD locks, flock locks as flock — through one open file description per union owner, so the
/// branch's own lock manager arbitrates with every other party (a process using the branch directly,
/// another mount of the same layer, other hosts on NFS/SMB). A lock the branch file refuses is
/// refused through the union too.
/// </summary>
/// <remarks>
/// Threading: one monitor guards the whole table (deadlock detection needs a global view of who
/// waits for whom). Mirror calls made under it are non-blocking fcntl/flock calls. The table never
/// takes the engine's namespace lock, while copy-up calls into the table under it, so the order is
/// always namespace lock, then table.
/// </remarks>
public sealed class UnionLocks : IUnionObserver
{
    private const int MaxDeadlockIterations = 10; // as the kernel's MAX_DEADLK_ITERATIONS
    private const int MaxRetryDelayMs = 100;

    private readonly object _gate = new();
    private readonly Dictionary<UnionNode, NodeLocks> _nodes = [];
    private readonly List<Waiter> _waiters = [];
    private readonly UnionFileSystem _fs;

    internal UnionLocks(UnionFileSystem fs) => _fs = fs;

    /// <summary>Whether locks are also held on branch files (default) or kept in the union only.</summary>
    public LockMirroring Mirroring { get; set; } = LockMirroring.Mirror;

    /// <summary>Enforcing mode: writes and truncation into a range another owner locked are refused (see <see cref="CheckWrite"/>).</summary>
    public bool Mandatory { get; set; }

    /// <summary>Where mirror failures that do not change an answer are reported.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>Number of locks held (all kinds), for status output and tests.</summary>
    public int Count { get { lock (_gate) return _nodes.Values.Sum(n => n.Posix.Count + n.Flocks.Count); } }

    /// <summary>Default for <see cref="MaxWaiters"/>.</summary>
    public const int DefaultMaxWaiters = 4096;

    /// <summary>
    /// Most blocked requests waiting at once. Past it a new request that would have to wait fails
    /// with ENOLCK, what the kernel answers when it cannot allocate a lock, so that callers cannot
    /// make the table grow without bound. Requests that need not wait are not limited.
    /// </summary>
    public int MaxWaiters { get; set; } = DefaultMaxWaiters;

    /// <summary>Number of blocked requests.</summary>
    public int WaiterCount { get { lock (_gate) return _waiters.Count; } }

    // ---- requests -------------------------------------------------------------------------

    /// <summary>F_GETLK: the lock that would block <paramref name="request"/>, or null. Holders seen only on the branch file are reported too.</summary>
    public Errno Test(UnionNode node, in LockRequest request, out LockInfo? conflict)
    {
        conflict = null;
        var e = Validate(request with { Handle = null }); // F_GETLK needs no access mode
        if (e != Errno.None) return e;
        if (request.Kind == LockKind.Flock || request.Type == LockType.Unlock) return Errno.None;
        lock (_gate)
        {
            var nl = _nodes.GetValueOrDefault(node);
            if (nl?.FirstPosixConflict(request) is { } l)
            {
                conflict = Info(nl, l);
                return Errno.None;
            }
            if (Mirroring == LockMirroring.Mirror) conflict = ProbeBranch(node, nl, request);
            return Errno.None;
        }
    }

    /// <summary>F_SETLK / F_OFD_SETLK / flock with LOCK_NB, and every unlock: answers at once (EAGAIN on a conflict).</summary>
    public Errno Set(UnionNode node, in LockRequest request)
    {
        var e = Validate(request);
        if (e != Errno.None) return e;
        lock (_gate)
        {
            var nl = Table(node);
            bool changed = false;
            e = TryAcquire(nl, request, ref changed, out _);
            if (changed) Wake(nl);
            Tidy(nl);
            return e;
        }
    }

    /// <summary>
    /// F_SETLKW / F_OFD_SETLKW / flock: waits without holding a thread until the lock is granted, the
    /// request would deadlock (EDEADLK, POSIX only, as the kernel detects it), or
    /// <paramref name="cancel"/> fires (the task is cancelled; a transport answers EINTR).
    /// </summary>
    public ValueTask<Errno> SetWait(UnionNode node, LockRequest request, CancellationToken cancel)
    {
        var e = Validate(request);
        if (e != Errno.None) return ValueTask.FromResult(e);
        Waiter w;
        lock (_gate)
        {
            var nl = Table(node);
            bool changed = false;
            e = TryAcquire(nl, request, ref changed, out var blocker);
            if (changed) Wake(nl);
            if (e != Errno.EAGAIN || request.Type == LockType.Unlock)
            {
                Tidy(nl);
                return ValueTask.FromResult(e);
            }
            if (request.Kind == LockKind.Posix && WouldDeadlock(request.Owner, blocker))
            {
                Tidy(nl);
                return ValueTask.FromResult(Errno.EDEADLK);
            }
            if (cancel.IsCancellationRequested) return ValueTask.FromCanceled<Errno>(cancel);
            if (_waiters.Count >= MaxWaiters)
            {
                Tidy(nl);
                return ValueTask.FromResult(Errno.ENOLCK);
            }
            w = new Waiter(nl, request) { Blocker = blocker };
            nl.Waiters.Add(w);
            _waiters.Add(w);
            if (blocker.External) ScheduleRetry(w);
        }
        if (cancel.CanBeCanceled) w.Cancellation = cancel.Register(() => Cancel(w, cancel));
        return new ValueTask<Errno>(w.Done.Task);
    }

    /// <summary>close(2) for a POSIX owner (FUSE FLUSH): all its POSIX locks on the node go.</summary>
    public void ReleaseOwner(UnionNode node, ulong owner)
    {
        lock (_gate)
        {
            if (!_nodes.TryGetValue(node, out var nl)) return;
            if (nl.RemovePosix(l => l.Owner == owner && l.Kind == LockKind.Posix))
            {
                DropMirror(nl, new MirrorKey(false, false, owner));
                Wake(nl);
            }
            Tidy(nl);
        }
    }

    /// <summary>The last close of an open file description that held flock or OFD locks (FUSE_RELEASE_FLOCK_UNLOCK): every lock of that owner goes.</summary>
    public void ReleaseFileOwner(UnionNode node, ulong owner)
    {
        lock (_gate)
        {
            if (!_nodes.TryGetValue(node, out var nl)) return;
            bool changed = nl.RemoveFlocks(f => f.Owner == owner);
            changed |= nl.RemovePosix(l => l.Owner == owner);
            foreach (var key in nl.Mirrors.Keys.Where(k => k.Owner == owner).ToList()) DropMirror(nl, key);
            if (changed) Wake(nl);
            Tidy(nl);
        }
    }

    /// <summary>
    /// An open file was released: every lock taken through it goes. For POSIX owners this is only a
    /// safety net (their close already sent FLUSH); for OFD and flock owners it is the release itself.
    /// </summary>
    internal void ReleaseHandle(UnionHandle handle)
    {
        lock (_gate)
        {
            if (!_nodes.TryGetValue(handle.Node, out var nl)) return;
            var owners = nl.Posix.Where(l => l.Handle == handle).Select(l => new MirrorKey(false, l.Kind == LockKind.Ofd, l.Owner))
                .Concat(nl.Flocks.Where(f => f.Handle == handle).Select(f => new MirrorKey(true, false, f.Owner))).ToHashSet();
            bool changed = nl.RemovePosix(l => l.Handle == handle);
            changed |= nl.RemoveFlocks(f => f.Handle == handle);
            foreach (var key in owners)
            {
                if (!HoldsAny(nl, key)) DropMirror(nl, key);
                else ResyncMirror(nl, key);
            }
            foreach (var key in nl.Mirrors.Keys.ToList())
                if (!HoldsAny(nl, key)) DropMirror(nl, key); // idle mirrors go with any release, so none outlives its handles
            // Waiters that came through this handle can no longer be granted to anyone.
            foreach (var w in nl.Waiters.Where(w => w.Request.Handle == handle).ToList()) Finish(w, Errno.EBADF);
            if (changed) Wake(nl);
            PruneRetired(nl);
            Tidy(nl);
        }
    }

    /// <summary>Drops every lock and waiter (unmount).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            foreach (var w in _waiters.ToList()) Finish(w, Errno.EINTR);
            foreach (var nl in _nodes.Values)
            {
                foreach (var m in nl.Mirrors.Values) { m.Staged?.Dispose(); m.Fd.Dispose(); }
                foreach (var (_, fd) in nl.Retired) fd.Dispose();
            }
            _nodes.Clear();
        }
    }

    /// <summary>Every lock, as lslocks(8) would list them, with the branch file each is mirrored onto.</summary>
    public IReadOnlyList<LockInfo> Snapshot()
    {
        lock (_gate)
        {
            var list = new List<LockInfo>();
            foreach (var nl in _nodes.Values)
            {
                foreach (var l in nl.Posix) list.Add(Info(nl, l));
                foreach (var f in nl.Flocks)
                    list.Add(new LockInfo(LockKind.Flock, f.Owner, f.Type, 0, LockRequest.ToEnd, f.Pid, _fs.UnionPathOf(nl.Node),
                        nl.Mirrors.GetValueOrDefault(new MirrorKey(true, false, f.Owner))?.File));
            }
            return list;
        }
    }

    /// <summary>
    /// Mandatory mode (locks=mandatory): may the writer write (or truncate) [start, start+count)?
    /// Not while another owner holds a lock that overlaps it: EAGAIN, or, when <paramref name="wait"/>
    /// (a blocking descriptor), wait until the range is free. The writer is known by its lock owner
    /// when the transport has it, else by its process id (POSIX locks are a process's).
    /// </summary>
    public Errno CheckWrite(UnionNode node, long start, long count, ulong? owner, int pid, bool wait)
    {
        if (!Mandatory || count <= 0 || start < 0) return Errno.None;
        long end = count > long.MaxValue - start ? LockRequest.ToEnd : start + count - 1;
        lock (_gate)
        {
            while (true)
            {
                bool blocked = _nodes.TryGetValue(node, out var nl) && nl.Posix.Any(l =>
                    l.Overlaps(start, end) && !(owner is { } o && l.Owner == o) && !(pid > 0 && l.Pid == pid));
                if (!blocked) return Errno.None;
                if (!wait) return Errno.EAGAIN;
                Monitor.Wait(_gate, 50); // a worker waits here: FUSE writes cannot be answered later
            }
        }
    }

    /// <summary>Mandatory mode: a copy-up reads the whole lower file, so a write lock anyone holds on it (seen on the branch file) stops it.</summary>
    private Errno CopyUpAllowed(UnionNode node)
    {
        foreach (var h in _fs.HandlesOfNode(node))
        {
            if (h.BackingBranch == null || Reopen(h, false, out var probe) != Errno.None) continue;
            using (probe)
            {
                var fl = ToFLock(LockType.Read, 0, LockRequest.ToEnd);
                if (Sys.FcntlLock(probe.Fd, Sys.F_OFD_GETLK, ref fl) == 0 && fl.Type != LockType.Unlock) return Errno.EAGAIN;
            }
            break;
        }
        return Errno.None;
    }

    // ---- copy-up ----------------------------------------------------------------------------

    // ---- the engine's observer: copy-up and release reach the table here -----------------------

    Errno IUnionObserver.BeforePublish(UnionNode node, int workFd, string tempName) => BeforePublish(node, workFd, tempName);
    void IUnionObserver.AfterPublish(UnionNode node) => AfterPublish(node);
    void IUnionObserver.HandleReleased(UnionHandle handle) => ReleaseHandle(handle);

    /// <summary>
    /// Copy-up built the node's new file as <paramref name="tmp"/> in <paramref name="workFd"/> and is
    /// about to publish it: take every mirrored lock on it now, so there is no moment when the
    /// published file is unlocked. A failure aborts the copy-up.
    /// </summary>
    internal Errno BeforePublish(UnionNode node, int workFd, string tmp)
    {
        lock (_gate)
        {
            if (Mandatory && CopyUpAllowed(node) is var ce && ce != Errno.None) return ce;
            if (!_nodes.TryGetValue(node, out var nl) || nl.Mirrors.Count == 0) return Errno.None;
            foreach (var (key, m) in nl.Mirrors)
            {
                m.Staged?.Dispose();
                m.Staged = null;
                var e = BranchIo.OpenAt(workFd, tmp, (m.Writable ? Sys.O_RDWR : Sys.O_RDONLY) | Sys.O_NOFOLLOW | Sys.O_NONBLOCK, 0, out var fd);
                if (e != Errno.None) { Unstage(nl); return e; }
                e = TakeAll(nl, key, fd.Fd);
                if (e != Errno.None) { fd.Dispose(); Unstage(nl); return e == Errno.EAGAIN ? Errno.EAGAIN : e; }
                m.Staged = fd;
            }
            return Errno.None;
        }
    }

    /// <summary>After a copy-up is published and open files moved: staged mirrors become the mirrors; the old ones retire.</summary>
    internal void AfterPublish(UnionNode node)
    {
        lock (_gate)
        {
            if (!_nodes.TryGetValue(node, out var nl)) return;
            foreach (var (key, m) in nl.Mirrors)
            {
                SafeFd? fresh = m.Staged;
                m.Staged = null;
                if (fresh is null)
                {
                    // Published without staging (a hard link to an existing copy): take the locks now.
                    var h = _fs.HandlesOfNode(node).FirstOrDefault(x => x.BackingBranch == node.BackingBranch);
                    if (h is null || Reopen(h, m.Writable, out fresh) != Errno.None) continue;
                    if (TakeAll(nl, key, fresh.Fd) != Errno.None) Log?.Invoke($"locks: could not re-take mirrored locks on the copy of {_fs.UnionPathOf(node)}");
                }
                nl.Retired.Add((m.Branch, m.Fd));
                m.Fd = fresh;
                m.Branch = node.BackingBranch;
            }
            PruneRetired(nl);
        }
    }

    private void Unstage(NodeLocks nl)
    {
        foreach (var m in nl.Mirrors.Values) { m.Staged?.Dispose(); m.Staged = null; }
    }

    /// <summary>Old mirrors go once no open file of the node still reads the file they lock.</summary>
    private void PruneRetired(NodeLocks nl)
    {
        if (nl.Retired.Count == 0) return;
        var inUse = _fs.HandlesOfNode(nl.Node).Select(h => h.BackingBranch).ToHashSet();
        for (int i = nl.Retired.Count - 1; i >= 0; i--)
        {
            var (branch, fd) = nl.Retired[i];
            if (branch is not null && inUse.Contains(branch) && branch != nl.Node.BackingBranch) continue;
            fd.Dispose();
            nl.Retired.RemoveAt(i);
        }
    }

    // ---- the core -------------------------------------------------------------------------

    private static Errno Validate(in LockRequest r)
    {
        if (r.Type is not (LockType.Read or LockType.Write or LockType.Unlock)) return Errno.EINVAL;
        if (r.Start < 0 || r.End < r.Start) return Errno.EINVAL;
        if (r.Handle is { } h && r.Kind != LockKind.Flock && r.Type != LockType.Unlock)
        {
            int acc = h.Flags & Sys.O_ACCMODE;
            if (r.Type == LockType.Write && acc == Sys.O_RDONLY) return Errno.EBADF;
            if (r.Type == LockType.Read && acc == Sys.O_WRONLY) return Errno.EBADF;
        }
        return Errno.None;
    }

    private NodeLocks Table(UnionNode node)
    {
        if (!_nodes.TryGetValue(node, out var nl)) _nodes[node] = nl = new NodeLocks(node);
        return nl;
    }

    private void Tidy(NodeLocks nl)
    {
        if (nl.Idle) _nodes.Remove(nl.Node);
    }

    /// <summary>One attempt: EAGAIN with the blocker when someone holds a conflicting lock, in the table or on the branch file.</summary>
    private Errno TryAcquire(NodeLocks nl, in LockRequest r, ref bool changed, out Blocker blocker)
    {
        blocker = default;
        return r.Kind == LockKind.Flock ? TryFlock(nl, r, ref changed, out blocker) : TryPosix(nl, r, ref changed, out blocker);
    }

    private Errno TryPosix(NodeLocks nl, in LockRequest r, ref bool changed, out Blocker blocker)
    {
        blocker = default;
        if (r.Type != LockType.Unlock && nl.FirstPosixConflict(r) is { } c)
        {
            blocker = new Blocker(c.Kind, c.Owner, false);
            return Errno.EAGAIN;
        }
        var key = new MirrorKey(false, r.Kind == LockKind.Ofd, r.Owner);
        if (Mirroring == LockMirroring.Mirror && r.Handle is not null)
        {
            var m = r.Type == LockType.Unlock ? nl.Mirrors.GetValueOrDefault(key) : MirrorFor(nl, key, r);
            if (m is not null)
            {
                var me = OfdSet(m.Fd.Fd, r.Type, r.Start, r.End);
                if (me == Errno.None && m.Staged is not null) OfdSet(m.Staged.Fd, r.Type, r.Start, r.End);
                if (me is Errno.EAGAIN or Errno.EACCES)
                {
                    if (!HoldsAny(nl, key)) DropMirror(nl, key);
                    blocker = new Blocker(LockKind.Ofd, 0, true);
                    return Errno.EAGAIN;
                }
                if (me != Errno.None && r.Type != LockType.Unlock)
                    Log?.Invoke($"locks: mirror on {m.File} failed ({me}); lock kept in the union only");
            }
        }
        changed |= nl.ApplyPosix(r);
        // An owner that let go of everything keeps its (now lock-free) mirror for its next lock:
        // reopening the branch file for every lock/unlock pair would double their cost.
        return Errno.None;
    }

    private static bool HoldsAny(NodeLocks nl, MirrorKey key) =>
        key.Flock ? nl.Flocks.Any(f => f.Owner == key.Owner) : nl.Posix.Any(l => l.Owner == key.Owner && (l.Kind == LockKind.Ofd) == key.Ofd);

    private Errno TryFlock(NodeLocks nl, in LockRequest r, ref bool changed, out Blocker blocker)
    {
        blocker = default;
        ulong owner = r.Owner;
        var key = new MirrorKey(true, false, owner);
        int i = nl.Flocks.FindIndex(f => f.Owner == owner);
        if (i >= 0)
        {
            if (nl.Flocks[i].Type == r.Type) return Errno.None;
            // As flock(2) does it: a conversion drops the old lock first, and is not atomic.
            nl.Flocks.RemoveAt(i);
            changed = true;
            if (nl.Mirrors.TryGetValue(key, out var old)) Sys.Flock(old.Fd.Fd, Sys.LOCK_UN);
        }
        if (r.Type == LockType.Unlock)
        {
            if (nl.Mirrors.TryGetValue(key, out var idle)) FlockCall(idle.Fd.Fd, Sys.LOCK_UN);
            return Errno.None;
        }
        foreach (var f in nl.Flocks)
        {
            if (f.Owner == owner || (f.Type != LockType.Write && r.Type != LockType.Write)) continue;
            blocker = new Blocker(LockKind.Flock, f.Owner, false);
            return Errno.EAGAIN;
        }
        if (Mirroring == LockMirroring.Mirror && r.Handle is not null && MirrorFor(nl, key, r) is { } m)
        {
            int op = (r.Type == LockType.Write ? Sys.LOCK_EX : Sys.LOCK_SH) | Sys.LOCK_NB;
            var me = FlockCall(m.Fd.Fd, op);
            if (me == Errno.None && m.Staged is not null) FlockCall(m.Staged.Fd, op);
            if (me == Errno.EAGAIN)
            {
                DropMirror(nl, key);
                blocker = new Blocker(LockKind.Flock, 0, true);
                return Errno.EAGAIN;
            }
            if (me != Errno.None) Log?.Invoke($"locks: flock mirror on {m.File} failed ({me}); lock kept in the union only");
        }
        nl.Flocks.Add(new FlockLock(owner, r.Type, r.Pid, r.Handle));
        changed = true;
        return Errno.None;
    }

    /// <summary>Grants what can be granted now, oldest waiter first, until nothing more moves.</summary>
    private void Wake(NodeLocks nl)
    {
        bool again = true;
        while (again)
        {
            again = false;
            foreach (var w in nl.Waiters.ToList())
            {
                bool changed = false;
                var e = TryAcquire(nl, w.Request, ref changed, out var blocker);
                if (e == Errno.EAGAIN && w.Request.Kind == LockKind.Posix && WouldDeadlock(w.Request.Owner, blocker))
                    Finish(w, Errno.EDEADLK); // as the kernel does: a retry that would wait in a cycle is refused, not queued
                else if (e == Errno.EAGAIN)
                {
                    bool wasExternal = w.Blocker.External;
                    w.Blocker = blocker;
                    if (blocker.External && !wasExternal) ScheduleRetry(w);
                }
                else Finish(w, e);
                if (changed) again = true;
            }
        }
    }

    private void Finish(Waiter w, Errno result)
    {
        w.Node.Waiters.Remove(w);
        _waiters.Remove(w);
        w.Cancellation.Dispose();
        w.Done.TrySetResult(result);
    }

    private void Cancel(Waiter w, CancellationToken token)
    {
        lock (_gate)
        {
            if (!_waiters.Remove(w)) return; // granted first: the answer stands
            w.Node.Waiters.Remove(w);
            // A flock conversion may have dropped the old lock while waiting; others may go now.
            Wake(w.Node);
            Tidy(w.Node);
        }
        w.Done.TrySetCanceled(token);
    }

    /// <summary>A conflict seen only on the branch file raises no event here: look again, backing off to 100 ms.</summary>
    private void ScheduleRetry(Waiter w)
    {
        int delay = w.RetryDelayMs;
        w.RetryDelayMs = Math.Min(MaxRetryDelayMs, delay * 2);
        _ = Task.Delay(delay).ContinueWith(_ =>
        {
            lock (_gate)
            {
                if (!_waiters.Contains(w)) return;
                bool changed = false;
                var e = TryAcquire(w.Node, w.Request, ref changed, out var blocker);
                if (e == Errno.EAGAIN && w.Request.Kind == LockKind.Posix && WouldDeadlock(w.Request.Owner, blocker))
                    Finish(w, Errno.EDEADLK);
                else if (e == Errno.EAGAIN)
                {
                    w.Blocker = blocker;
                    if (blocker.External) ScheduleRetry(w);
                }
                else Finish(w, e);
                if (changed) Wake(w.Node);
            }
        }, TaskScheduler.Default);
    }

    /// <summary>
    /// The kernel's detector: follow "the owner of the lock I wait for is itself waiting for ..."
    /// through blocked POSIX requests; reaching the requester is a deadlock. OFD owners are not
    /// followed (they are not processes), nor are holders seen only on a branch file.
    /// </summary>
    private bool WouldDeadlock(ulong requester, Blocker blocker)
    {
        var b = blocker;
        for (int i = 0; i <= MaxDeadlockIterations; i++)
        {
            if (b.External || b.Kind != LockKind.Posix) return false;
            var w = _waiters.FirstOrDefault(x => x.Request.Kind == LockKind.Posix && x.Request.Owner == b.Owner);
            if (w is null) return false;
            b = w.Blocker;
            if (!b.External && b.Kind == LockKind.Posix && b.Owner == requester) return true;
        }
        return false;
    }

    private LockInfo Info(NodeLocks nl, RangeLock l) =>
        new(l.Kind, l.Owner, l.Type, l.Start, l.End, l.Kind == LockKind.Ofd ? -1 : l.Pid, _fs.UnionPathOf(nl.Node),
            nl.Mirrors.GetValueOrDefault(new MirrorKey(false, l.Kind == LockKind.Ofd, l.Owner))?.File);

    // ---- mirrors ----------------------------------------------------------------------------

    private Mirror? MirrorFor(NodeLocks nl, MirrorKey key, in LockRequest r)
    {
        bool needWrite = !key.Flock && r.Type == LockType.Write;
        if (nl.Mirrors.TryGetValue(key, out var m))
        {
            if (!needWrite || m.Writable) return m;
            // The owner's mirror was read-only and now needs a write lock: move to a read-write
            // description, taking its (read) locks there before the old one lets go.
            if (Reopen(r.Handle!, true, out var rw) != Errno.None) return m;
            if (TakeAll(nl, key, rw.Fd) != Errno.None) { rw.Dispose(); return m; }
            m.Fd.Dispose();
            m.Fd = rw;
            m.Writable = true;
            return m;
        }
        // Read-only unless a write lock needs more: a file open for writing cannot be executed.
        if (Reopen(r.Handle!, needWrite, out var fd) != Errno.None) return null;
        m = new Mirror(fd, needWrite, r.Handle!.BackingBranch, r.Handle);
        nl.Mirrors[key] = m;
        return m;
    }

    private void DropMirror(NodeLocks nl, MirrorKey key)
    {
        if (!nl.Mirrors.Remove(key, out var m)) return;
        m.Staged?.Dispose();
        m.Fd.Dispose(); // closing the description drops its OFD locks and flock
    }

    /// <summary>Makes a mirror hold exactly the owner's current locks (after some were removed without an unlock call).</summary>
    private void ResyncMirror(NodeLocks nl, MirrorKey key)
    {
        if (!nl.Mirrors.TryGetValue(key, out var m) || key.Flock) return;
        OfdSet(m.Fd.Fd, LockType.Unlock, 0, LockRequest.ToEnd);
        TakeAll(nl, key, m.Fd.Fd);
    }

    /// <summary>Takes every lock the owner of <paramref name="key"/> holds on the node on <paramref name="fd"/>.</summary>
    private static Errno TakeAll(NodeLocks nl, MirrorKey key, int fd)
    {
        if (key.Flock)
        {
            var f = nl.Flocks.FirstOrDefault(x => x.Owner == key.Owner);
            return f is null ? Errno.None : FlockCall(fd, (f.Type == LockType.Write ? Sys.LOCK_EX : Sys.LOCK_SH) | Sys.LOCK_NB);
        }
        foreach (var l in nl.Posix)
        {
            if (l.Owner != key.Owner || (l.Kind == LockKind.Ofd) != key.Ofd) continue;
            var e = OfdSet(fd, l.Type, l.Start, l.End);
            if (e != Errno.None) return e;
        }
        return Errno.None;
    }

    /// <summary>Another open file description of the file behind <paramref name="h"/> (via /proc, so it is the very same file).</summary>
    private static Errno Reopen(UnionHandle h, bool write, out SafeFd fd)
    {
        var backing = h.BackingFd;
        bool added = false;
        try
        {
            backing.DangerousAddRef(ref added);
            return BranchIo.OpenAt(Sys.AT_FDCWD, BranchIo.ProcPath(backing.Fd), (write ? Sys.O_RDWR : Sys.O_RDONLY) | Sys.O_NONBLOCK, 0, out fd);
        }
        catch (ObjectDisposedException)
        {
            fd = null!;
            return Errno.EBADF;
        }
        finally
        {
            if (added) backing.DangerousRelease();
        }
    }

    private static string FileOf(SafeFd fd) => Sys.ReadLink(Sys.AT_FDCWD, BranchIo.ProcPath(fd.Fd)) ?? "?";

    /// <summary>A holder seen only on the branch file: probe with the owner's own mirror (its own locks are not conflicts) or a fresh description.</summary>
    private LockInfo? ProbeBranch(UnionNode node, NodeLocks? nl, in LockRequest r)
    {
        var m = nl?.Mirrors.GetValueOrDefault(new MirrorKey(false, r.Kind == LockKind.Ofd, r.Owner));
        SafeFd? probe = null;
        int fd;
        if (m is not null) fd = m.Fd.Fd;
        else
        {
            if (r.Handle is null || Reopen(r.Handle, false, out probe) != Errno.None) return null;
            fd = probe.Fd;
        }
        try
        {
            var fl = ToFLock(r.Type, r.Start, r.End);
            if (Sys.FcntlLock(fd, Sys.F_OFD_GETLK, ref fl) != 0 || fl.Type == LockType.Unlock) return null;
            long end = fl.Len == 0 ? LockRequest.ToEnd : fl.Start + fl.Len - 1;
            return new LockInfo(LockKind.Ofd, 0, fl.Type, fl.Start, end, fl.Pid, _fs.UnionPathOf(node), FileOf(probe ?? m!.Fd), External: true);
        }
        finally { probe?.Dispose(); }
    }

    private static FLock ToFLock(short type, long start, long end) =>
        new() { Type = type, Whence = 0, Start = start, Len = end == LockRequest.ToEnd ? 0 : end - start + 1, Pid = 0 };

    private static Errno OfdSet(int fd, short type, long start, long end)
    {
        var fl = ToFLock(type, start, end);
        int rc;
        do { rc = Sys.FcntlLock(fd, Sys.F_OFD_SETLK, ref fl); } while (rc != 0 && Sys.LastErrno == Errno.EINTR);
        return rc == 0 ? Errno.None : Sys.LastErrno;
    }

    private static Errno FlockCall(int fd, int op)
    {
        int rc;
        do { rc = Sys.Flock(fd, op); } while (rc != 0 && Sys.LastErrno == Errno.EINTR);
        return rc == 0 ? Errno.None : Sys.LastErrno;
    }
}
