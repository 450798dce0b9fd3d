using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Lamina.Native;
using Lamina.Tracking;

namespace Lamina.Watches;

/// <summary>
/// Follows changes made directly in branches (W1/W3, W2, union directories): every branch directory
/// that contributes to a watched union directory is watched with real inotify, and each branch event
/// is judged by what the merged view shows. A per-directory snapshot of each name's merged state
/// (union inode, which branch file shows it, its times and size) tells the engine's own changes
/// from direct ones: the engine refreshes the snapshot as it makes them, so their echoes compare
/// equal. A raw event that cannot be such an echo is one union event when the view shows it, judged
/// by what it says even when the branches have moved on since (a name made and removed again is
/// IN_CREATE and IN_DELETE, as on a plain directory). A change to a shadowed lower file, a new lower
/// name under an opaque directory, whiteout and opaque markers raise nothing; removing an upper copy
/// that uncovers a lower file is IN_MODIFY.
/// </summary>
/// <remarks>
/// A followed directory missing from a branch is awaited there: the deepest branch directory that
/// does exist on its path is watched for the next missing name, so a lower directory made directly,
/// or an upper one made by copy-up or mkdir, is followed as soon as it appears. Under a recursive
/// watch every directory of the subtree is followed, including ones that appear later. The snapshot
/// can be saved and compared again after a restart (<see cref="SaveSnapshot"/>, <see cref="CompareWithSaved"/>).
/// </remarks>
public sealed class BranchWatcher : IUnionObserver, IDisposable
{
    private readonly UnionFileSystem _fs;
    private readonly UnionWatches _hub;
    private readonly IKernelCacheInvalidator? _kernel;
    private readonly object _gate = new();
    private readonly object _emitGate = new(); // never taken by a thread holding the engine's namespace lock
    private int _fd;
    private readonly Dictionary<int, List<UnionNode>> _byBranchWd = [];
    private readonly Dictionary<int, int> _wdBranch = []; // wd of a contributing branch directory → its branch index
    private readonly Dictionary<UnionNode, DirState> _dirs = new(ReferenceEqualityComparer.Instance);
    // Branch directories awaited: wd of the deepest existing branch directory → missing name → union directories waiting for it.
    private readonly Dictionary<int, Dictionary<string, List<UnionNode>>> _pending = [];
    // Work for the watcher's own thread (following subtrees, comparing a saved snapshot), in order.
    private readonly ConcurrentQueue<Action> _work = new();
    private readonly int _wakeRead, _wakeWrite;
    private Thread? _thread;
    private IDisposable? _engine;
    private volatile bool _stopping;
    private long _generation;
    // Every engine change gets the next number; once the raw queue was found empty after number N was
    // taken, the echoes of changes up to N have all been read (the engine reports a change after making it).
    private long _engineSeq, _echoHorizon;

    private sealed class DirState
    {
        public readonly Dictionary<string, EntryState> Names = new(StringComparer.Ordinal);
        public readonly Dictionary<string, long> Versions = new(StringComparer.Ordinal); // engine number of the last engine change
        // Names created or written directly (not by the engine) since their last IN_CLOSE_WRITE: only
        // such a close is passed on. The engine's own descriptors (union handles, passthrough backing
        // files, lock mirrors) close at moments no change number can order, so their echoes are known
        // this way: no direct change came before them.
        public readonly HashSet<string> DirectlyWritten = new(StringComparer.Ordinal);
        public readonly HashSet<int> BranchWds = [];
        public readonly List<(int Wd, string Name)> Awaiting = [];
        public int Followers;   // watches that follow this directory itself
        public bool Covered;    // followed because a recursive watch covers it
        public bool Pinned;     // holds one lookup of its node (taken when it became covered)
        public bool NeedsScan;
    }

    /// <summary>Grows whenever the snapshot changes (persistence saves when it moved).</summary>
    public long SnapshotGeneration => Interlocked.Read(ref _generation);

    private void SetName(DirState state, string name, EntryState? now)
    {
        bool had = state.Names.TryGetValue(name, out var was);
        if (now is { } v)
        {
            if (had && was == v) return;
            state.Names[name] = v;
        }
        else if (!state.Names.Remove(name)) return;
        Interlocked.Increment(ref _generation);
    }

    public BranchWatcher(UnionFileSystem fs, IKernelCacheInvalidator? kernel = null)
    {
        _fs = fs;
        _hub = fs.Watches;
        _kernel = kernel;
        _fd = Sys.InotifyInit1(Sys.IN_CLOEXEC | Sys.IN_NONBLOCK);
        if (_fd < 0) throw new ErrnoException(Sys.LastErrno, "inotify_init1");
        unsafe
        {
            int* fds = stackalloc int[2];
            if (Sys.Pipe2(fds, Sys.O_CLOEXEC | Sys.O_NONBLOCK) != 0)
            {
                var e = Sys.LastErrno;
                Sys.Close(_fd);
                throw new ErrnoException(e, "pipe2");
            }
            _wakeRead = fds[0];
            _wakeWrite = fds[1];
        }
    }

    /// <summary>Runs <paramref name="work"/> on the watcher's thread, after the work queued before it.</summary>
    private unsafe void Post(Action work)
    {
        _work.Enqueue(work);
        byte one = 1;
        Sys.Write(_wakeWrite, &one, 1);
    }

    /// <summary>Waits until the work queued so far is done (tests, and restore before it reports).</summary>
    public bool Drain(TimeSpan timeout)
    {
        using var done = new ManualResetEventSlim();
        Post(done.Set);
        return done.Wait(timeout);
    }

    /// <summary>
    /// Holds back the judging of branch events until disposed, on the calling thread (tests: every change
    /// made meanwhile is in the branches before any of its events is judged).
    /// </summary>
    internal IDisposable HoldEvents()
    {
        Monitor.Enter(_emitGate);
        return new Hold(_emitGate);
    }

