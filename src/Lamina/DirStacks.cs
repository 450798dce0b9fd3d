using Lamina.Native;

namespace Lamina;

/// <summary>
/// One union directory's resolved layers, cached by <see cref="DirStacks"/>: an open descriptor and
/// the markers of the directory in every branch that contributes to it.
/// </summary>
/// <remarks>
/// Descriptors stay open while a resolution leases the stack (<see cref="TryAcquire"/>), even after
/// the cache has evicted or replaced it, so a descriptor number is never used after it was closed.
/// </remarks>
internal sealed class DirStack
{
    private readonly SafeFd[] _owned;
    /// <summary>Leases times two, plus one once the stack is dead. Lock-free: it is taken under the cache's gate.</summary>
    private int _state;

    public DirStack(string path, Layer[] layers, SafeFd[] owned, DirStack? parent, long generation)
    {
        Path = path;
        Layers = layers;
        _owned = owned;
        Parent = parent;
        ParentEntries = parent?.Entries ?? 0;
        Generation = generation;
    }

    public string Path { get; }
    /// <summary>
    /// The layers, top first. Handed out as they are, so a layer object never changes once built: a
    /// check that finds new attributes puts a changed copy in its slot (under this object's lock).
    /// </summary>
    public Layer[] Layers { get; }
    /// <summary>The stack the last component was looked up in (null for the root).</summary>
    public DirStack? Parent { get; }
    /// <summary>The parent's <see cref="Entries"/> when this stack was built: any change to the parent's entries since invalidates it.</summary>
    public long ParentEntries { get; }
    public long Generation { get; }
    /// <summary>Counts the changes seen to the entries of any of this directory's layers (their mtime moved).</summary>
    public long Entries;
    /// <summary>When the layers were last checked against the branches (Environment.TickCount64).</summary>
    public long CheckedAt = long.MinValue;
    public LinkedListNode<DirStack>? LruNode;
    /// <summary>Lookups through this stack since its read-only layers were last indexed (or found changed).</summary>
    public int Lookups;
    /// <summary>Names held by this stack's index of its read-only layers.</summary>
    public int IndexedNames;
    public int DescriptorCount => _owned.Length;

    public bool TryAcquire()
    {
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & 1) != 0) return false;
            if (Interlocked.CompareExchange(ref _state, s + 2, s) == s) return true;
        }
    }

    public void Release()
    {
        if (Interlocked.Add(ref _state, -2) == 1) Close();
    }

    /// <summary>Takes the stack out of use; its descriptors close when the last lease ends.</summary>
    public void Kill()
    {
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & 1) != 0) return;
            if (Interlocked.CompareExchange(ref _state, s | 1, s) != s) continue;
            if (s == 0) Close();
            return;
        }
    }

    private void Close()
    {
        foreach (var fd in _owned) fd.Dispose();
    }
}

/// <summary>
/// The directory stack cache: the layers of union directories by union path, so resolving a path
/// costs one lookup per layer for its last component instead of a walk from every branch root.
/// </summary>
/// <remarks>
/// <para>Validity. A stack is rebuilt when the engine changed the shape of the tree itself (mkdir,
/// rmdir, rename, copy-up, marker changes, branch changes: <see cref="Invalidate"/> bumps a
/// generation), or when a check against the branches finds a change made behind the engine's back:
/// a layer directory removed (nlink 0), its markers changed (ctime moved and the markers differ), or
/// an entry added or removed in a layer of the parent (the parent's mtime moved: a new lower
/// directory, a whiteout, a rename out of place). A check is one statx per layer per ancestor.</para>
/// <para>Trust. With <see cref="TrustFor"/> above zero, a stack checked less than that long ago is
/// used without a check, as the kernel trusts its own entry cache for entry_timeout; changes made
/// through the engine are still seen at once. Zero checks on every use.</para>
/// <para>Bounds. The cache holds at most <see cref="MaxDescriptors"/> descriptors and evicts the
/// least recently used stacks beyond that.</para>
/// </remarks>
internal sealed class DirStacks
{
    private readonly UnionFileSystem _fs;
    private readonly object _gate = new();
    private readonly Dictionary<string, DirStack> _byPath = new(StringComparer.Ordinal);
    private readonly LinkedList<DirStack> _lru = new();
    private int _descriptors;
    private int _indexedNames;
    private long _generation;

