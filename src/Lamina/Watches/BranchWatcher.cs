using System.Runtime.InteropServices;
using System.Text;
using Lamina.Native;

namespace Lamina.Watches;

/// <summary>Drops a transport's cached view of names and objects that changed in a branch (FUSE notifications).</summary>
public interface IKernelCacheInvalidator
{
    /// <summary>A name in a directory now means something else (or nothing).</summary>
    void EntryChanged(UnionNode dir, string name);

    /// <summary>A name was removed; <paramref name="child"/> is the node it named when known.</summary>
    void EntryDeleted(UnionNode dir, string name, UnionNode? child);

    /// <summary>An object's data or attributes changed.</summary>
    void ObjectChanged(UnionNode node);
}

/// <summary>
/// Follows changes made directly in branches (W1/W3, W2, union directories): every branch directory
/// that contributes to a watched union directory is watched with real inotify, and each branch event
/// is judged by what the merged view shows. A per-directory snapshot of each name's merged state
/// (union inode, which branch file shows it, its times and size) turns a branch event into an
/// event only when the merged view changed: a change to a shadowed lower file, a new lower name
/// under an opaque directory, whiteout and opaque markers, and the engine's own changes (the engine
/// refreshes the snapshot as it makes them, so their echoes compare equal) raise nothing; removing
/// an upper copy that uncovers a lower file is IN_MODIFY.
/// </summary>
/// <remarks>
/// Limits (documented in docs/watches.md): a branch directory that does not exist yet when the union
/// directory is first watched is picked up at the next change the engine makes in that directory;
/// branches on filesystems without inotify are not scanned yet (the revalidation on access still
/// notices replaced objects).
/// </remarks>
public sealed class BranchWatcher : IDisposable
{
    private readonly UnionFileSystem _fs;
    private readonly UnionWatches _hub;
    private readonly IKernelCacheInvalidator? _kernel;
    private readonly object _gate = new();
    private readonly object _emitGate = new(); // never taken by a thread holding the engine's namespace lock
    private readonly int _fd;
    private readonly Dictionary<int, List<UnionNode>> _byBranchWd = [];
    private readonly Dictionary<UnionNode, DirState> _dirs = new(ReferenceEqualityComparer.Instance);
    private Thread? _thread;
    private volatile bool _stopping;

    private sealed class DirState
    {
        public readonly Dictionary<string, EntryState> Names = new(StringComparer.Ordinal);
        public readonly Dictionary<string, long> Versions = new(StringComparer.Ordinal);
        public readonly HashSet<int> BranchWds = [];
        public int Followers;
        public bool NeedsScan;
    }

    public BranchWatcher(UnionFileSystem fs, IKernelCacheInvalidator? kernel = null)
    {
        _fs = fs;
        _hub = fs.Watches;
        _kernel = kernel;
        _fd = Sys.InotifyInit1(Sys.IN_CLOEXEC | Sys.IN_NONBLOCK);
        if (_fd < 0) throw new ErrnoException(Sys.LastErrno, "inotify_init1");
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
        _fs.EngineChangedEntry += OnEngineChanged;
        _fs.NodeBackingChanged += OnBackingChanged;
        _fs.EngineClosingForWrite += OnClosingForWrite;
        foreach (var node in _hub.WatchedDirectories()) OnDirectoryWatched(node, true);
        _thread = new Thread(Run) { IsBackground = true, Name = "lamina-branch-watch" };
        _thread.Start();
    }

    // Only changes: opening, reading and closing a branch file directly changes nothing in the union's view.
    private const uint BranchMask = InotifyMask.Modify | InotifyMask.Attrib | InotifyMask.Create
        | InotifyMask.Delete | InotifyMask.Move | InotifyMask.DeleteSelf | InotifyMask.MoveSelf | InotifyMask.OnlyDir;