    private sealed class Hold(object gate) : IDisposable
    {
        private bool _released;

        public void Dispose()
        {
            if (_released) return;
            _released = true;
            Monitor.Exit(gate);
        }
    }

    /// <summary>Branch events handled so far (for tests and the benchmark).</summary>
    public long BranchEvents;

    /// <summary>
    /// W4: how often watched directories are compared with their snapshots when a contributing branch
    /// cannot report changes by itself (network filesystems: inotify there sees only local changes).
    /// Zero turns the scan off.
    /// </summary>
    public TimeSpan ScanInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>At most this many directories are rescanned per interval (round robin), to bound the cost.</summary>
    public int ScanBatch { get; init; } = 64;

    /// <summary>Treat every branch as one without inotify: no inotify watches, only the periodic scan (tests of W4).</summary>
    public bool ScanAllBranches { get; init; }

    // statfs f_type of filesystems whose changes made elsewhere inotify does not see.
    private static readonly HashSet<long> RemoteFs = [0x6969 /* NFS */, 0xFF534D42 /* CIFS */, 0xFE534D42 /* SMB2 */, 0x517B /* SMB */,
        0x65735546 /* FUSE */, 0x01021997 /* 9P */, 0x00C36400 /* CEPH */, 0x47504653 /* GPFS */, 0x0BD00BD0 /* Lustre */];

    public void Start()
    {
        _hub.DirectoryWatched += OnDirectoryWatched;
        _hub.RecursiveWatched += OnRecursiveWatched;
        // First: the engine's change is recorded as its own before any union event about it goes out.
        _engine = _fs.Observe(this, first: true);
        foreach (var node in _hub.WatchedDirectories()) OnDirectoryWatched(node, true);
        foreach (var root in _hub.RecursiveRoots()) OnRecursiveWatched(root, true);
        _thread = new Thread(Run) { IsBackground = true, Name = "lamina-branch-watch" };
        _thread.Start();
    }

    // Changes, and the close of a file written (what `inotifywait -e close_write` waits for); opening,
    // reading and closing a file unwritten change nothing in the union's view.
    private const uint BranchMask = InotifyMask.Modify | InotifyMask.Attrib | InotifyMask.CloseWrite | InotifyMask.Create
        | InotifyMask.Delete | InotifyMask.Move | InotifyMask.DeleteSelf | InotifyMask.MoveSelf | InotifyMask.OnlyDir;

    private void OnDirectoryWatched(UnionNode dir, bool watched)
    {
        if (!watched)
        {
            lock (_gate)
            {
                if (!_dirs.TryGetValue(dir, out var gone) || --gone.Followers > 0 || gone.Covered) return;
                DropLocked(dir, gone);
            }
            return;
        }
        Follow(dir, s => s.Followers++, fresh: false);
    }

    /// <summary>
    /// Follows <paramref name="dir"/> (or updates how it is followed): its branch directories watched,
    /// the missing ones awaited, and a snapshot of its names taken, or, when <paramref name="fresh"/>
    /// (a directory that just appeared), an empty snapshot compared at once so every name already in it
    /// is reported. Returns false when it was followed already.
    /// </summary>
    private bool Follow(UnionNode dir, Action<DirState> update, bool fresh)
    {
        var state = new DirState();
        lock (_gate)
        {
            if (_dirs.TryGetValue(dir, out var known)) { update(known); return false; }
            update(state);
            _dirs[dir] = state;
        }
        AttachBranches(dir, state);
        AwaitMissingBranches(dir, state);
        if (fresh) { lock (_emitGate) Rescan(dir); return true; }
        foreach (var name in _fs.MergedNames(dir) ?? [])
            if (_fs.EntryStateOf(dir, name) is { } s)
                lock (_gate) SetName(state, name, s);
        return true;
    }

    /// <summary>Stops following a directory: its branch watches, awaited names and pin go.</summary>
    private void DropLocked(UnionNode dir, DirState state)
    {
        _dirs.Remove(dir);
        foreach (int wd in state.BranchWds) Unlink(wd, dir);
        state.BranchWds.Clear();
        ClearAwaitingLocked(dir, state);
        if (state.Pinned) { state.Pinned = false; _fs.Forget(dir, 1); }
    }

    // ---- recursive watches: the whole subtree is followed ------------------------------------

    private void OnRecursiveWatched(UnionNode root, bool watched)
    {
        if (watched)
        {
            _fs.PinNode(root);
            Post(() => Cover(root, pinHeld: true, fresh: false));
        }
        else Post(() => Uncover(root));
    }

    /// <summary>
    /// Follows <paramref name="dir"/> and every directory below it for a recursive watch (on the
    /// watcher's thread). <paramref name="pinHeld"/>: the caller holds one lookup of the node, which
    /// becomes the covered state's pin or is dropped.
    /// </summary>
    private void Cover(UnionNode dir, bool pinHeld, bool fresh)
    {
        var todo = new Stack<(UnionNode Dir, bool Pin, bool Fresh)>();
        todo.Push((dir, pinHeld, fresh));
        while (todo.TryPop(out var item))
        {
            var (d, pin, isFresh) = item;
            bool newlyCovered = false;
            void Mark(DirState s)
            {
                if (s.Covered) return;
                s.Covered = true;
                newlyCovered = true;
                if (!s.Pinned) { s.Pinned = true; pin = false; }
            }
            if (d.IsDetached || !d.IsDirectory) { if (pin) _fs.Forget(d, 1); continue; }
            Follow(d, Mark, isFresh);
            if (pin) _fs.Forget(d, 1); // covered already, or pinned already
            if (!newlyCovered || isFresh) continue; // a fresh directory's subdirectories are reported and covered through Emit
            List<string> subdirs;
            lock (_gate) subdirs = _dirs.TryGetValue(d, out var st) ? [.. st.Names.Where(kv => kv.Value.IsDirectory).Select(kv => kv.Key)] : [];
            foreach (var name in subdirs)
                if (_fs.Lookup(d, name, out var child) == Errno.None && child is not null)
                    todo.Push((child, true, false));
        }
    }

