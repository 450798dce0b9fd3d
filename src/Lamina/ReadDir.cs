using Lamina.Native;

namespace Lamina;

/// <summary>One entry of a merged directory listing.</summary>
public readonly record struct DirEntry(string Name, byte Type, ulong Ino);

/// <summary>
/// An open directory: a snapshot of the merged listing taken when it is first read (and again on
/// rewind to offset 0), so cookies (offset = index + 1) stay valid while the directory changes,
/// and telldir/seekdir work.
/// </summary>
public sealed class UnionDirHandle : IDisposable
{
    internal UnionDirHandle(UnionNode node) => Node = node;

    public UnionNode Node { get; }

    /// <summary>The snapshot, "." and ".." first; null until the directory is first read.</summary>
    public IReadOnlyList<DirEntry>? Entries { get; internal set; }

    public void Dispose() { }
}

public sealed partial class UnionFileSystem
{
    /// <summary>
    /// Opens a directory. Its merged listing is read when the directory is first read, not here:
    /// the first read always starts at offset 0, which takes a fresh snapshot anyway.
    /// </summary>
    public Errno OpenDir(UnionNode node, Caller caller, out UnionDirHandle? handle)
    {
        UnionDirHandle? h = null;
        var e = Guard(() =>
        {
            using (var scope = Read())
            {
                var re = ResolveNode(node, out var res);
                if (re != Errno.None) return re;
                using (res)
                    if (!res.Top.IsDir) return Errno.ENOTDIR;
            }
            h = new UnionDirHandle(node);
            NotifyOpened(node); // observers
            return Errno.None;
        });
        handle = h;
        return e;
    }

    private Errno Snapshot(UnionNode node, out List<DirEntry> entries)
    {
        entries = [];
        using var scope = Read();
        var e = ResolveNode(node, out var res);
        if (e != Errno.None) return e;
        using (res)
        {
            if (!res.Top.IsDir) return Errno.ENOTDIR;
            e = ReadMerged(res, out var merged);
            if (e != Errno.None) return e;
            ulong parentIno = node.Parent?.Ino ?? node.Ino;
            entries = new List<DirEntry>(merged.Count + 2)
            {
                new(".", Sys.DT_DIR, node.Ino),
                new("..", Sys.DT_DIR, parentIno),
            };
            entries.AddRange(merged);
            return Errno.None;
        }
    }

    /// <summary>
    /// Emits entries from cookie <paramref name="offset"/> on. <paramref name="emit"/> gets each entry and the
    /// cookie of the next one, and returns false to stop (reply buffer full). Offset 0 refreshes the snapshot,
    /// and the first read takes one at any offset.
    /// </summary>
    public Errno ReadDir(UnionDirHandle handle, long offset, Func<DirEntry, long, bool> emit)
    {
        if (offset == 0 || handle.Entries is null)
        {
            var e = Guard(() =>
            {
                var se = Snapshot(handle.Node, out var fresh);
                if (se == Errno.None) handle.Entries = fresh;
                return se;
            });
            if (e != Errno.None) return e;
            if (offset == 0) NotifyAccessed(handle.Node); // observers: getdents
        }
        var entries = handle.Entries!;
        for (long i = Math.Max(0, offset); i < entries.Count; i++)
        {
            if (!emit(entries[(int)i], i + 1)) break;
        }
        return Errno.None;
    }

    /// <summary>For READDIRPLUS: the node (lookup count + 1) and attributes of one listed entry.</summary>
    public Errno LookupEntry(UnionDirHandle handle, DirEntry entry, out UnionNode? node, out Statx st)
    {
        if (entry.Name is "." or "..")
        {
            var n = entry.Name == "." ? handle.Node : handle.Node.Parent ?? handle.Node;
            _nodes.AddRef(n, 1);
            node = n;
            return GetAttr(n, out st);
        }
        UnionNode? found = null;
        Statx s = default;
        var e = Guard(() =>
        {
            using var scope = Read();
            return LookupLocked(handle.Node, entry.Name, 1, out found, out s);
        });
        node = found;
        st = s;
        return e;
    }

    public Errno ReleaseDir(UnionDirHandle handle)
    {
        handle.Dispose();
        NotifyClosed(handle.Node, 0); // observers
        return Errno.None;
    }

