using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Lamina.Branches;
using Lamina.Native;

namespace Lamina.Tracking;

/// <summary>
/// Keeps every cache of the union coherent with changes made outside it, so those caches can be long:
/// each branch directory that contributes to a union directory the engine holds (one the kernel has
/// looked up) is marked with fanotify, and every change reported there drops exactly what it made
/// stale, in the engine (cached layers and name indexes) and, through an
/// <see cref="IKernelCacheInvalidator"/>, in the kernel (names, attributes, listings, pages).
/// </summary>
/// <remarks>
/// <para><b>Echoes.</b> fanotify says which process made each change. The engine's own changes are
/// made by this process and skipped: the engine keeps its caches right as it makes them, and the
/// kernel learns of them from the replies. Everything else is a direct change: another process on a
/// branch, a second mount of the same layer (another process), or the kernel writing for a passthrough
/// descriptor (the writer's process; the kernel knows those writes, and a file open for writing through
/// the union is therefore not invalidated on IN_MODIFY).</para>
/// <para><b>Tracked.</b> A union directory is tracked (<see cref="UnionNode.IsTracked"/>) once all its
/// contributing branch directories are marked; only then may a transport let the kernel keep its
/// entries long. Marking happens on the tracker's thread, so a directory is briefly untracked after
/// the engine first holds it, after a copy-up gives it an upper directory, and after a rename; a
/// branch directory that appears while it was untracked is read once when marked, and every name in
/// it invalidated. A directory stays untracked, with the reason shown in <see cref="Report"/>, when
/// a branch filesystem cannot report changes made elsewhere (network and FUSE filesystems) or a mark
/// cannot be placed (the fs.fanotify.max_user_marks limit): transports keep short timeouts there.</para>
/// <para><b>Lost events.</b> A queue overflow drops every cached layer in the engine and asks the
/// transport to check every cached name and object again.</para>
/// </remarks>
public sealed class BranchTracker : IUnionObserver, IDisposable
{
    private const ulong Events = Sys.FAN_CREATE | Sys.FAN_DELETE | Sys.FAN_MOVED_FROM | Sys.FAN_MOVED_TO | Sys.FAN_MODIFY
        | Sys.FAN_ATTRIB | Sys.FAN_CLOSE_WRITE | Sys.FAN_DELETE_SELF | Sys.FAN_MOVE_SELF | Sys.FAN_ONDIR | Sys.FAN_EVENT_ON_CHILD;

    // statfs f_type of filesystems whose changes made elsewhere (other hosts, other FUSE servers) are not reported locally.
    private static readonly Dictionary<long, string> RemoteFs = new()
    {
        [0x6969] = "NFS", [0xFF534D42] = "CIFS", [0xFE534D42] = "SMB2", [0x517B] = "SMB", [0x65735546] = "FUSE",
        [0x01021997] = "9P", [0x00C36400] = "Ceph", [0x47504653] = "GPFS", [0x0BD00BD0] = "Lustre",
    };

    private readonly UnionFileSystem _fs;
    private readonly IKernelCacheInvalidator? _kernel;
    private readonly int _self = Environment.ProcessId;
    private int _fan = -1, _wakeRead = -1, _wakeWrite = -1;
    private readonly object _gate = new();
    private readonly Dictionary<UnionNode, Tracked> _dirs = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, Mark> _marks = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(UnionNode Dir, Work Op)> _work = new();

    /// <summary>What the tracker's thread is asked to do with a directory.</summary>
    private enum Work { Ensure, Retrack, Untrack, Everything }
    private IDisposable? _subscription;
    private Thread? _thread;
    private volatile bool _stopping;
    private long _events, _echoes, _overflows;

    /// <summary>One union directory: the marks of its contributing branch directories, or why it is not tracked.</summary>
    private sealed class Tracked(Mark[] marks, string? why)
    {
        public readonly Mark[] Marks = marks;
        public readonly string? Why = why;
    }

    /// <summary>One marked branch directory and the union directories it contributes to.</summary>
    private sealed class Mark(string key, Branch branch, string relPath)
    {
        public readonly string Key = key;
        public readonly Branch Branch = branch;
        public readonly string RelPath = relPath;
        public readonly List<UnionNode> Dirs = [];
    }