    /// <summary>A recursive watch ended: directories no other recursive watch covers are no longer followed for it.</summary>
    private void Uncover(UnionNode root)
    {
        lock (_gate)
        {
            foreach (var (d, s) in _dirs.ToList())
            {
                if (!s.Covered || !IsAtOrBelow(d, root) || _hub.IsUnderRecursiveWatch(d)) continue;
                s.Covered = false;
                if (s.Followers == 0) DropLocked(d, s);
                else if (s.Pinned) { s.Pinned = false; _fs.Forget(d, 1); }
            }
        }
    }

    private bool IsCovered(UnionNode dir)
    {
        lock (_gate) return _dirs.TryGetValue(dir, out var s) && s.Covered;
    }

    private static bool IsAtOrBelow(UnionNode node, UnionNode root)
    {
        for (UnionNode? a = node; a is not null; a = a.Parent) if (ReferenceEquals(a, root)) return true;
        return false;
    }

    /// <summary>A directory appeared in <paramref name="dir"/>: under a recursive watch, follow it (and report what it holds).</summary>
    private void NewSubdirectory(UnionNode dir, string name, bool fresh)
    {
        lock (_gate) if (!_dirs.TryGetValue(dir, out var s) || !s.Covered) return;
        if (_fs.Lookup(dir, name, out var child) != Errno.None || child is null) return;
        Cover(child, pinHeld: true, fresh);
    }

    // ---- branch directories that do not exist yet --------------------------------------------

    /// <summary>
    /// For each branch where <paramref name="dir"/> has no directory (and could get one), watches the
    /// deepest directory that exists on its path for the next missing name. Replaces earlier waits.
    /// </summary>
    private void AwaitMissingBranches(UnionNode dir, DirState state)
    {
        lock (_gate) ClearAwaitingLocked(dir, state);
        if (ScanAllBranches || _fs.PathOfNode(dir) is not { } path) return;
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        foreach (var b in _fs.Branches)
        {
            var fd = b.RootFd;
            SafeFd? opened = null;
            try
            {
                for (int i = 0; i < parts.Length; i++)
                {
                    if (Descend(fd, parts[i], ref opened)) { fd = opened!; continue; }
                    int wd = Sys.InotifyAddWatch(_fd, $"/proc/self/fd/{fd.Fd}", BranchMask);
                    if (wd < 0) break;
                    // It may have appeared just before the watch: then go on down instead of waiting.
                    if (Descend(fd, parts[i], ref opened))
                    {
                        lock (_gate) ReleaseIfUnusedLocked(wd);
                        fd = opened!;
                        continue;
                    }
                    lock (_gate)
                    {
                        if (!_dirs.TryGetValue(dir, out var current) || current != state) { ReleaseIfUnusedLocked(wd); break; }
                        if (!_pending.TryGetValue(wd, out var byName)) _pending[wd] = byName = new(StringComparer.Ordinal);
                        if (!byName.TryGetValue(parts[i], out var waiting)) byName[parts[i]] = waiting = [];
                        if (!waiting.Contains(dir, ReferenceEqualityComparer.Instance)) waiting.Add(dir);
                        state.Awaiting.Add((wd, parts[i]));
                        Trace($"await {path}: {parts[i]} in branch {b.Index} wd {wd}");
                    }
                    break;
                }
                // Reaching the end: the directory exists in this branch (contributing, or hidden by an opaque one above).
            }
            finally { opened?.Dispose(); }
        }
    }

    private static bool Descend(SafeFd from, string name, ref SafeFd? opened)
    {
        if (BranchIo.OpenAt(from.Fd, name, Sys.O_PATH | Sys.O_NOFOLLOW | Sys.O_DIRECTORY, 0, out var next) != Errno.None) return false;
        opened?.Dispose();
        opened = next;
        return true;
    }

    private void ClearAwaitingLocked(UnionNode dir, DirState state)
    {
        foreach (var (wd, name) in state.Awaiting)
        {
            if (!_pending.TryGetValue(wd, out var byName) || !byName.TryGetValue(name, out var waiting)) continue;
            waiting.Remove(dir);
            if (waiting.Count == 0) byName.Remove(name);
            if (byName.Count == 0) { _pending.Remove(wd); ReleaseIfUnusedLocked(wd); }
        }
        state.Awaiting.Clear();
    }

    private void ReleaseIfUnusedLocked(int wd)
    {
        if (_byBranchWd.ContainsKey(wd) || _pending.ContainsKey(wd)) return;
        Sys.InotifyRmWatch(_fd, wd);
        _wdBranch.Remove(wd);
    }

    /// <summary>An awaited name appeared in a branch: watch the new branch directories and report what they bring into view.</summary>
    private void Arrived(List<UnionNode> dirs)
    {
        foreach (var d in dirs)
        {
            DirState? state;
            lock (_gate) if (!_dirs.TryGetValue(d, out state)) continue;
            Trace($"branch directory arrived for {_fs.PathOfNode(d)}");
            AwaitMissingBranches(d, state);
            AttachBranches(d, state);
            lock (_emitGate) Rescan(d);
        }
    }