    public DirStacks(UnionFileSystem fs) => _fs = fs;

    public bool Enabled { get; set; } = true;
    public long TrustFor { get; set; }
    public int MaxDescriptors { get; set; } = 4096;
    /// <summary>Names held in read-only layer indexes across the cache, at most.</summary>
    public int MaxIndexedNames { get; set; } = 1_000_000;
    /// <summary>A stack with this many lookups and at least two read-only layers gets its read-only layers indexed.</summary>
    public int IndexAfterLookups { get; set; } = 8;
    public int Count { get { lock (_gate) return _byPath.Count; } }

    /// <summary>
    /// Takes the stack of <paramref name="path"/> out of the cache: it is built again on its next use, and
    /// so is every stack below it (their parent is no longer valid).
    /// </summary>
    public void Drop(string path)
    {
        DirStack? stack;
        lock (_gate) if (!_byPath.TryGetValue(path, out stack)) return;
        Remove(stack);
    }

    /// <summary>The engine changed the tree's shape: every stack is rebuilt on its next use.</summary>
    public void Invalidate() => Interlocked.Increment(ref _generation);

    /// <summary>
    /// The layers of directory <paramref name="path"/>, as copies leased to <paramref name="res"/>;
    /// ENOENT or ENOTDIR when a component is missing or not a directory.
    /// </summary>
    public Errno Get(string path, Resolution res, out List<Layer> layers)
    {
        layers = [];
        var e = Acquire(path, out var stack);
        if (e != Errno.None) return e;
        res.Lease(stack!);
        lock (stack!)
        {
            if (++stack.Lookups == IndexAfterLookups) IndexReadOnlyLayers(stack);
            layers.AddRange(stack.Layers);
        }
        return Errno.None;
    }

    /// <summary>
    /// Reads the names of a stack's read-only layers once, into one index, so a lookup learns from one
    /// hash probe which of them hold a name: the deep stacks of container images are mostly misses.
    /// Writable layers change through the engine all the time and are always asked directly.
    /// </summary>
    private void IndexReadOnlyLayers(DirStack stack)
    {
        var indexed = new List<int>();
        for (int i = 0; i < stack.Layers.Length; i++)
            if (!stack.Layers[i].Branch.IsWritable && stack.Layers[i].Index is null) indexed.Add(i);
        if (indexed.Count < 2) return;
        var index = new NameIndex(stack.Layers.Length, [.. Enumerable.Range(0, stack.Layers.Length).Except(indexed)]);
        foreach (int position in indexed)
        {
            var layer = stack.Layers[position];
            if (BranchIo.OpenAt(layer.DirFd!.Fd, ".", BranchIo.DirReadFlags, 0, out var fd) != Errno.None) return;
            List<(string Name, byte Type, ulong Ino)> entries;
            using (fd)
                if (BranchIo.ReadDir(fd.Fd, out entries) != Errno.None) return;
            foreach (var entry in entries) index.Add(entry.Name, position);
            if (index.Count > MaxIndexedNames / 4) return;
        }
        // Counted without the gate: a stack's lock is held here, and the gate is never taken inside one.
        if (Interlocked.Add(ref _indexedNames, index.Count) > MaxIndexedNames)
        {
            Interlocked.Add(ref _indexedNames, -index.Count);
            return;
        }
        stack.IndexedNames = index.Count;
        foreach (int position in indexed)
        {
            var layer = stack.Layers[position].Clone();
            layer.Index = index;
            layer.IndexSlot = position;
            stack.Layers[position] = layer;
        }
    }