    public BranchTracker(UnionFileSystem fs, IKernelCacheInvalidator? kernel = null)
    {
        _fs = fs;
        _kernel = kernel;
        // The daemon's own changes are events too (echoes, skipped): a burst of them (50,000 creates) would
        // overflow the default queue of 16,384, and an overflow costs every cache. Unbounded where allowed.
        const uint flags = Sys.FAN_CLASS_NOTIF | Sys.FAN_CLOEXEC | Sys.FAN_NONBLOCK | Sys.FAN_REPORT_DFID_NAME;
        _fan = Sys.FanotifyInit(flags | Sys.FAN_UNLIMITED_QUEUE | Sys.FAN_UNLIMITED_MARKS, (uint)(Sys.O_RDONLY | Sys.O_CLOEXEC));
        if (_fan < 0) _fan = Sys.FanotifyInit(flags, (uint)(Sys.O_RDONLY | Sys.O_CLOEXEC));
        if (_fan < 0)
        {
            Unavailable = $"fanotify_init: {Sys.LastErrno}";
            return;
        }
        unsafe
        {
            int* fds = stackalloc int[2];
            if (Sys.Pipe2(fds, Sys.O_CLOEXEC | Sys.O_NONBLOCK) != 0) throw new ErrnoException(Sys.LastErrno, "pipe2");
            _wakeRead = fds[0];
            _wakeWrite = fds[1];
        }
    }

    /// <summary>Why no directory can be tracked at all (null when tracking works).</summary>
    public string? Unavailable { get; }

    /// <summary>Starts tracking the directories the engine holds now and every one it takes from now on.</summary>
    public void Start()
    {
        if (Unavailable is not null || _thread is not null) return;
        // The thread exists before the subscription, so no directory the engine takes meanwhile is missed.
        _thread = new Thread(Run) { IsBackground = true, Name = "lamina-branch-track" };
        _subscription = _fs.Observe(this);
        foreach (var node in _fs.AllNodes())
            if (node.IsDirectory) _work.Enqueue((node, Work.Ensure));
        _thread.Start();
        Wake();
    }

    // ---- what the engine tells -------------------------------------------------------------------

    void IUnionObserver.NodeAdded(UnionNode node)
    {
        if (node.IsDirectory) Post(node, Work.Ensure);
    }

    void IUnionObserver.NodeDropped(UnionNode node)
    {
        if (!node.IsDirectory) { _closedWriters.TryRemove(node, out _); return; }
        node.IsTracked = false;
        Post(node, Work.Untrack);
    }

    /// <summary>A directory copied up has a new contributing directory, unmarked until the tracker's thread marks it.</summary>
    void IUnionObserver.AfterPublish(UnionNode node) => Retrack(node);

    void IUnionObserver.EntryRenamed(UnionNode parent, string name, UnionNode newParent, string newName, UnionNode? moved, UnionNode? replaced, bool exchange)
    {
        if (moved is { IsDirectory: true }) Retrack(moved);
        if (exchange && replaced is { IsDirectory: true }) Retrack(replaced);
    }

    void IUnionObserver.BranchChanged(BranchChange change)
    {
        if (change.Node is { IsDirectory: true } dir) Retrack(dir);
        // A branch added, removed or reordered: every directory may show something else.
        else if (change.Node is null && change.Parent is null) Post(_fs.Root, Work.Everything);
    }

    private void Retrack(UnionNode dir)
    {
        if (!dir.IsDirectory || _thread is null) return;
        dir.IsTracked = false;
        Post(dir, Work.Retrack);
    }

    private void Post(UnionNode dir, Work op)
    {
        if (_thread is null) return;
        _work.Enqueue((dir, op));
        Wake();
    }

    private unsafe void Wake()
    {
        byte one = 1;
        Sys.Write(_wakeWrite, &one, 1);
    }

    /// <summary>Waits until everything posted so far is done (tests, and status that must be current).</summary>
    public bool Drain(TimeSpan timeout)
    {
        if (_thread is null) return true;
        using var done = new ManualResetEventSlim();
        _drains.Enqueue((Interlocked.Increment(ref _drainTickets), done));
        Wake();
        return done.Wait(timeout);
    }

