using Lamina.Native;

namespace Lamina.Watches;

/// <summary>
/// The union's watch hub: every watch of every instance, indexed by union node, so copy-up and
/// renames change nothing for it. The engine reports each operation here (see
/// UnionFileSystem.Watches.cs); <see cref="BranchWatcher"/> reports changes made directly in branches.
/// A watch pins its node (one lookup) for as long as it exists.
/// </summary>
public sealed class UnionWatches : IWatchTargets
{
    private readonly UnionFileSystem _fs;
    private readonly object _gate = new();
    private readonly Dictionary<UnionNode, List<Watch>> _byNode = new(ReferenceEqualityComparer.Instance);
    private readonly List<WatchInstance> _instances = [];
    private int _recursive;
    private int _cookie;
    private readonly Dictionary<UnionNode, UnionNode> _followed = new(ReferenceEqualityComparer.Instance); // watched node → directory the branch watcher follows

    internal UnionWatches(UnionFileSystem fs) => _fs = fs;

    public UnionFileSystem FileSystem => _fs;

    /// <summary>A new inotify-like instance over this union.</summary>
    public WatchInstance CreateInstance(int maxQueuedEvents = WatchInstance.DefaultMaxQueuedEvents)
    {
        var i = new WatchInstance(this, maxQueuedEvents);
        i.Closed += Forget;
        lock (_gate) _instances.Add(i);
        return i;
    }

    /// <summary>A FileSystemWatcher-like watcher on a union path.</summary>
    public UnionWatcher CreateWatcher(string path, bool includeSubdirectories = false, uint mask = UnionWatcher.DefaultMask) =>
        new(this, path, includeSubdirectories, mask);

    /// <summary>A directory to follow (true) or one follow fewer (false): watched directories and the directories of watched files, counted.</summary>
    internal event Action<UnionNode, bool>? DirectoryWatched;

    /// <summary>Directories to follow now, once per watched node.</summary>
    internal List<UnionNode> WatchedDirectories()
    {
        lock (_gate) return [.. _followed.Values];
    }

    internal bool HasWatches { get { lock (_gate) return _byNode.Count > 0; } }

    /// <summary>A recursive watch on a directory began (true) or ended (false): the branch watcher follows its whole subtree.</summary>
    internal event Action<UnionNode, bool>? RecursiveWatched;

    /// <summary>Directories that carry a recursive watch now.</summary>
    internal List<UnionNode> RecursiveRoots()
    {
        lock (_gate) return [.. _byNode.Where(kv => kv.Key.IsDirectory && kv.Value.Any(w => w.IsRecursive)).Select(kv => kv.Key)];
    }

    /// <summary>Whether a watch on <paramref name="node"/>, or a recursive one above it, asks for any of <paramref name="mask"/>.</summary>
    internal bool Wants(UnionNode node, uint mask)
    {
        lock (_gate)
        {
            if (_byNode.TryGetValue(node, out var own) && own.Any(w => (w.Mask & mask) != 0)) return true;
            if (_recursive == 0) return false;
            for (UnionNode? a = node.Parent; a is not null; a = a.Parent)
                if (_byNode.TryGetValue(a, out var l) && l.Any(w => w.IsRecursive && (w.Mask & mask) != 0)) return true;
            return false;
        }
    }

    /// <summary>Whether <paramref name="dir"/> or a directory above it carries a recursive watch.</summary>
    internal bool IsUnderRecursiveWatch(UnionNode dir)
    {
        lock (_gate)
        {
            if (_recursive == 0) return false;
            for (UnionNode? a = dir; a is not null; a = a.Parent)
                if (_byNode.TryGetValue(a, out var l) && l.Any(w => w.IsRecursive)) return true;
            return false;
        }
    }

    // ---- IWatchTargets ----------------------------------------------------------------------

    public Errno Resolve(string path, bool followLast, out WatchTarget target)
    {
        target = default;
        var node = _fs.Root;
        _fs.PinNode(node);
        var parts = new Queue<string>(UnionPath.Normalize(path).Split('/', StringSplitOptions.RemoveEmptyEntries));
        int links = 0;
        while (parts.TryDequeue(out var comp))
        {
            var e = _fs.Lookup(node, comp, out var child);
            if (e != Errno.None) { _fs.Forget(node, 1); return e; }
            bool last = parts.Count == 0;
            if (child!.FileType == ModeBits.S_IFLNK && (!last || followLast))
            {
                // Relative targets resolve from the link's directory; absolute ones from the union root.
                if (++links > 40) { _fs.Forget(child, 1); _fs.Forget(node, 1); return Errno.ELOOP; }
                e = _fs.ReadLink(child, out var to);
                _fs.Forget(child, 1);
                if (e != Errno.None) { _fs.Forget(node, 1); return e; }
                var rest = parts.ToList();
                parts = new Queue<string>(to.Split('/', StringSplitOptions.RemoveEmptyEntries).Concat(rest));
                if (to.StartsWith('/')) { _fs.Forget(node, 1); node = _fs.Root; _fs.PinNode(node); }
                continue;
            }
            if (!last && !child.IsDirectory) { _fs.Forget(child, 1); _fs.Forget(node, 1); return Errno.ENOTDIR; }
            _fs.Forget(node, 1);
            node = child;
        }
        target = new WatchTarget(node, _fs.PathOfNode(node) ?? UnionPath.Normalize(path), node.IsDirectory);
        return Errno.None;
    }