    /// <summary>A layer's entries changed: the stack's index no longer tells the truth.</summary>
    private void DropIndex(DirStack stack)
    {
        // Decided by the layers, not by the name count: an index of empty layers holds no names and
        // still answers "nowhere" for every one.
        Interlocked.Add(ref _indexedNames, -Interlocked.Exchange(ref stack.IndexedNames, 0));
        stack.Lookups = 0;
        for (int i = 0; i < stack.Layers.Length; i++)
        {
            if (stack.Layers[i].Index is null) continue;
            var plain = stack.Layers[i].Clone();
            plain.Index = null;
            stack.Layers[i] = plain;
        }
    }

    /// <summary>A valid stack for <paramref name="path"/>, leased to the caller, built if needed.</summary>
    private Errno Acquire(string path, out DirStack? stack)
    {
        for (int attempt = 0; ; attempt++)
        {
            DirStack? cached;
            lock (_gate)
            {
                if (_byPath.TryGetValue(path, out cached) && cached.TryAcquire())
                {
                    _lru.Remove(cached.LruNode!);
                    _lru.AddFirst(cached.LruNode!);
                }
                else cached = null;
            }
            if (cached is not null)
            {
                if (IsValid(cached, Environment.TickCount64)) { stack = cached; return Errno.None; }
                Remove(cached);
                cached.Release();
            }
            var e = Build(path, out stack);
            if (e != Errno.None || attempt > 0) return e;
            // A stack built while the engine changed the tree is stale at once: build once more.
            if (stack!.Generation == Volatile.Read(ref _generation)) return e;
            stack.Release();
        }
    }

    private Errno Build(string path, out DirStack? stack)
    {
        stack = null;
        long generation = Volatile.Read(ref _generation);
        DirStack built;
        if (path.Length == 0)
        {
            var e = _fs.RootLayers(out var roots);
            if (e != Errno.None) return e;
            built = new DirStack("", [.. roots], [], null, generation);
        }
        else
        {
            var e = Acquire(UnionPath.Parent(path), out var parent);
            if (e != Errno.None) return e;
            try
            {
                long parentEntries = Interlocked.Read(ref parent!.Entries);
                List<Layer> parents;
                lock (parent) parents = [.. parent.Layers];
                var scratch = new Resolution { Path = path };
                e = _fs.LookupDirectory(scratch, parents, UnionPath.FileName(path), out var found);
                if (e != Errno.None) { scratch.Dispose(); return e; }
                built = new DirStack(path, [.. found], scratch.TakeOwned(), parent, generation);
                // The parent may have seen a change while the lookup ran: then this stack is stale.
                if (parentEntries != built.ParentEntries) Interlocked.Decrement(ref built.Entries);
            }
            finally { parent!.Release(); }
        }
        built.CheckedAt = Environment.TickCount64;
        built.TryAcquire();
        Insert(built);
        stack = built;
        return Errno.None;
    }

    private void Insert(DirStack stack)
    {
        List<DirStack> evicted = [];
        lock (_gate)
        {
            if (_byPath.Remove(stack.Path, out var old)) Unlink(old, evicted);
            _byPath[stack.Path] = stack;
            stack.LruNode = _lru.AddFirst(stack);
            _descriptors += stack.DescriptorCount;
            while (_descriptors > MaxDescriptors && _lru.Last is { } last && last.Value != stack)
            {
                _byPath.Remove(last.Value.Path);
                Unlink(last.Value, evicted);
            }
        }
        foreach (var s in evicted) s.Kill();
    }

    private void Remove(DirStack stack)
    {
        List<DirStack> evicted = [];
        lock (_gate)
        {
            if (_byPath.TryGetValue(stack.Path, out var current) && current == stack)
            {
                _byPath.Remove(stack.Path);
                Unlink(stack, evicted);
            }
        }
        foreach (var s in evicted) s.Kill();
    }

    private void Unlink(DirStack stack, List<DirStack> evicted)
    {
        if (stack.LruNode is { List: not null } node) _lru.Remove(node);
        _descriptors -= stack.DescriptorCount;
        Interlocked.Add(ref _indexedNames, -Interlocked.Exchange(ref stack.IndexedNames, 0));
        evicted.Add(stack);
    }