    // A drain is answered after a whole turn of the thread that began after it was asked: that turn's
    // read of the event queue sees every change made before the drain.
    private readonly ConcurrentQueue<(long Ticket, ManualResetEventSlim Done)> _drains = new();
    private long _drainTickets;

    // ---- marking ------------------------------------------------------------------------------------

    // Marking runs on the tracker's thread, and on a request's thread for a directory met for the first time.
    private readonly object _marking = new();

    /// <summary>
    /// Tracks a directory met for the first time at once, on the calling thread, so what the kernel
    /// learns of it from this request on can be kept long. Called by a transport before it answers a
    /// request about the directory; never does anything that waits for the kernel (a directory that
    /// was tracked before and must be marked again is left to the tracker's thread).
    /// </summary>
    public void TrackNow(UnionNode dir)
    {
        if (_thread is null || dir.IsTracked || !dir.IsDirectory) return;
        Ensure(dir);
    }

    /// <summary>Marks a directory again (its branch directories may have changed); tells the kernel of what arrived meanwhile.</summary>
    private void Track(UnionNode dir)
    {
        List<Mark> arrived;
        lock (_marking) arrived = TrackLocked(dir);
        // Outside the lock: an invalidation waits for the directory's lock in the kernel, which a request
        // may hold while it waits in TrackNow for the marking lock.
        foreach (var m in arrived) Arrived(dir, m);
    }

    /// <summary>Marks a directory not tracked before (nothing can have arrived: nothing is invalidated).</summary>
    private void Ensure(UnionNode dir)
    {
        lock (_marking)
        {
            lock (_gate) if (_dirs.ContainsKey(dir)) return;
            TrackLocked(dir);
        }
    }

    /// <summary>Marks the directory's branch directories; returns those that newly contribute to a directory tracked before.</summary>
    private List<Mark> TrackLocked(UnionNode dir)
    {
        if (!dir.InTable || dir.IsDetached) { UntrackLocked(dir); return []; }
        var marks = new List<Mark>();
        var fresh = new List<Mark>();
        string? why = null;
        bool resolved = _fs.ForEachContributingDirectory(dir, (branch, fd, rel) =>
        {
            if (why is not null) return;
            if (Sys.FStatFs(fd, out var sfs) == 0 && RemoteFs.TryGetValue(sfs.Type, out var kind))
            {
                why = $"branch {branch.Index} is on {kind}, which does not report changes made elsewhere";
                return;
            }
            if (HandleKey(fd) is not { } key)
            {
                why = $"no file handle for a directory of branch {branch.Index}: {Sys.LastErrno}";
                return;
            }
            lock (_gate)
                if (_marks.TryGetValue(key, out var known)) { marks.Add(known); return; }
            if (Sys.FanotifyMarkAt(_fan, Sys.FAN_MARK_ADD | Sys.FAN_MARK_ONLYDIR, Events, fd, ".") != 0)
            {
                var e = Sys.LastErrno;
                why = e == Errno.ENOSPC
                    ? $"the mark limit is reached (fs.fanotify.max_user_marks)"
                    : $"fanotify_mark on a directory of branch {branch.Index}: {e}";
                return;
            }
            var mark = new Mark(key, branch, rel);
            marks.Add(mark);
            fresh.Add(mark);
        });
        if (!resolved) { UntrackLocked(dir); return []; }
        Tracked? old;
        var unmark = new List<Mark>();
        lock (_gate)
        {
            foreach (var m in fresh) _marks[m.Key] = m;
            foreach (var m in marks)
                if (!m.Dirs.Contains(dir, ReferenceEqualityComparer.Instance)) m.Dirs.Add(dir);
            _dirs.TryGetValue(dir, out old);
            if (old is not null)
                foreach (var m in old.Marks)
                    if (!marks.Contains(m)) Unlink(m, dir, unmark);
            _dirs[dir] = new Tracked([.. marks], why);
        }
        foreach (var m in unmark) Unmark(m);
        // The engine's cached layers may predate the marks: read them again from now on.
        _fs.BranchDirectoryChanged(dir);
        dir.IsTracked = why is null && dir.InTable;
        return old is null ? [] : [.. marks.Where(m => !old.Marks.Contains(m))];
    }