    private void OnDirectoryWatched(UnionNode dir, bool watched)
    {
        if (!watched)
        {
            lock (_gate)
            {
                if (!_dirs.TryGetValue(dir, out var gone) || --gone.Followers > 0) return;
                _dirs.Remove(dir);
                foreach (int wd in gone.BranchWds) Unlink(wd, dir);
            }
            return;
        }
        var state = new DirState { Followers = 1 };
        lock (_gate)
        {
            if (_dirs.TryGetValue(dir, out var known)) { known.Followers++; return; }
            _dirs[dir] = state;
        }
        AttachBranches(dir, state);
        foreach (var name in _fs.MergedNames(dir) ?? [])
            if (_fs.EntryStateOf(dir, name) is { } s)
                lock (_gate) state.Names[name] = s;
    }

    /// <summary>Watches each branch directory that contributes to <paramref name="dir"/> (again: new ones appear by copy-up or mkdir).</summary>
    private void AttachBranches(UnionNode dir, DirState state)
    {
        _fs.ForEachContributingDirectory(dir, (_, dirFd) =>
        {
            if (ScanAllBranches || (Sys.FStatFs(dirFd, out var sfs) == 0 && RemoteFs.Contains(sfs.Type)))
                lock (_gate) state.NeedsScan = true;
            if (ScanAllBranches) return; // stands for a branch with no inotify at all
            int wd = Sys.InotifyAddWatch(_fd, $"/proc/self/fd/{dirFd}", BranchMask);
            if (wd < 0) return;
            lock (_gate)
            {
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
        Sys.InotifyRmWatch(_fd, wd);
    }

    /// <summary>The engine changed this name itself: take its new state as the reference, so the branch echo is no event.</summary>
    private void OnEngineChanged(UnionNode dir, string name)
    {
        Trace($"engine changed {dir.Name}/{name}");
        DirState? state;
        lock (_gate) if (!_dirs.TryGetValue(dir, out state)) return;
        var s = _fs.EntryStateOf(dir, name);
        EntryState? old;
        lock (_gate)
        {
            old = state.Names.TryGetValue(name, out var o) ? o : null;
            state.Versions[name] = state.Versions.GetValueOrDefault(name) + 1;
            if (s is { } v) state.Names[name] = v; else state.Names.Remove(name);
        }
        // A new name may have needed the directory itself copied up into another branch: watch that one too.
        if (old is null || (s is { } now && now.Branch != old.Value.Branch)) AttachBranches(dir, state);
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
            state.Versions[node.Name] = state.Versions.GetValueOrDefault(node.Name) + 1;
            if (now is { } v) state.Names[node.Name] = v; else state.Names.Remove(node.Name);
        }
        Trace($"closing {node.Name}: {old?.Size} -> {now?.Size}");
        if (old is { } a && now is { } b && a != b && (a.Size != b.Size || a.MSec != b.MSec || a.MNsec != b.MNsec))
            _hub.Object(node, InotifyMask.Modify);
    }

    /// <summary>A copy-up: the engine's own doing, nothing to report.</summary>
    private void OnBackingChanged(UnionNode node)
    {
        if (node.Parent is { } p) OnEngineChanged(p, node.Name);
    }

    private unsafe void Run()
    {
        var buffer = new byte[64 * 1024];
        var pending = new List<(int Wd, uint Mask, uint Cookie, string? Name)>();
        long lastScan = Environment.TickCount64;
        int scanCursor = 0;
        while (!_stopping)
        {
            var pfd = new Sys.PollFd { Fd = _fd, Events = Sys.POLLIN };
            int wait = ScanInterval > TimeSpan.Zero ? (int)Math.Min(200, ScanInterval.TotalMilliseconds) : 200;
            int r = Sys.Poll(&pfd, 1, wait);
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
                pfd = new Sys.PollFd { Fd = _fd, Events = Sys.POLLIN };
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
            if (from is { } f) Emit(f.Dir, f.Name, InotifyMask.Delete, f.Old, null, 0);
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
                lock (_gate) foreach (var d in dirs) { Unlink(wd, d); if (_dirs.TryGetValue(d, out var ds)) ds.BranchWds.Remove(wd); }
                continue;
            }
            if (rawName is null) continue; // the branch directory itself moved or went: its union directory's own events come from its parent
            string name = rawName;
            if (name == Markers.AufsOpaque) { foreach (var d in dirs) Rescan(d); continue; }
            if (name.StartsWith(Markers.AufsWhiteoutPrefix, StringComparison.Ordinal)) name = name[Markers.AufsWhiteoutPrefix.Length..];
            Trace($"raw {InotifyMask.Format(mask)} {rawName} dirs {dirs.Count}");
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
                var now = _fs.EntryStateOf(dir, name);
                lock (_gate)
                {
                    if (state.Versions.GetValueOrDefault(name) != version) continue; // the engine changed it meanwhile: its own event covers it
                    if (now is { } v) state.Names[name] = v; else state.Names.Remove(name);
                }
                if ((mask & InotifyMask.MovedFrom) != 0 && old is { } was && now is null)
                {
                    FlushFrom();
                    from = (dir, name, was, rawCookie, _hub.NextCookie());
                    continue;
                }
                if ((mask & InotifyMask.MovedTo) != 0 && from is { } f && f.RawCookie == rawCookie && old is null && now is { } arrived)
                {
                    Emit(f.Dir, f.Name, InotifyMask.MovedFrom, f.Old, null, f.Cookie);
                    Emit(dir, name, InotifyMask.MovedTo, null, arrived, f.Cookie);
                    from = null;
                    continue;
                }
                FlushFrom();
                Compare(dir, state, name, old, now, mask);
            }
        }
        FlushFrom();
    }