    /// <summary>Watches each branch directory that contributes to <paramref name="dir"/> (again: new ones appear by copy-up or mkdir).</summary>
    private void AttachBranches(UnionNode dir, DirState state)
    {
        _fs.ForEachContributingDirectory(dir, (branch, dirFd, _) =>
        {
            if (ScanAllBranches || (Sys.FStatFs(dirFd, out var sfs) == 0 && RemoteFs.Contains(sfs.Type)))
                lock (_gate) state.NeedsScan = true;
            if (ScanAllBranches) return; // stands for a branch with no inotify at all
            int wd = Sys.InotifyAddWatch(_fd, $"/proc/self/fd/{dirFd}", BranchMask);
            if (wd < 0) return;
            lock (_gate)
            {
                _wdBranch[wd] = branch.Index;
                if (!state.BranchWds.Add(wd)) return;
                if (!_byBranchWd.TryGetValue(wd, out var list)) _byBranchWd[wd] = list = [];
                list.Add(dir);
            }
        });
    }

    private void Unlink(int wd, UnionNode dir)
    {
        if (!_byBranchWd.TryGetValue(wd, out var list)) return;
        list.Remove(dir);
        if (list.Count > 0) return;
        _byBranchWd.Remove(wd);
        ReleaseIfUnusedLocked(wd);
    }

    /// <summary>The engine changed this name itself: take its new state as the reference, so the branch echo is no event.</summary>
    private void OnEngineChanged(UnionNode dir, string name)
    {
        Trace($"engine changed {dir.Name}/{name}");
        DirState? state;
        lock (_gate) if (!_dirs.TryGetValue(dir, out state)) return;
        var s = _fs.EntryStateOf(dir, name);
        EntryState? old;
        bool covered;
        lock (_gate)
        {
            old = state.Names.TryGetValue(name, out var o) ? o : null;
            state.Versions[name] = Interlocked.Increment(ref _engineSeq);
            SetName(state, name, s);
            covered = state.Covered;
        }
        // A new name may have needed the directory itself copied up into another branch: watch that one too.
        if (old is null || (s is { } now && now.Branch != old.Value.Branch))
        {
            AttachBranches(dir, state);
            AwaitMissingBranches(dir, state);
        }
        // A directory made or moved here under a recursive watch is followed too (its content as it is: the engine
        // reports its own changes); one made by mkdir is covered already (OnEngineMadeDirectory).
        if (covered && s is { IsDirectory: true } made && (old is null || !old.Value.IsDirectory || old.Value.UnionIno != made.UnionIno)
            && _fs.FindNodeByIno(made.UnionIno) is { } node && !IsCovered(node))
        {
            _fs.PinNode(node);
            Post(() => Cover(node, pinHeld: true, fresh: false));
        }
    }

    /// <summary>
    /// A directory made through the union below a recursive watch is followed from this moment, before
    /// the mkdir returns: its snapshot starts empty (it was made empty), the engine's own changes in it
    /// are recorded from now on, and once its branch directories are watched (on the watcher's thread)
    /// whatever appeared in it directly meanwhile is compared against that and reported.
    /// </summary>
    private void OnEngineMadeDirectory(UnionNode parent, UnionNode made)
    {
        DirState state;
        lock (_gate)
        {
            if (!_dirs.TryGetValue(parent, out var p) || !p.Covered || _dirs.ContainsKey(made)) return;
            state = new DirState { Covered = true, Pinned = true };
            _dirs[made] = state;
        }
        _fs.PinNode(made);
        Post(() =>
        {
            lock (_gate) if (!_dirs.TryGetValue(made, out var s) || s != state) return;
            AttachBranches(made, state);
            AwaitMissingBranches(made, state);
            lock (_emitGate) Rescan(made);
        });
    }

    /// <summary>
    /// A union handle opened for writing is being closed. Writes the kernel passed through to the
    /// branch file never reached the engine: report them now (IN_MODIFY before the engine's
    /// IN_CLOSE_WRITE) unless this thread already did, and take the result as the reference so the
    /// branch echoes (IN_MODIFY, IN_CLOSE_WRITE) raise nothing more.
    /// </summary>
    private void OnClosingForWrite(UnionNode node)
    {
        lock (_emitGate) ReportUnseenWrites(node);
    }

    private void ReportUnseenWrites(UnionNode node)
    {
        if (node.Parent is not { } dir) return;
        DirState? state;
        lock (_gate) if (!_dirs.TryGetValue(dir, out state)) return;
        var now = _fs.EntryStateOf(dir, node.Name);
        EntryState? old;
        lock (_gate)
        {
            old = state.Names.TryGetValue(node.Name, out var o) ? o : null;
            state.Versions[node.Name] = Interlocked.Increment(ref _engineSeq);
            SetName(state, node.Name, now);
        }
        Trace($"closing {node.Name}: {old?.Size} -> {now?.Size}");
        if (old is { } a && now is { } b && a != b && (a.Size != b.Size || a.MSec != b.MSec || a.MNsec != b.MNsec))
            _hub.Object(node, InotifyMask.Modify);
    }

    // ---- the engine's own changes, heard as its observer ---------------------------------------

    void IUnionObserver.EntryCreated(UnionNode parent, string name, UnionNode? node)
    {
        if (node is { IsDirectory: true }) OnEngineMadeDirectory(parent, node);
        OnEngineChanged(parent, name);
    }

    void IUnionObserver.EntryRemoved(UnionNode parent, string name, UnionNode? node, bool isDirectory) => OnEngineChanged(parent, name);

    void IUnionObserver.EntryRenamed(UnionNode parent, string name, UnionNode newParent, string newName, UnionNode? moved, UnionNode? replaced, bool exchange)
    {
        OnEngineChanged(parent, name);
        OnEngineChanged(newParent, newName);
    }

    void IUnionObserver.ObjectChanged(UnionNode node, uint events)
    {
        if ((events & (InotifyMask.Modify | InotifyMask.Attrib)) != 0 && node.Parent is { } p) OnEngineChanged(p, node.Name);
    }