    /// <summary>
    /// A branch directory newly contributes to <paramref name="dir"/>: whatever it held before it was marked
    /// may be news to the kernel, so every name in it is invalidated, and the union directories those
    /// names lead to are marked again (they may have gained a branch directory too).
    /// </summary>
    private void Arrived(UnionNode dir, Mark mark)
    {
        if (OpenMarked(mark) is not { } fd) return;
        List<(string Name, byte Type, ulong Ino)> entries;
        using (fd)
        {
            if (BranchIo.OpenAt(fd.Fd, ".", BranchIo.DirReadFlags, 0, out var listing) != Errno.None) return;
            using (listing)
                if (BranchIo.ReadDir(listing.Fd, out entries) != Errno.None) return;
        }
        foreach (var (raw, _, _) in entries)
        {
            string name = VisibleName(raw);
            if (name.Length == 0) continue;
            _kernel?.EntryChanged(dir, name);
            if (ChildShownAt(dir, name) is { IsDirectory: true } child) Retrack(child);
        }
    }

    private void Untrack(UnionNode dir)
    {
        lock (_marking) UntrackLocked(dir);
    }

    private void UntrackLocked(UnionNode dir)
    {
        dir.IsTracked = false;
        var unmark = new List<Mark>();
        lock (_gate)
        {
            if (!_dirs.Remove(dir, out var old)) return;
            foreach (var m in old.Marks) Unlink(m, dir, unmark);
        }
        foreach (var m in unmark) Unmark(m);
    }

    private void Unlink(Mark mark, UnionNode dir, List<Mark> unmark)
    {
        mark.Dirs.Remove(dir);
        if (mark.Dirs.Count > 0) return;
        _marks.Remove(mark.Key);
        unmark.Add(mark);
    }

    /// <summary>
    /// Removes a mark no union directory needs. fanotify removes marks by path: the branch directory is
    /// found again by its path in the branch, and unmarked only if it is still the directory that was
    /// marked (one moved away keeps its mark until it is deleted; its events match no directory).
    /// </summary>
    private void Unmark(Mark mark)
    {
        if (OpenMarked(mark) is not { } fd) return;
        using (fd) Sys.FanotifyMarkAt(_fan, Sys.FAN_MARK_REMOVE | Sys.FAN_MARK_ONLYDIR, Events, fd.Fd, ".");
    }

    /// <summary>The marked branch directory, if its path in the branch still leads to it.</summary>
    private static SafeFd? OpenMarked(Mark mark)
    {
        string rel = mark.RelPath.Length == 0 ? "." : mark.RelPath;
        // The whole path at once, so openat2 keeps it inside the branch and follows no symlink planted on it.
        int r = Sys.OpenAt2(mark.Branch.RootFd.Fd, rel, Sys.O_PATH | Sys.O_DIRECTORY | Sys.O_CLOEXEC, 0, Sys.RESOLVE_BENEATH | Sys.RESOLVE_NO_SYMLINKS);
        if (r < 0) return null;
        var fd = new SafeFd(r);
        if (HandleKey(fd.Fd) == mark.Key) return fd;
        fd.Dispose();
        return null;
    }

    /// <summary>The key of a directory's file handle, as fanotify reports it: handle type and bytes.</summary>
    private static unsafe string? HandleKey(int fd)
    {
        byte* buffer = stackalloc byte[8 + Sys.MAX_HANDLE_SZ];
        *(uint*)buffer = Sys.MAX_HANDLE_SZ;
        if (Sys.NameToHandleAt(fd, "", buffer, out _, Sys.AT_EMPTY_PATH) != 0) return null;
        uint size = *(uint*)buffer;
        return Key(*(int*)(buffer + 4), new ReadOnlySpan<byte>(buffer + 8, (int)size));
    }

    private static string Key(int type, ReadOnlySpan<byte> handle) => $"{type:x}:{Convert.ToHexString(handle)}";

    // ---- events --------------------------------------------------------------------------------------