    /// <summary>Checks a stack and its ancestors; the caller holds a lease on <paramref name="stack"/>.</summary>
    private bool IsValid(DirStack stack, long now)
    {
        if (stack.Generation != Volatile.Read(ref _generation)) return false;
        if (stack.Parent is { } parent)
        {
            if (!parent.TryAcquire()) return false;
            try
            {
                if (!IsValid(parent, now) || Interlocked.Read(ref parent.Entries) != stack.ParentEntries) return false;
            }
            finally { parent.Release(); }
        }
        lock (stack)
        {
            if (TrustFor > 0 && now - stack.CheckedAt < TrustFor) return true;
            for (int i = 0; i < stack.Layers.Length; i++)
            {
                var layer = stack.Layers[i];
                if (Sys.FStatx(layer.DirFd!.Fd, out var st) != 0 || st.NLink == 0) return false;
                // A layer's St is its state when last seen: the stamps to compare with.
                var (ctime, mtime) = (layer.St.CTime, layer.St.MTime);
                if (Same(st.CTime, ctime) && Same(st.MTime, mtime)) continue;
                if (!Same(st.CTime, ctime))
                {
                    // ctime moves with every entry change too; only a change of markers matters here.
                    var probe = layer.Clone();
                    _fs.RereadDirMarkers(probe, isRoot: stack.Parent is null);
                    if (!probe.SameMarkers(layer)) return false;
                }
                if (!Same(st.MTime, mtime))
                {
                    Interlocked.Increment(ref stack.Entries);
                    if (layer.Index is not null) DropIndex(stack);
                }
                var updated = stack.Layers[i].Clone();
                updated.St = st;
                stack.Layers[i] = updated;
            }
            stack.CheckedAt = now;
            return true;
        }
    }

    private static bool Same(StatxTimestamp a, StatxTimestamp b) => a.Sec == b.Sec && a.Nsec == b.Nsec;
}

/// <summary>
/// The names of a directory's read-only layers: for each name, the positions (in the stack, top
/// first) of the layers that hold it, so a lookup visits only those and the unindexed layers.
/// </summary>
internal sealed class NameIndex(int layerCount, int[] unindexed)
{
    private readonly Dictionary<string, int[]> _positions = new(StringComparer.Ordinal);
    private int LayerCount { get; } = layerCount;

    public int Count => _positions.Count;

    /// <summary>The index shared by the layers of <paramref name="layers"/>, if they are an indexed stack as it was built.</summary>
    public static NameIndex? Of(List<Layer> layers)
    {
        foreach (var l in layers)
        {
            if (l.Index is { } index) return index.LayerCount == layers.Count ? index : null;
            if (!l.Branch.IsWritable) return null; // the first read-only layer carries the index, if any
        }
        return null;
    }

    /// <summary>Adds a name for a layer position; positions are added in increasing order.</summary>
    public void Add(string name, int position)
    {
        ref var positions = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_positions, name, out _);
        positions = positions is null ? [position] : [.. positions, position];
    }

    public int[]? SlotsOf(string name) => _positions.GetValueOrDefault(name);

    public static bool Has(int[]? positions, int position) => positions is not null && Array.BinarySearch(positions, position) >= 0;

    /// <summary>The first position at or after <paramref name="from"/> worth visiting (past the end when none).</summary>
    public int NextCandidate(int from, int[]? a, int[]? b) =>
        Math.Min(FirstAtOrAfter(unindexed, from), Math.Min(FirstAtOrAfter(a, from), FirstAtOrAfter(b, from)));

    private static int FirstAtOrAfter(int[]? sorted, int from)
    {
        if (sorted is null) return int.MaxValue;
        int i = Array.BinarySearch(sorted, from);
        if (i < 0) i = ~i;
        return i < sorted.Length ? sorted[i] : int.MaxValue;
    }
}