    /// <summary>A copy-up: the engine's own doing, nothing to report.</summary>
    void IUnionObserver.AfterPublish(UnionNode node)
    {
        if (node.Parent is { } p) OnEngineChanged(p, node.Name);
    }

    void IUnionObserver.HandleClosing(UnionNode node, int openFlags)
    {
        if (UnionFileSystem.OpenForWriting(openFlags)) OnClosingForWrite(node);
    }

    private unsafe void Run()
    {
        var buffer = new byte[64 * 1024];
        var pending = new List<(int Wd, uint Mask, uint Cookie, string? Name)>();
        long lastScan = Environment.TickCount64;
        int scanCursor = 0;
        var fds = stackalloc Sys.PollFd[2];
        while (!_stopping)
        {
            fds[0] = new Sys.PollFd { Fd = _fd, Events = Sys.POLLIN };
            fds[1] = new Sys.PollFd { Fd = _wakeRead, Events = Sys.POLLIN };
            int wait = ScanInterval > TimeSpan.Zero ? (int)Math.Min(200, ScanInterval.TotalMilliseconds) : 200;
            long engineSeq = Interlocked.Read(ref _engineSeq);
            int r = Sys.Poll(fds, 2, wait);
            // Nothing to read: every echo of the engine's changes numbered so far has been handled.
            if (r == 0 || (r > 0 && (fds[0].REvents & Sys.POLLIN) == 0)) Interlocked.Exchange(ref _echoHorizon, engineSeq);
            if (r > 0 && (fds[1].REvents & Sys.POLLIN) != 0)
            {
                fixed (byte* p = buffer) Sys.Read(_wakeRead, p, (nuint)buffer.Length);
            }
            while (_work.TryDequeue(out var work))
            {
                try { work(); }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException) { }
            }
            if (r > 0 && (fds[0].REvents & Sys.POLLIN) == 0) continue;
            if (ScanInterval > TimeSpan.Zero && Environment.TickCount64 - lastScan >= ScanInterval.TotalMilliseconds)
            {
                lastScan = Environment.TickCount64;
                scanCursor = ScanSome(scanCursor);
            }
            if (r <= 0) continue;
            long n;
            fixed (byte* p = buffer) n = Sys.Read(_fd, p, (nuint)buffer.Length);
            if (n <= 0) continue;
            pending.Clear();
            Parse(buffer, n, pending);
            // A rename's two halves can be split across reads: wait briefly for the IN_MOVED_TO.
            for (int tries = 0; tries < 5 && pending.Count > 0 && (pending[^1].Mask & InotifyMask.MovedFrom) != 0; tries++)
            {
                var pfd = new Sys.PollFd { Fd = _fd, Events = Sys.POLLIN };
                if (Sys.Poll(&pfd, 1, 2) <= 0) continue;
                fixed (byte* p = buffer) n = Sys.Read(_fd, p, (nuint)buffer.Length);
                if (n > 0) Parse(buffer, n, pending);
            }
            try { Handle(pending); }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // the union is going away
            }
        }
    }

    private static void Parse(byte[] buffer, long n, List<(int Wd, uint Mask, uint Cookie, string? Name)> pending)
    {
        for (int off = 0; off < n;)
        {
            var h = MemoryMarshal.Read<InotifyEventHeader>(buffer.AsSpan(off));
            int nameStart = off + Marshal.SizeOf<InotifyEventHeader>();
            string? name = null;
            if (h.Len > 0)
            {
                var raw = buffer.AsSpan(nameStart, (int)h.Len);
                int z = raw.IndexOf((byte)0);
                name = Encoding.UTF8.GetString(z < 0 ? raw : raw[..z]);
            }
            pending.Add((h.Wd, h.Mask, h.Cookie, name));
            off = nameStart + (int)h.Len;
        }
    }

    private void Handle(List<(int Wd, uint Mask, uint Cookie, string? Name)> batch)
    {
        // A rename inside the branches stays a rename in the union when both halves are real changes.
        (UnionNode Dir, string Name, EntryState Old, uint RawCookie, uint Cookie)? from = null;
        void FlushFrom()
        {
            // Moved out of every followed branch directory: IN_MOVED_FROM alone, as inotify reports a move
            // to an unwatched directory; for the union the object has left the view.
            if (from is { } f)
            {
                Emit(f.Dir, f.Name, InotifyMask.MovedFrom, f.Old, null, f.Cookie);
                if (NodeShownAt(f.Dir, f.Name, f.Old) is { } node) _hub.Gone(node);
            }
            from = null;
        }
        foreach (var (wd, mask, rawCookie, rawName) in batch)
        {
            Interlocked.Increment(ref BranchEvents);
            if ((mask & InotifyMask.QOverflow) != 0) { FlushFrom(); RescanAll(); continue; }
            List<UnionNode> dirs;
            lock (_gate) dirs = _byBranchWd.TryGetValue(wd, out var l) ? [.. l] : [];
            if ((mask & InotifyMask.Ignored) != 0)
            {
                // The branch directory went: its union directories now await one again (and so do those that awaited a name in it).
                List<UnionNode> awaiting;
                lock (_gate)
                {
                    foreach (var d in dirs) { Unlink(wd, d); if (_dirs.TryGetValue(d, out var ds)) ds.BranchWds.Remove(wd); }
                    awaiting = _pending.Remove(wd, out var byName) ? [.. byName.Values.SelectMany(l => l)] : [];
                }
                foreach (var d in dirs.Concat(awaiting).Distinct<UnionNode>(ReferenceEqualityComparer.Instance))
                {
                    DirState? ds;
                    lock (_gate) if (!_dirs.TryGetValue(d, out ds)) continue;
                    AwaitMissingBranches(d, ds);
                }
                continue;
            }
            if (rawName is null) continue; // the branch directory itself moved or went: its union directory's own events come from its parent
            if ((mask & (InotifyMask.Create | InotifyMask.MovedTo)) != 0)
            {
                List<UnionNode>? arrived = null;
                lock (_gate)
                    if (_pending.TryGetValue(wd, out var byName) && byName.TryGetValue(rawName, out var waiting)) arrived = [.. waiting];
                if (arrived is not null) { FlushFrom(); Arrived(arrived); }
            }
            string name = rawName;
            if (name == Markers.AufsOpaque) { foreach (var d in dirs) Rescan(d); continue; }
            if (name.StartsWith(Markers.AufsWhiteoutPrefix, StringComparison.Ordinal)) name = name[Markers.AufsWhiteoutPrefix.Length..];
            int branch;
            lock (_gate) branch = _wdBranch.TryGetValue(wd, out int bi) ? bi : -1;
            // Judged against the branches as they are now: the engine's cached layers of the directory (and
            // its index of the read-only ones) may predate this change, and would hide it while trusted.
            foreach (var dir in dirs) _fs.BranchDirectoryChanged(dir);
            Trace($"raw {InotifyMask.Format(mask)} {rawName} branch {branch} dirs {dirs.Count}");
            foreach (var dir in dirs)
            lock (_emitGate) // an event about a name goes out before the engine's next event about it (see OnClosingForWrite)
            {
                DirState? state;
                long version;
                EntryState? old;
                lock (_gate)
                {
                    if (!_dirs.TryGetValue(dir, out state)) continue;
                    version = state.Versions.GetValueOrDefault(name);
                    old = state.Names.TryGetValue(name, out var o) ? o : null;
                }
                var current = _fs.EntryStateOf(dir, name);
                // The raw event alone says what happened when no echo of the engine's own change to this
                // name can still be in the queue (an echo is known only by comparing states) and it is about
                // the name itself, not an aufs whiteout.
                bool direct = branch >= 0 && name == rawName && version <= Interlocked.Read(ref _echoHorizon);
                if ((mask & InotifyMask.CloseWrite) != 0)
                {
                    // A file written directly was closed: passed on when it is the file the view shows for the name.
                    bool written;
                    lock (_gate) written = state.DirectlyWritten.Remove(name);
                    if (direct && written && old is { IsDirectory: false } shown && shown.Branch == branch)
                    {
                        FlushFrom();
                        Emit(dir, name, InotifyMask.CloseWrite, shown, shown, 0);
                    }
                    continue;
                }
                // A file open for writing through the union may be written by passthrough, which looks direct.
                bool directWrite = (mask & InotifyMask.IsDir) == 0 && direct && (mask & (InotifyMask.Modify | InotifyMask.Create)) != 0
                               && !(old is { UnionIno: not 0 and var ino } && _fs.HasUnionWriter(ino));
                if ((mask & InotifyMask.IsDir) == 0 && (mask & (InotifyMask.Delete | InotifyMask.MovedFrom)) != 0)
                    lock (_gate) state.DirectlyWritten.Remove(name);
                var (now, content) = direct ? Direct(dir, name, branch, mask, old, current) : (current, false);
                lock (_gate)
                {
                    // The engine changed it meanwhile (a union writer closing, say): its own event covers it.
                    // Checked after the writer test, so a writer gone by then had versioned its close first.
                    if (state.Versions.GetValueOrDefault(name) != version) continue;
                    if (directWrite) state.DirectlyWritten.Add(name);
                    SetName(state, name, now);
                }
                if (content)
                {
                    FlushFrom();
                    Emit(dir, name, mask & (InotifyMask.Modify | InotifyMask.Attrib), old, now, 0);
                    continue;
                }
                if ((mask & InotifyMask.MovedFrom) != 0 && old is { } was && now is null)
                {
                    FlushFrom();
                    from = (dir, name, was, rawCookie, _hub.NextCookie());
                    continue;
                }
                // The target may have named another file, which the rename replaced (a write to a temporary name renamed over the real one).
                if ((mask & InotifyMask.MovedTo) != 0 && from is { } f && f.RawCookie == rawCookie && now is { } arrived
                    && (old is not { } replaced || !SameFile(replaced, arrived)))
                {
                    Emit(f.Dir, f.Name, InotifyMask.MovedFrom, f.Old, null, f.Cookie);
                    Emit(dir, name, InotifyMask.MovedTo, null, arrived, f.Cookie);
                    if (old?.UnionIno != arrived.UnionIno && NodeShownAt(dir, name, old) is { } gone) _hub.Gone(gone);
                    from = null;
                    continue;
                }
                FlushFrom();
                Compare(dir, state, name, old, now, mask);
            }
        }
        FlushFrom();
    }

    /// <summary>
    /// Judges a raw event that is not an echo by what it says, so quick changes to one name are one union
    /// event each, as inotify on a plain directory reports them, although the merged state
    /// (<paramref name="current"/>) may already show later ones. Returns the state the event leaves in
    /// the view as far as it tells, and whether it is a change to the content of the file that showed
    /// (reported with the raw kind). Anything else is left to the comparison with the remembered state.
    /// </summary>
    private (EntryState? Now, bool Content) Direct(UnionNode dir, string name, int branch, uint mask, EntryState? old, EntryState? current)
    {
        if ((mask & (InotifyMask.Modify | InotifyMask.Attrib)) != 0)
        {
            // A change to the file of the branch that showed the name; it may be gone or covered since:
            // then that is for the later raw events to tell, and the remembered state stays.
            if (old is not { } o || o.Branch != branch) return (current, false);
            return (current is { } c && SameFile(o, c) ? c : o, true);
        }
        if ((mask & (InotifyMask.Create | InotifyMask.MovedTo)) != 0 && old is null && current is null)
        {
            // Made and gone again already: a create all the same when nothing above hides the name from this branch.
            var layers = _fs.NameInBranches(dir, name);
            int at = layers?.FindIndex(l => l.Branch == branch) ?? -1;
            if (at < 0 || layers![at].Kind != NameKind.None || layers.Take(at).Any(l => l.Kind != NameKind.None)) return (null, false);
            return (Transient(branch, (mask & InotifyMask.IsDir) != 0, 0), false);
        }
        if ((mask & (InotifyMask.Delete | InotifyMask.MovedFrom)) != 0 && old is { } gone && gone.Branch == branch && current is not null)
        {
            // The file that showed went; what shows now came later. Then the name was gone, or what lies below showed through.
            var layers = _fs.NameInBranches(dir, name);
            int at = layers?.FindIndex(l => l.Branch == branch) ?? -1;
            if (at < 0) return (current, false);
            var below = layers!.Skip(at + 1).FirstOrDefault(l => l.Kind != NameKind.None);
            return below.Kind is NameKind.File or NameKind.Directory
                ? (Transient(below.Branch, below.Kind == NameKind.Directory, gone.UnionIno), false)
                : (null, false);
        }
        return (current, false);
    }

    /// <summary>The union node of <paramref name="state"/>, if the engine still has it under <paramref name="name"/> in <paramref name="dir"/>.</summary>
    private UnionNode? NodeShownAt(UnionNode dir, string name, EntryState? state) =>
        state is { UnionIno: not 0 and var ino } && _fs.FindNodeByIno(ino) is { } node && node.Parent == dir && node.Name == name ? node : null;

    /// <summary>Whether <paramref name="b"/> is the file <paramref name="a"/> remembers (a transient state matches its branch's file of its type).</summary>
    private static bool SameFile(EntryState a, EntryState b) =>
        a.Branch == b.Branch && a.Type == b.Type && ((a.Dev == 0 && a.Ino == 0) || (a.Dev == b.Dev && a.Ino == b.Ino));

    /// <summary>The state of a name whose file is gone or not looked at: only which branch showed it and its type.</summary>
    private static EntryState Transient(int branch, bool isDir, ulong unionIno) =>
        new(unionIno, isDir ? ModeBits.S_IFDIR : ModeBits.S_IFREG, branch, 0, 0, 0, 0, 0, 0, 0);

    private void Compare(UnionNode dir, DirState state, string name, EntryState? old, EntryState? now, uint rawMask = 0)
    {
        switch (old, now)
        {
            case (null, null): return;
            case (null, { } created) when (rawMask & InotifyMask.MovedTo) != 0:
                Emit(dir, name, InotifyMask.MovedTo, null, created, _hub.NextCookie()); // moved in from outside the followed directories
                return;
            case (null, { } created): Emit(dir, name, InotifyMask.Create, null, created, 0); return;
            case ({ } deleted, null): Emit(dir, name, InotifyMask.Delete, deleted, null, 0); return;
            case ({ } a, { } b) when a == b: return;
            case ({ } a, { } b) when a.Type != b.Type || (a.UnionIno != b.UnionIno && a.IsDirectory):
                Emit(dir, name, InotifyMask.Delete, a, null, 0);
                Emit(dir, name, InotifyMask.Create, null, b, 0);
                return;
            case ({ } a, { } b) when a.Branch != b.Branch && a.UnionIno == b.UnionIno && a.Size == b.Size && a.MSec == b.MSec && a.MNsec == b.MNsec:
                return; // a copy-up (times and size are copied with it), or an identical copy removed: the view did not change
            case ({ } a, { } b) when b.IsDirectory && a.Branch == b.Branch && a.Dev == b.Dev && a.Ino == b.Ino
                                      && rawMask != 0 && (rawMask & InotifyMask.Attrib) == 0:
                return; // a directory's times moved because its entries changed (its own watch hears of those), not its attributes
            case ({ } a, { } b):
                // Another file shows through (upper copy removed or added) or its data changed: IN_MODIFY; only the inode change time: IN_ATTRIB.
                bool other = a.Branch != b.Branch || a.Dev != b.Dev || a.Ino != b.Ino;
                bool data = other || a.Size != b.Size || ((rawMask & InotifyMask.Attrib) == 0 && (a.MSec != b.MSec || a.MNsec != b.MNsec));
                Emit(dir, name, data && !b.IsDirectory ? InotifyMask.Modify : InotifyMask.Attrib, a, b, 0);
                return;
        }
    }

    private void Emit(UnionNode dir, string name, uint mask, EntryState? old, EntryState? now, uint cookie)
    {
        bool isDir = (now ?? old)?.IsDirectory ?? false;
        var node = (now ?? old) is { UnionIno: not 0 } s ? _fs.FindNodeByIno(s.UnionIno) : null;
        if ((mask & (InotifyMask.Modify | InotifyMask.Attrib | InotifyMask.CloseWrite)) != 0)
        {
            if (node is not null && node.Parent == dir && node.Name == name)
            {
                _kernel?.ObjectChanged(node);
                _hub.Object(node, mask);
            }
            else _hub.Entry(dir, name, isDir, mask);
            _kernel?.EntryChanged(dir, name);
            return;
        }
        if ((mask & (InotifyMask.Delete | InotifyMask.MovedFrom)) != 0)
        {
            if (node is not null && (mask & InotifyMask.Delete) != 0 && node.Parent == dir && node.Name == name) _hub.Gone(node);
            _kernel?.EntryDeleted(dir, name, node);
        }
        else _kernel?.EntryChanged(dir, name);
        _hub.Entry(dir, name, isDir, mask, cookie);
        if (node is not null && (mask & InotifyMask.MovedTo) != 0) _hub.Object(node, InotifyMask.MoveSelf);
        // A directory that appeared directly under a recursive watch: follow it and report what is already in it.
        if (isDir && (mask & (InotifyMask.Create | InotifyMask.MovedTo)) != 0) NewSubdirectory(dir, name, fresh: true);
    }

    private void Rescan(UnionNode dir)
    {
        DirState? state;
        lock (_gate) if (!_dirs.TryGetValue(dir, out state)) return;
        var names = new HashSet<string>(_fs.MergedNames(dir) ?? [], StringComparer.Ordinal);
        lock (_gate) names.UnionWith(state.Names.Keys);
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            EntryState? old;
            lock (_gate) old = state.Names.TryGetValue(name, out var o) ? o : null;
            var now = _fs.EntryStateOf(dir, name);
            lock (_gate) SetName(state, name, now);
            Compare(dir, state, name, old, now);
        }
    }

    /// <summary>W4: rescans up to <see cref="ScanBatch"/> directories that have a branch without inotify, round robin.</summary>
    private int ScanSome(int cursor)
    {
        List<UnionNode> due;
        lock (_gate) due = [.. _dirs.Where(kv => kv.Value.NeedsScan).Select(kv => kv.Key)];
        if (due.Count == 0) return 0;
        for (int k = 0; k < Math.Min(ScanBatch, due.Count); k++)
        {
            try { lock (_emitGate) Rescan(due[(cursor + k) % due.Count]); }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException) { }
        }
        return (cursor + ScanBatch) % due.Count;
    }

    /// <summary>The branch queue overflowed: compare every watched directory with its snapshot.</summary>
    private void RescanAll()
    {
        List<UnionNode> dirs;
        lock (_gate) dirs = [.. _dirs.Keys];
        foreach (var d in dirs) Rescan(d);
    }

    // ---- the snapshot across a restart --------------------------------------------------------

    /// <summary>
    /// Writes the snapshot of every followed directory ("dir PATH", then "name NAME" and the merged
    /// state's fields per name), so a daemon started later can tell what changed while none ran.
    /// </summary>
    public void SaveSnapshot(TextWriter writer)
    {
        lock (_gate)
        {
            foreach (var (dir, state) in _dirs)
            {
                if (_fs.PathOfNode(dir) is not { } path) continue;
                writer.Write($"dir {Uri.EscapeDataString(path)}\n");
                foreach (var (name, e) in state.Names)
                    writer.Write(string.Create(CultureInfo.InvariantCulture,
                        $"name {Uri.EscapeDataString(name)} {e.UnionIno} {e.Type} {e.Branch} {e.Dev} {e.Ino} {e.Size} {e.MSec} {e.MNsec} {e.CSec} {e.CNsec}\n"));
            }
        }
    }

    /// <summary>
    /// Takes a saved snapshot as the reference for the directories followed now and compares: every
    /// difference is reported with the usual rules (on the watcher's thread, after the work queued
    /// before, such as following recursive subtrees). Directories not followed now are skipped.
    /// </summary>
    public void CompareWithSaved(IEnumerable<string> lines)
    {
        var saved = new Dictionary<string, Dictionary<string, EntryState>>(StringComparer.Ordinal);
        Dictionary<string, EntryState>? current = null;
        foreach (var line in lines)
        {
            var f = line.Split(' ');
            if (f[0] == "dir" && f.Length == 2) saved[Uri.UnescapeDataString(f[1])] = current = new(StringComparer.Ordinal);
            else if (f[0] == "name" && f.Length == 12 && current is not null)
            {
                var c = CultureInfo.InvariantCulture;
                current[Uri.UnescapeDataString(f[1])] = new EntryState(ulong.Parse(f[2], c), uint.Parse(f[3], c), int.Parse(f[4], c),
                    ulong.Parse(f[5], c), ulong.Parse(f[6], c), ulong.Parse(f[7], c), long.Parse(f[8], c), uint.Parse(f[9], c),
                    long.Parse(f[10], c), uint.Parse(f[11], c));
            }
        }
        Post(() =>
        {
            List<UnionNode> dirs;
            lock (_gate) dirs = [.. _dirs.Keys];
            // In path order, a directory before what is in it, so the report reads the same every time.
            var byPath = dirs.Select(d => (Dir: d, Path: _fs.PathOfNode(d))).Where(x => x.Path is not null).OrderBy(x => x.Path, StringComparer.Ordinal);
            foreach (var (d, path) in byPath)
            {
                if (!saved.TryGetValue(path!, out var names)) continue;
                lock (_gate)
                {
                    if (!_dirs.TryGetValue(d, out var state)) continue;
                    state.Names.Clear();
                    foreach (var (n, e) in names) state.Names[n] = e;
                }
                lock (_emitGate) Rescan(d);
            }
        });
    }

    private static readonly string? TraceFile = Environment.GetEnvironmentVariable("LAMINA_WATCH_TRACE");

    private static void Trace(string line)
    {
        if (TraceFile is not null) lock (typeof(BranchWatcher)) File.AppendAllText(TraceFile, $"{DateTime.UtcNow:HH:mm:ss.ffffff} {line}\n");
    }

    /// <summary>Stops following changes (the snapshot stays readable, for a last <see cref="SaveSnapshot"/>).</summary>
    public void Stop()
    {
        if (_stopping) return;
        _stopping = true;
        _hub.DirectoryWatched -= OnDirectoryWatched;
        _hub.RecursiveWatched -= OnRecursiveWatched;
        _engine?.Dispose();
        Post(() => { });
        _thread?.Join();
    }

    public void Dispose()
    {
        if (_fd < 0) return;
        Stop();
        Sys.Close(_fd);
        _fd = -1;
        Sys.Close(_wakeRead);
        Sys.Close(_wakeWrite);
        lock (_gate)
            foreach (var (d, s) in _dirs)
                if (s.Pinned) { s.Pinned = false; _fs.Forget(d, 1); }
    }
}