    private unsafe void Run()
    {
        var buffer = new byte[64 * 1024];
        var fds = stackalloc Sys.PollFd[2];
        while (!_stopping)
        {
            long asked = Interlocked.Read(ref _drainTickets);
            fds[0] = new Sys.PollFd { Fd = _fan, Events = Sys.POLLIN };
            fds[1] = new Sys.PollFd { Fd = _wakeRead, Events = Sys.POLLIN };
            int r = Sys.Poll(fds, 2, _drains.IsEmpty ? 1000 : 0); // a drain waiting for this turn need not wait for the timeout
            if (r > 0 && (fds[1].REvents & Sys.POLLIN) != 0)
                fixed (byte* p = buffer) Sys.Read(_wakeRead, p, (nuint)buffer.Length);
            try
            {
                // Events first: those read now were raised before the work below was posted, so they
                // concern the marks as they are now.
                if (r > 0 && (fds[0].REvents & Sys.POLLIN) != 0) ReadEvents(buffer);
                while (_work.TryDequeue(out var item))
                {
                    switch (item.Op)
                    {
                        case Work.Ensure: Ensure(item.Dir); break; // often done already, by TrackNow
                        case Work.Retrack: Track(item.Dir); break;
                        case Work.Untrack: if (!item.Dir.InTable) Untrack(item.Dir); break;
                        case Work.Everything: Everything(); break;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // the union is going away
            }
            while (_drains.TryPeek(out var drain) && drain.Ticket <= asked && _drains.TryDequeue(out drain)) drain.Done.Set();
        }
    }

    private unsafe void ReadEvents(byte[] buffer)
    {
        while (true)
        {
            long n, closedBefore = Interlocked.Read(ref _closedSeq);
            fixed (byte* p = buffer) n = Sys.Read(_fan, p, (nuint)buffer.Length);
            if (n <= 0) { ForgetClosedWriters(closedBefore); return; }
            int metaSize = Marshal.SizeOf<FanotifyEventMetadata>();
            for (int off = 0; off + metaSize <= n;)
            {
                var meta = MemoryMarshal.Read<FanotifyEventMetadata>(buffer.AsSpan(off));
                if (meta.Vers != Sys.FANOTIFY_METADATA_VERSION || meta.EventLen < metaSize || off + meta.EventLen > n) return;
                var record = buffer.AsSpan(off, (int)meta.EventLen);
                off += (int)meta.EventLen;
                Interlocked.Increment(ref _events);
                if ((meta.Mask & Sys.FAN_Q_OVERFLOW) != 0) { Overflowed(); continue; }
                if (meta.Pid == _self) { Interlocked.Increment(ref _echoes); continue; }
                if (ParseDirectory(record[meta.MetadataLen..], out var key, out var name)) Changed(key, name, meta.Mask);
            }
        }
    }

    /// <summary>The directory (file handle key) and entry name of an event's DFID_NAME or DFID record.</summary>
    private static bool ParseDirectory(ReadOnlySpan<byte> info, out string key, out string? name)
    {
        key = "";
        name = null;
        while (info.Length >= 4)
        {
            byte type = info[0];
            int len = MemoryMarshal.Read<ushort>(info[2..]);
            if (len < 4 || len > info.Length) return false;
            var body = info[4..len];
            // body: fsid (8 bytes), then struct file_handle (u32 size, i32 type, bytes), then the name for DFID_NAME.
            if ((type == Sys.FAN_EVENT_INFO_TYPE_DFID_NAME || type == Sys.FAN_EVENT_INFO_TYPE_DFID) && body.Length >= 16)
            {
                int size = (int)MemoryMarshal.Read<uint>(body[8..]);
                int handleType = MemoryMarshal.Read<int>(body[12..]);
                if (16 + size > body.Length) return false;
                key = Key(handleType, body.Slice(16, size));
                if (type == Sys.FAN_EVENT_INFO_TYPE_DFID_NAME)
                {
                    var rest = body[(16 + size)..];
                    int z = rest.IndexOf((byte)0);
                    name = Encoding.UTF8.GetString(z < 0 ? rest : rest[..z]);
                }
                return true;
            }
            info = info[len..];
        }
        return false;
    }

    /// <summary>A change made outside the union in a marked branch directory.</summary>
    private void Changed(string key, string? rawName, ulong mask)
    {
        List<UnionNode> dirs;
        lock (_gate)
        {
            if (!_marks.TryGetValue(key, out var mark)) return;
            dirs = [.. mark.Dirs];
        }
        bool self = rawName is null or "." or "";
        foreach (var dir in dirs)
        {
            if (self)
            {
                // The branch directory itself: its attributes or markers changed, or it moved or went away.
                _fs.BranchDirectoryChanged(dir);
                _kernel?.ObjectChanged(dir);
                if ((mask & (Sys.FAN_DELETE_SELF | Sys.FAN_MOVE_SELF)) != 0) Retrack(dir);
                continue;
            }
            if (rawName == Markers.AufsOpaque)
            {
                // An aufs opaque marker hides every lower name at once.
                _fs.BranchDirectoryChanged(dir);
                _kernel?.ObjectChanged(dir);
                _kernel?.NamesLost();
                continue;
            }
            string name = VisibleName(rawName!);
            if (name.Length == 0) continue;
            bool entry = (mask & (Sys.FAN_CREATE | Sys.FAN_DELETE | Sys.FAN_MOVED_FROM | Sys.FAN_MOVED_TO)) != 0 || name != rawName;
            bool attrib = (mask & Sys.FAN_ATTRIB) != 0;
            // A new or removed name, or new markers on one (whiteout, opaque): the layers below change.
            if (entry || attrib) _fs.BranchDirectoryChanged(dir);
            if (entry)
            {
                var child = ChildShownAt(dir, name);
                // Gone from the view: the kernel is told which object went, so watchers of it on the mount hear IN_DELETE_SELF.
                if (child is null && (mask & (Sys.FAN_DELETE | Sys.FAN_MOVED_FROM)) != 0) _kernel?.EntryDeleted(dir, name, _fs.ChildNode(dir, name));
                else _kernel?.EntryChanged(dir, name);
                if (child is null) continue;
                _kernel?.ObjectChanged(child); // another file may show through now
                if (child.IsDirectory) Retrack(child);
                continue;
            }
            if (attrib)
            {
                if (ChildShownAt(dir, name) is not { } child) continue;
                _kernel?.EntryChanged(dir, name);
                _kernel?.AttributesChanged(child);
            }
            if ((mask & (Sys.FAN_MODIFY | Sys.FAN_CLOSE_WRITE)) != 0 && _fs.ChildNode(dir, name) is { } written && !PassedThrough(written))
                _kernel?.ObjectChanged(written);
        }
    }

    // ---- writes the kernel passed through --------------------------------------------------------

    // A file's state when the union's last writer of it closed: the writes the kernel passed through
    // for that writer are reported with the writer's pid, and they are known to the kernel. Its
    // writes are queued before the daemon hears of the close, so a record is dropped once the queue
    // has been read empty after it (the backing file's own IN_CLOSE_WRITE may come later, from the
    // closing task's last fput: then it costs one needless invalidation, never a missed one).
    private readonly ConcurrentDictionary<UnionNode, EntryState> _closedWriters = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentQueue<(long Seq, UnionNode Node)> _closedOrder = new();
    private long _closedSeq;

    void IUnionObserver.HandleClosing(UnionNode node, int openFlags)
    {
        if (_thread is null || !UnionFileSystem.OpenForWriting(openFlags) || node.Parent is not { } dir) return;
        if (_fs.EntryStateOf(dir, node.Name) is not { } state) return;
        _closedWriters[node] = state;
        _closedOrder.Enqueue((Interlocked.Increment(ref _closedSeq), node));
    }

    /// <summary>The event queue was read empty: the records of writers closed before <paramref name="seq"/> have seen all their events.</summary>
    private void ForgetClosedWriters(long seq)
    {
        while (_closedOrder.TryPeek(out var head) && head.Seq <= seq && _closedOrder.TryDequeue(out head))
            _closedWriters.TryRemove(head.Node, out _);
    }

    /// <summary>
    /// Whether a write reported for <paramref name="node"/> is one the kernel passed through for a writer
    /// of the union: the file is open for writing through it, or is as that writer left it. A later
    /// direct write changes the file's times, and is invalidated.
    /// </summary>
    private bool PassedThrough(UnionNode node)
    {
        if (_fs.HasUnionWriter(node.Ino)) return true;
        if (!_closedWriters.TryGetValue(node, out var left)) return false;
        if (node.Parent is { } dir && _fs.EntryStateOf(dir, node.Name) is { } now && now == left) return true;
        _closedWriters.TryRemove(node, out _);
        return false;
    }

    /// <summary>The node the engine holds for <paramref name="name"/> in <paramref name="dir"/> as the branches show it now.</summary>
    private UnionNode? ChildShownAt(UnionNode dir, string name) =>
        _fs.EntryStateOf(dir, name) is { UnionIno: var ino } && _fs.FindNodeByIno(ino) is { } node && node.Parent == dir && node.Name == name
            ? node : null;

    /// <summary>The union name a branch entry concerns: an aufs whiteout stands for the name it hides; other markers for none.</summary>
    private static string VisibleName(string raw)
    {
        if (raw.StartsWith(Markers.AufsWhiteoutPrefix, StringComparison.Ordinal))
        {
            string hidden = raw[Markers.AufsWhiteoutPrefix.Length..];
            return Markers.IsMarkerName(hidden) ? "" : hidden;
        }
        return Markers.IsMarkerName(raw) ? "" : raw;
    }

    /// <summary>Events were lost: nothing cached anywhere can be trusted.</summary>
    private void Overflowed()
    {
        Interlocked.Increment(ref _overflows);
        Everything();
    }

    /// <summary>
    /// Anything may have changed (events lost, branches added or removed): every cached layer goes, every
    /// directory is marked again, and the kernel drops every name (FUSE_NOTIFY_INC_EPOCH) and object.
    /// </summary>
    private void Everything()
    {
        _fs.BranchDirectoriesChanged();
        List<UnionNode> dirs;
        lock (_gate) dirs = [.. _dirs.Keys];
        foreach (var d in dirs) Track(d);
        if (_kernel is null) return;
        _kernel.NamesLost();
        foreach (var node in _fs.AllNodes()) _kernel.ObjectChanged(node);
    }

    // ---- status --------------------------------------------------------------------------------------

    /// <summary>What is tracked now: for <c>lamina status</c> and tests.</summary>
    public TrackingReport Report()
    {
        lock (_gate)
        {
            var untracked = _dirs.Where(kv => kv.Value.Why is not null)
                .GroupBy(kv => kv.Value.Why!)
                .ToDictionary(g => g.Key, g => g.Count());
            return new TrackingReport(Unavailable, _dirs.Count - untracked.Values.Sum(), untracked, _marks.Count,
                Interlocked.Read(ref _events), Interlocked.Read(ref _echoes), Interlocked.Read(ref _overflows));
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _subscription?.Dispose();
        if (_thread is not null)
        {
            Wake();
            _thread.Join();
        }
        foreach (var fd in new[] { _fan, _wakeRead, _wakeWrite })
            if (fd >= 0) Sys.Close(fd);
        _fan = _wakeRead = _wakeWrite = -1;
        lock (_gate)
        {
            foreach (var dir in _dirs.Keys) dir.IsTracked = false;
            _dirs.Clear();
            _marks.Clear();
        }
    }
}

/// <summary>What a <see cref="BranchTracker"/> tracks.</summary>
/// <param name="Unavailable">Why nothing can be tracked, or null.</param>
/// <param name="Tracked">Union directories whose every branch directory is marked.</param>
/// <param name="Untracked">Union directories that cannot be tracked, counted by reason.</param>
/// <param name="Marks">Branch directories marked.</param>
/// <param name="Events">Branch events read.</param>
/// <param name="Echoes">Of those, the engine's own changes (skipped).</param>
/// <param name="Overflows">Times the event queue overflowed.</param>
public sealed record TrackingReport(string? Unavailable, int Tracked, IReadOnlyDictionary<string, int> Untracked, int Marks,
    long Events, long Echoes, long Overflows);