    private void Compare(UnionNode dir, DirState state, string name, EntryState? old, EntryState? now, uint rawMask = 0)
    {
        switch (old, now)
        {
            case (null, null): return;
            case (null, { } created): Emit(dir, name, InotifyMask.Create, null, created, 0); return;
            case ({ } deleted, null): Emit(dir, name, InotifyMask.Delete, deleted, null, 0); return;
            case ({ } a, { } b) when a == b: return;
            case ({ } a, { } b) when a.Type != b.Type || (a.UnionIno != b.UnionIno && a.IsDirectory):
                Emit(dir, name, InotifyMask.Delete, a, null, 0);
                Emit(dir, name, InotifyMask.Create, null, b, 0);
                return;
            case ({ } a, { } b) when a.Branch != b.Branch && a.UnionIno == b.UnionIno && a.Size == b.Size && a.MSec == b.MSec && a.MNsec == b.MNsec:
                return; // a copy-up (times and size are copied with it), or an identical copy removed: the view did not change
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
        var node = (now ?? old) is { } s ? _fs.FindNodeByIno(s.UnionIno) : null;
        if ((mask & (InotifyMask.Modify | InotifyMask.Attrib)) != 0)
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
    }

    private void Rescan(UnionNode dir)
    {
        DirState? state;
        lock (_gate) if (!_dirs.TryGetValue(dir, out state)) return;
        var names = new HashSet<string>(_fs.MergedNames(dir) ?? [], StringComparer.Ordinal);
        lock (_gate) names.UnionWith(state.Names.Keys);
        foreach (var name in names)
        {
            EntryState? old;
            lock (_gate) old = state.Names.TryGetValue(name, out var o) ? o : null;
            var now = _fs.EntryStateOf(dir, name);
            lock (_gate) { if (now is { } v) state.Names[name] = v; else state.Names.Remove(name); }
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

    private static readonly string? TraceFile = Environment.GetEnvironmentVariable("LAMINA_WATCH_TRACE");

    private static void Trace(string line)
    {
        if (TraceFile is not null) lock (typeof(BranchWatcher)) File.AppendAllText(TraceFile, $"{DateTime.UtcNow:HH:mm:ss.ffffff} {line}\n");
    }

    public void Dispose()
    {
        _stopping = true;
        _hub.DirectoryWatched -= OnDirectoryWatched;
        _fs.EngineChangedEntry -= OnEngineChanged;
        _fs.NodeBackingChanged -= OnBackingChanged;
        _fs.EngineClosingForWrite -= OnClosingForWrite;
        _thread?.Join();
        Sys.Close(_fd);
    }
}