    /// <summary>Merges the listings of a directory's layers: upper names first, whiteouts and opaque cuts applied.</summary>
    internal Errno ReadMerged(Resolution res, out List<DirEntry> entries)
    {
        entries = [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        // Directories from a writable layer without a recorded origin take the inode of the next
        // layer's directory of the same name (see ComputeIno); resolved once that layer is read.
        var pendingDirs = new Dictionary<string, (int Entry, Layer Layer)>(StringComparer.Ordinal);
        var settledDirs = new List<(string Name, int Entry, Layer Layer, ulong? LowerIno)>();
        void Settle(string name, ulong? lowerIno)
        {
            if (!pendingDirs.Remove(name, out var p)) return;
            settledDirs.Add((name, p.Entry, p.Layer, lowerIno));
        }
        foreach (var layer in res.Layers)
        {
            if (!layer.IsDir) break;
            var e = BranchIo.OpenAt(layer.ParentFd, layer.Name, BranchIo.DirReadFlags, 0, out var dirFd);
            if (e != Errno.None) return e;
            using (dirFd)
            {
                e = BranchIo.ReadDir(dirFd.Fd, out var raw);
                if (e != Errno.None) return e;
                bool impure = layer.Impure;
                bool atRoot = layer.RelPath.Length == 0;
                var hiddenHere = new List<string>();
                foreach (var (name, rawType, rawIno) in raw)
                {
                    if (Markers.IsMarkerName(name))
                    {
                        if (layer.Branch.AufsFormat && name != Markers.AufsOpaque && name != Markers.AufsBranchMarker)
                        {
                            string hidden = name[Markers.AufsWhiteoutPrefix.Length..];
                            Settle(hidden, null);
                            if (!seen.Contains(hidden)) hiddenHere.Add(hidden);
                        }
                        continue;
                    }
                    if (atRoot && name == layer.Branch.HiddenRootName) continue;
                    bool already = seen.Contains(name);
                    if (already && !pendingDirs.ContainsKey(name)) continue;
                    byte type = rawType;
                    Statx st = default;
                    bool statted = false;
                    if (type is Sys.DT_CHR or Sys.DT_UNKNOWN || (type == Sys.DT_REG && layer.XWhiteouts))
                    {
                        if (BranchIo.Stat(dirFd.Fd, name, out st) != Errno.None) continue;
                        statted = true;
                        type = ModeBits.DirentType(st.Mode);
                        if (IsWhiteout(layer, name, st))
                        {
                            Settle(name, null);
                            if (!already) hiddenHere.Add(name);
                            continue;
                        }
                    }
                    ulong ino = Pack(layer.Branch.FsIndex, statted ? st.Ino : rawIno);
                    if (already)
                    {
                        Settle(name, type == Sys.DT_DIR ? ino : null);
                        continue;
                    }
                    bool hasOrigin = false;
                    if (impure)
                    {
                        var entryLayer = new Layer { Branch = layer.Branch, ParentFd = dirFd.Fd, Name = name, RelPath = "", MayHaveOrigin = true };
                        ulong origin = ReadOrigin(entryLayer);
                        if (origin != 0) { ino = origin; hasOrigin = true; }
                    }
                    seen.Add(name);
                    if (type == Sys.DT_DIR && !hasOrigin && layer.Branch.IsWritable) pendingDirs[name] = (entries.Count, layer);
                    entries.Add(new DirEntry(name, type, ino));
                }
                foreach (var h in hiddenHere) seen.Add(h);
            }
            if (layer.Opaque) break;
        }
        foreach (var (name, pending) in pendingDirs) settledDirs.Add((name, pending.Entry, pending.Layer, null));
        // Upper directories without a recorded origin: an opaque one keeps its own inode, a redirected
        // one (renamed by kernel overlayfs) takes its target's, any other merges with the lower of its name.
        foreach (var (name, index, layer, lowerIno) in settledDirs)
        {
            if (BranchIo.OpenAt(layer.DirFd!.Fd, name, BranchIo.DirPathFlags, 0, out var fd) != Errno.None) continue;
            using (fd)
            {
                if (BranchIo.GetXattrString(fd.Fd, _markers.Opaque) == "y" || (layer.Branch.AufsFormat && BranchIo.Stat(fd.Fd, Markers.AufsOpaque, out _) == Errno.None)) continue;
                if (FollowRedirects && BranchIo.GetXattr(fd.Fd, _markers.Redirect) is not null)
                {
                    if (Resolve(UnionPath.Join(res.Path, name), out var sub) != Errno.None) continue;
                    using (sub) if (sub.Exists) entries[index] = entries[index] with { Ino = ComputeIno(sub) };
                    continue;
                }
                if (lowerIno is { } li) entries[index] = entries[index] with { Ino = li };
            }
        }
        return Errno.None;
    }
}
