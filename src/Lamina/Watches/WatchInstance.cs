using System.Globalization;
using Lamina.Native;

namespace Lamina.Watches;

/// <summary>One event as read from an instance: inotify's struct inotify_event, with the name as a string.</summary>
/// <param name="Wd">The watch (-1 for IN_Q_OVERFLOW).</param>
/// <param name="Name">Set for events about an entry of a watched directory (a relative path for recursive watches).</param>
public readonly record struct WatchEvent(int Wd, uint Mask, uint Cookie, string? Name)
{
    public override string ToString() => $"wd={Wd} {InotifyMask.Format(Mask)}{(Cookie != 0 ? $" cookie={Cookie}" : "")}{(Name is null ? "" : " " + Name)}";
}

/// <summary>What a watch is on: an opaque key (a union node), its path when added, and whether it is a directory.</summary>
public readonly record struct WatchTarget(object Key, string Path, bool IsDirectory);

/// <summary>Where an instance finds the objects it watches and registers watches for event delivery.</summary>
public interface IWatchTargets
{
    /// <summary>Finds the object at <paramref name="path"/>; on success it stays pinned until <see cref="Attach"/> or <see cref="Unpin"/>.</summary>
    Errno Resolve(string path, bool followLast, out WatchTarget target);

    /// <summary>The watch now exists: deliver events for its target (takes over the pin).</summary>
    void Attach(Watch watch);

    /// <summary>The watch is gone: stop delivering and drop its pin.</summary>
    void Detach(Watch watch);

    /// <summary>Drops a pin taken by <see cref="Resolve"/> that did not become a watch.</summary>
    void Unpin(object key);
}

/// <summary>One watch of an instance.</summary>
public sealed class Watch
{
    internal Watch(WatchInstance instance, int wd, uint mask, in WatchTarget target)
    {
        Instance = instance; Wd = wd; Mask = mask; Target = target.Key; Path = target.Path; IsDirectory = target.IsDirectory;
    }

    public WatchInstance Instance { get; }
    public int Wd { get; }

    /// <summary>Event bits plus the flags that stay with a watch (IN_ONESHOT, IN_EXCL_UNLINK, recursive).</summary>
    public uint Mask { get; internal set; }
    public object Target { get; }

    /// <summary>The path the watch was added with (checkpoints store it).</summary>
    public string Path { get; internal set; }
    public bool IsDirectory { get; }
    public bool IsRecursive => (Mask & InotifyMask.Recursive) != 0;
    public bool Removed { get; internal set; }
}

/// <summary>
/// One inotify instance: a watch table with kernel-exact descriptors and a bounded event queue
/// (the kernel's semantics: identical consecutive events merge, one IN_Q_OVERFLOW when full,
/// IN_IGNORED when a watch goes). Thread-safe; usable on its own with any <see cref="IWatchTargets"/>.
/// </summary>
public sealed class WatchInstance : IDisposable
{
    public const int DefaultMaxQueuedEvents = 16384; // /proc/sys/fs/inotify/max_queued_events
    private const uint KeptFlags = InotifyMask.OneShot | InotifyMask.ExclUnlink | InotifyMask.Recursive;

    private readonly object _gate = new();
    private readonly IWatchTargets _targets;
    private readonly WdAllocator _wds = new();
    private readonly Dictionary<int, Watch> _byWd = [];
    private readonly Dictionary<object, Watch> _byTarget = new(ReferenceEqualityComparer.Instance);
    private readonly Queue<WatchEvent> _queue = new();
    private WatchEvent _tail;
    private bool _overflowQueued;
    private bool _closed;