    public void Attach(Watch watch)
    {
        var node = (UnionNode)watch.Target;
        UnionNode? followed = null;
        lock (_gate)
        {
            if (!_byNode.TryGetValue(node, out var list)) _byNode[node] = list = [];
            if (list.Count == 0)
            {
                // The branch watcher follows a watched directory, or the directory of a watched file.
                followed = node.IsDirectory ? node : node.Parent;
                if (followed is not null) _followed[node] = followed;
            }
            list.Add(watch);
            if (watch.IsRecursive) _recursive++;
        }
        if (followed is not null) DirectoryWatched?.Invoke(followed, true);
        if (watch.IsRecursive && node.IsDirectory) RecursiveWatched?.Invoke(node, true);
    }

    public void Detach(Watch watch)
    {
        var node = (UnionNode)watch.Target;
        UnionNode? unfollowed = null;
        lock (_gate)
        {
            if (_byNode.TryGetValue(node, out var list) && list.Remove(watch))
            {
                if (watch.IsRecursive) _recursive--;
                if (list.Count == 0)
                {
                    _byNode.Remove(node);
                    _followed.Remove(node, out unfollowed);
                }
            }
            else return;
        }
        if (watch.IsRecursive && node.IsDirectory) RecursiveWatched?.Invoke(node, false);
        if (unfollowed is not null) DirectoryWatched?.Invoke(unfollowed, false);
        _fs.Forget(node, 1);
    }

    public void Unpin(object key) => _fs.Forget((UnionNode)key, 1);

    // ---- delivery ---------------------------------------------------------------------------

    /// <summary>A fresh cookie pairing IN_MOVED_FROM with IN_MOVED_TO.</summary>
    public uint NextCookie() => (uint)Interlocked.Increment(ref _cookie);

    private List<(Watch W, string? Name)> Collect(UnionNode? self, uint selfMask, UnionNode? parent, string? name, bool childDetached)
    {
        var targets = new List<(Watch, string?)>();
        lock (_gate)
        {
            if (_byNode.Count == 0) return targets;
            if (self is not null && selfMask != 0 && _byNode.TryGetValue(self, out var own))
                foreach (var w in own) targets.Add((w, null));
            if (parent is null || name is null) return targets;
            if (_byNode.TryGetValue(parent, out var dir))
                foreach (var w in dir)
                    if (!(childDetached && (w.Mask & InotifyMask.ExclUnlink) != 0)) targets.Add((w, name));
            if (_recursive == 0) return targets;
            string rel = name;
            for (UnionNode? a = parent.Parent, below = parent; a is not null && below is not null; below = a, a = a.Parent)
            {
                rel = below.Name + "/" + rel;
                if (_byNode.TryGetValue(a, out var up))
                    foreach (var w in up)
                        if (w.IsRecursive) targets.Add((w, rel));
            }
        }
        return targets;
    }

    /// <summary>An event on an object (IN_MODIFY, IN_ATTRIB, IN_OPEN, ...): its own watches, and its directory's with its name.</summary>
    /// <param name="selfOnly">Only the object's own watches (the kernel's inode-only events, e.g. a link count change).</param>
    public void Object(UnionNode node, uint mask, bool selfOnly = false)
    {
        uint isDir = node.IsDirectory ? InotifyMask.IsDir : 0;
        var parent = node.Parent;
        uint childMask = selfOnly ? 0 : mask & InotifyMask.OnChild;
        var targets = Collect(node, mask, childMask != 0 ? parent : null, node.Name, node.IsDetached);
        foreach (var (w, n) in targets)
            w.Instance.Deliver(w, (n is null ? mask : childMask) | isDir, 0, n);
    }

    /// <summary>An event about an entry of a directory (IN_CREATE, IN_DELETE, IN_MOVED_FROM/TO).</summary>
    public void Entry(UnionNode parent, string name, bool isDir, uint mask, uint cookie = 0)
    {
        var targets = Collect(null, 0, parent, name, false);
        foreach (var (w, n) in targets)
            w.Instance.Deliver(w, mask | (isDir ? InotifyMask.IsDir : 0), cookie, n);
    }

    /// <summary>The object is gone: IN_DELETE_SELF, then IN_IGNORED ends its watches.</summary>
    public void Gone(UnionNode node)
    {
        List<Watch> own;
        lock (_gate) own = _byNode.TryGetValue(node, out var l) ? [.. l] : [];
        foreach (var w in own)
        {
            w.Instance.Deliver(w, InotifyMask.DeleteSelf | (node.IsDirectory ? InotifyMask.IsDir : 0));
            w.Instance.Deliver(w, InotifyMask.Ignored);
        }
    }

    /// <summary>An object was renamed: IN_MOVED_FROM and IN_MOVED_TO with one cookie, then IN_MOVE_SELF.</summary>
    public void Moved(UnionNode oldParent, string oldName, UnionNode newParent, string newName, UnionNode? node, bool isDir)
    {
        if (!HasWatches) return;
        uint cookie = NextCookie();
        Entry(oldParent, oldName, isDir, InotifyMask.MovedFrom, cookie);
        Entry(newParent, newName, isDir, InotifyMask.MovedTo, cookie);
        if (node is not null) Object(node, InotifyMask.MoveSelf);
    }

    /// <summary>The union is going away: IN_UNMOUNT and IN_IGNORED for every watch.</summary>
    public void Unmount()
    {
        WatchInstance[] all;
        lock (_gate) all = [.. _instances];
        foreach (var i in all) i.Unmounted();
    }

    internal void Forget(WatchInstance instance) { lock (_gate) _instances.Remove(instance); }
}