    public WatchInstance(IWatchTargets targets, int maxQueuedEvents = DefaultMaxQueuedEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxQueuedEvents, 1);
        _targets = targets;
        MaxQueuedEvents = maxQueuedEvents;
    }

    public int MaxQueuedEvents { get; }

    /// <summary>Raised once when the instance is disposed.</summary>
    public event Action<WatchInstance>? Closed;

    /// <summary>Raised (outside the instance lock) when the queue goes from empty to non-empty.</summary>
    public event Action<WatchInstance>? EventsAvailable;

    /// <summary>Raised (outside the instance lock) after the watch table changed: a watch added, updated or removed, or the cursor moved.</summary>
    public event Action<WatchInstance>? TableChanged;

    private void Changed() => TableChanged?.Invoke(this);

    public int WatchCount { get { lock (_gate) return _byWd.Count; } }
    public int QueuedEvents { get { lock (_gate) return _queue.Count; } }

    public Watch? FindWatch(int wd) { lock (_gate) return _byWd.GetValueOrDefault(wd); }
    public Watch[] Watches { get { lock (_gate) return [.. _byWd.Values.OrderBy(w => w.Wd)]; } }

    /// <summary>inotify_add_watch: the new or updated watch's descriptor.</summary>
    public Errno AddWatch(string path, uint mask, out int wd)
    {
        wd = -1;
        if ((mask & (InotifyMask.AllEvents | KeptFlags | InotifyMask.OnlyDir | InotifyMask.DontFollow | InotifyMask.MaskAdd | InotifyMask.MaskCreate)) == 0)
            return Errno.EINVAL;
        if ((mask & InotifyMask.MaskAdd) != 0 && (mask & InotifyMask.MaskCreate) != 0) return Errno.EINVAL;
        var e = _targets.Resolve(path, (mask & InotifyMask.DontFollow) == 0, out var target);
        if (e != Errno.None) return e;
        if ((mask & InotifyMask.OnlyDir) != 0 && !target.IsDirectory) { _targets.Unpin(target.Key); return Errno.ENOTDIR; }
        return AddWatch(target, mask, out wd);
    }

    /// <summary>Adds or updates the watch on an already resolved (and pinned) target.</summary>
    public Errno AddWatch(in WatchTarget target, uint mask, out int wd)
    {
        uint kept = mask & (InotifyMask.AllEvents | KeptFlags);
        Watch? created = null;
        lock (_gate)
        {
            wd = -1;
            if (_closed) { _targets.Unpin(target.Key); return Errno.EBADF; }
            if (_byTarget.TryGetValue(target.Key, out var existing))
            {
                _targets.Unpin(target.Key);
                if ((mask & InotifyMask.MaskCreate) != 0) return Errno.EEXIST;
                existing.Mask = (mask & InotifyMask.MaskAdd) != 0 ? existing.Mask | kept : kept;
                wd = existing.Wd;
            }
            else
            {
                int id = _wds.Allocate();
                if (id < 0) { _targets.Unpin(target.Key); return Errno.ENOSPC; }
                created = new Watch(this, id, kept, target);
                _byWd[id] = created;
                _byTarget[target.Key] = created;
                wd = id;
            }
        }
        if (created is not null) _targets.Attach(created);
        Changed();
        return Errno.None;
    }

    /// <summary>inotify_rm_watch: IN_IGNORED is queued for it.</summary>
    public Errno RemoveWatch(int wd)
    {
        Watch? w;
        lock (_gate)
        {
            if (!_byWd.TryGetValue(wd, out w)) return Errno.EINVAL;
            RemoveLocked(w, ignored: true);
        }
        _targets.Detach(w);
        Signal();
        Changed();
        return Errno.None;
    }

    /// <summary>INOTIFY_IOC_SETNEXTWD.</summary>
    public Errno SetNextWd(int wd)
    {
        bool ok;
        lock (_gate) ok = _wds.SetNext(wd);
        if (!ok) return Errno.EINVAL;
        Changed();
        return Errno.None;
    }

    /// <summary>The allocation cursor (the kernel's idr_next).</summary>
    public uint WdCursor { get { lock (_gate) return _wds.Cursor; } }

    private void RemoveLocked(Watch w, bool ignored)
    {
        if (w.Removed) return;
        w.Removed = true;
        _byWd.Remove(w.Wd);
        _byTarget.Remove(w.Target);
        _wds.Free(w.Wd);
        if (ignored) EnqueueLocked(new WatchEvent(w.Wd, InotifyMask.Ignored, 0, null));
    }

    /// <summary>
    /// Delivers an event to one watch of this instance, filtered by its mask. IN_IGNORED ends the
    /// watch; IN_ONESHOT ends it after the first event.
    /// </summary>
    public void Deliver(Watch w, uint mask, uint cookie = 0, string? name = null)
    {
        bool detach = false, signal;
        lock (_gate)
        {
            if (w.Removed || _closed) return;
            int before = _queue.Count;
            if ((mask & InotifyMask.Ignored) != 0)
            {
                RemoveLocked(w, ignored: true);
                detach = true;
            }
            else
            {
                uint events = mask & w.Mask & InotifyMask.AllEvents;
                uint always = mask & InotifyMask.Unmount;
                if (events == 0 && always == 0) return;
                EnqueueLocked(new WatchEvent(w.Wd, events | always | (mask & InotifyMask.IsDir), cookie, name));
                if ((w.Mask & InotifyMask.OneShot) != 0) { RemoveLocked(w, ignored: true); detach = true; }
            }
            signal = before == 0 && _queue.Count > 0;
        }
        if (detach) { _targets.Detach(w); Changed(); }
        if (signal) Signal();
    }

    private void EnqueueLocked(in WatchEvent e)
    {
        if (_queue.Count >= MaxQueuedEvents)
        {
            if (_overflowQueued) return;
            _overflowQueued = true;
            _tail = new WatchEvent(-1, InotifyMask.QOverflow, 0, null);
            _queue.Enqueue(_tail);
            Monitor.PulseAll(_gate);
            return;
        }
        // The kernel merges an event into the queue's last one when wd, mask and name are equal (not IN_IGNORED).
        if (_queue.Count > 0 && (_tail.Mask & InotifyMask.Ignored) == 0 && _tail.Wd == e.Wd && _tail.Mask == e.Mask && _tail.Name == e.Name)
            return;
        _tail = e;
        _queue.Enqueue(e);
        Monitor.PulseAll(_gate);
    }

    private void Signal() => EventsAvailable?.Invoke(this);

    /// <summary>Reads up to <paramref name="max"/> events, waiting up to <paramref name="timeout"/> for the first (Zero: don't wait; Infinite: block).</summary>
    public List<WatchEvent> ReadEvents(TimeSpan timeout, int max = int.MaxValue)
    {
        var result = new List<WatchEvent>();
        lock (_gate)
        {
            if (_queue.Count == 0 && timeout != TimeSpan.Zero && !_closed)
            {
                if (timeout == Timeout.InfiniteTimeSpan) { while (_queue.Count == 0 && !_closed) Monitor.Wait(_gate); }
                else
                {
                    var deadline = DateTime.UtcNow + timeout;
                    while (_queue.Count == 0 && !_closed)
                    {
                        var left = deadline - DateTime.UtcNow;
                        if (left <= TimeSpan.Zero || !Monitor.Wait(_gate, left)) break;
                    }
                }
            }
            while (result.Count < max && _queue.TryDequeue(out var e))
            {
                if (e.Mask == InotifyMask.QOverflow && e.Wd == -1) _overflowQueued = false;
                result.Add(e);
            }
        }
        return result;
    }

    /// <summary>Reads what is queued now, without waiting.</summary>
    public List<WatchEvent> ReadEvents() => ReadEvents(TimeSpan.Zero);

    /// <summary>The filesystem went away: IN_UNMOUNT then IN_IGNORED on every watch, as the kernel does at umount.</summary>
    public void Unmounted()
    {
        foreach (var w in Watches) Deliver(w, InotifyMask.Unmount);
        foreach (var w in Watches) Deliver(w, InotifyMask.Ignored);
    }

    // ---- checkpoint and restore -------------------------------------------------------------

    private const string Magic = "lamina-watches 1";

    /// <summary>Writes wds, masks, paths, the cursor and (unless <paramref name="includeEvents"/> is false) the pending events.</summary>
    public void Checkpoint(TextWriter writer, bool includeEvents = true)
    {
        lock (_gate)
        {
            writer.Write(Magic + "\n");
            writer.Write($"cursor {_wds.Cursor}\nmax-queued {MaxQueuedEvents}\n");
            foreach (var w in _byWd.Values)
                writer.Write($"watch {w.Wd} {w.Mask:x} {Uri.EscapeDataString(w.Path)}\n");
            if (includeEvents)
            foreach (var e in _queue)
                writer.Write($"event {e.Wd} {e.Mask:x} {e.Cookie} {(e.Name is null ? "-" : Uri.EscapeDataString(e.Name))}\n");
        }
    }

    /// <summary>
    /// Rebuilds a checkpoint into this (empty) instance: every watch gets its old wd, the cursor and
    /// the pending events come back. Linear in the number of watches. A path that no longer resolves
    /// cannot be watched again: its wd gets what the kernel gives a watch whose object was deleted,
    /// IN_DELETE_SELF (when the mask asks for it) and IN_IGNORED.
    /// </summary>
    public Errno Restore(TextReader reader, out int restored)
    {
        restored = 0;
        if (reader.ReadLine() != Magic) return Errno.EINVAL;
        uint cursor = 1;
        var events = new List<WatchEvent>();
        var lost = new List<(int Wd, uint Mask, bool Gone)>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            var f = line.Split(' ');
            switch (f[0])
            {
                case "cursor": cursor = uint.Parse(f[1], CultureInfo.InvariantCulture); break;
                case "max-queued": break;
                case "watch" when f.Length == 4:
                {
                    int wd = int.Parse(f[1], CultureInfo.InvariantCulture);
                    uint mask = uint.Parse(f[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    string path = f[3].Contains('%') ? Uri.UnescapeDataString(f[3]) : f[3];
                    var e = _targets.Resolve(path, followLast: false, out var target);
                    if (e != Errno.None) { lost.Add((wd, mask, e is Errno.ENOENT or Errno.ENOTDIR)); break; }
                    Watch w;
                    lock (_gate)
                    {
                        if (_byTarget.ContainsKey(target.Key) || !_wds.Claim(wd)) { _targets.Unpin(target.Key); lost.Add((wd, mask, false)); break; }
                        w = new Watch(this, wd, mask, target);
                        _byWd[wd] = w;
                        _byTarget[target.Key] = w;
                    }
                    _targets.Attach(w);
                    restored++;
                    break;
                }
                case "event" when f.Length == 5:
                    events.Add(new WatchEvent(int.Parse(f[1], CultureInfo.InvariantCulture),
                        uint.Parse(f[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                        uint.Parse(f[3], CultureInfo.InvariantCulture), f[4] == "-" ? null : Uri.UnescapeDataString(f[4])));
                    break;
                default: return Errno.EINVAL;
            }
        }
        lock (_gate)
        {
            _wds.Cursor = cursor;
            foreach (var e in events) EnqueueLocked(e);
            foreach (var (wd, mask, gone) in lost)
            {
                if (gone && (mask & InotifyMask.DeleteSelf) != 0) EnqueueLocked(new WatchEvent(wd, InotifyMask.DeleteSelf, 0, null));
                EnqueueLocked(new WatchEvent(wd, InotifyMask.Ignored, 0, null));
            }
        }
        if (QueuedEvents > 0) Signal();
        Changed();
        return Errno.None;
    }

    /// <summary>
    /// Events may have been lost (the daemon stopped without saving its queue): queues one
    /// IN_Q_OVERFLOW (wd -1), as the kernel does when its queue is full, so a reader knows to rescan.
    /// </summary>
    public void ReportLostEvents()
    {
        bool signal;
        lock (_gate)
        {
            if (_closed) return;
            int before = _queue.Count;
            if (!_overflowQueued)
            {
                _overflowQueued = true;
                _tail = new WatchEvent(-1, InotifyMask.QOverflow, 0, null);
                _queue.Enqueue(_tail);
                Monitor.PulseAll(_gate);
            }
            signal = before == 0 && _queue.Count > 0;
        }
        if (signal) Signal();
    }

    /// <summary>Closing the instance removes every watch (no events: nobody is left to read them).</summary>
    public void Dispose()
    {
        Watch[] all;
        lock (_gate)
        {
            if (_closed) return;
            _closed = true;
            all = [.. _byWd.Values];
            foreach (var w in all) RemoveLocked(w, ignored: false);
            _queue.Clear();
            Monitor.PulseAll(_gate);
        }
        foreach (var w in all) _targets.Detach(w);
        Closed?.Invoke(this);
    }
}
