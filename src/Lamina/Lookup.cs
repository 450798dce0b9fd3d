using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>One branch's contribution to a union object: where it is and what it is.</summary>
internal sealed class Layer
{
    public required Branch Branch { get; init; }
    /// <summary>Directory descriptor (O_PATH or readable) holding <see cref="Name"/> in this branch.</summary>
    public required int ParentFd { get; init; }
    public required string Name { get; init; }
    /// <summary>Path from the branch root ("" for the root itself).</summary>
    public required string RelPath { get; init; }
    public Statx St;
    /// <summary>O_PATH descriptor of the directory itself (directories only).</summary>
    public SafeFd? DirFd { get; set; }
    public bool Opaque { get; set; }
    /// <summary>Entries of this directory may be xattr whiteouts (parent marker present).</summary>
    public bool XWhiteouts { get; set; }
    public string? Redirect { get; set; }
    /// <summary>The hard-link index entry standing in for a lower file already copied up under another name.</summary>
    public bool IsIndex { get; init; }
    /// <summary><see cref="DirFd"/> is an O_PATH descriptor (xattrs only through /proc).</summary>
    public bool DirFdIsPath { get; set; }
    /// <summary>This directory holds entries that carry a Lamina origin (so only then is it read for a non-directory).</summary>
    public bool Impure { get; set; }
    /// <summary>The parent layer is impure (or this is an index entry): the object may carry an origin.</summary>
    public bool MayHaveOrigin { get; init; }
    /// <summary>Origin read with the directory's markers (0 = none); valid when <see cref="OriginKnown"/>.</summary>
    public ulong Origin { get; set; }
    public bool OriginKnown { get; set; }
    /// <summary>A metadata-only copy (overlayfs metacopy): its data is in the <see cref="IsData"/> layer below.</summary>
    public bool IsMetacopy { get; set; }
    /// <summary>The lower file holding the data of a metacopy top.</summary>
    public bool IsData { get; init; }
    /// <summary>
    /// The names of this read-only directory layer, when the directory stack cache indexed it (shared
    /// by every indexed layer of the stack): a name the index does not give this layer is not there.
    /// </summary>
    public NameIndex? Index { get; set; }
    /// <summary>This layer's slot in <see cref="Index"/>.</summary>
    public int IndexSlot { get; set; }

    public bool IsDir => St.IsDirectory;
    /// <summary>The object can be changed where it is (a writable branch, not an index stand-in).</summary>
    public bool InPlaceWritable => Branch.IsWritable && !IsIndex;

    /// <summary>A copy sharing the descriptors: cached layers are handed out as copies so callers may change them.</summary>
    public Layer Clone() => (Layer)MemberwiseClone();

    /// <summary>True when both carry the same directory markers.</summary>
    public bool SameMarkers(Layer other) =>
        Opaque == other.Opaque && XWhiteouts == other.XWhiteouts && Redirect == other.Redirect
        && Impure == other.Impure && Origin == other.Origin;
}

/// <summary>
/// The result of resolving a union path top-down (namei): the layers of the object, the layers of its
/// parent directory, and where a whiteout hides the name. Owns the descriptors it opened.
/// </summary>
internal sealed class Resolution : IDisposable
{
    private readonly List<SafeFd> _owned = [];
    private readonly List<DirStack> _leased = [];

    public required string Path { get; init; }
    public string Name => Path.Length == 0 ? "" : Path[(Path.LastIndexOf('/') + 1)..];
    public string ParentPath => UnionPath.Parent(Path);
    public List<Layer> ParentLayers { get; set; } = [];
    public List<Layer> Layers { get; } = [];
    /// <summary>Index of the branch holding a whiteout for this name (everything below is hidden), or -1.</summary>
    public int WhiteoutBranch { get; set; } = -1;

    public bool Exists => Layers.Count > 0;
    public Layer Top => Layers[0];
    /// <summary>Where the top's data is: the lower file of a metacopy top, else the top itself.</summary>
    public Layer? DataLayer { get; set; }
    public Layer Data => DataLayer ?? Top;

    public SafeFd Own(SafeFd fd) { _owned.Add(fd); return fd; }

    /// <summary>Hands the descriptors opened so far to a longer-lived owner (the directory stack cache).</summary>
    public SafeFd[] TakeOwned()
    {
        var fds = _owned.ToArray();
        _owned.Clear();
        return fds;
    }

    /// <summary>Keeps a cached stack's descriptors open until this resolution is disposed.</summary>
    public void Lease(DirStack stack) => _leased.Add(stack);

    public Layer? ParentLayerIn(Branch b) => ParentLayers.FirstOrDefault(l => l.Branch == b);

    public void Dispose()
    {
        foreach (var fd in _owned) fd.Dispose();
        _owned.Clear();
        foreach (var s in _leased) s.Release();
        _leased.Clear();
    }
}

/// <summary>Union paths: "" is the root, components joined by '/', no leading slash.</summary>
public static class UnionPath
{
    public static string Normalize(string path)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
        return string.Join('/', parts);
    }

    public static string Join(string dir, string name) => dir.Length == 0 ? name : dir + "/" + name;

    public static string Parent(string path)
    {
        int i = path.LastIndexOf('/');
        return i < 0 ? "" : path[..i];
    }

    public static string FileName(string path) => path[(path.LastIndexOf('/') + 1)..];

    /// <summary>True when <paramref name="path"/> is <paramref name="ancestor"/> or below it.</summary>
    public static bool IsWithin(string path, string ancestor) =>
        ancestor.Length == 0 || path == ancestor || path.StartsWith(ancestor + "/", StringComparison.Ordinal);

    public static Native.Errno ValidateName(string name)
    {
        if (name.Length == 0 || name == "." || name == ".." || name.Contains('/') || name.Contains('\0')) return Native.Errno.EINVAL;
        if (System.Text.Encoding.UTF8.GetByteCount(name) > 255) return Native.Errno.ENAMETOOLONG;
        return Native.Errno.None;
    }
}

public sealed partial class UnionFileSystem
{
    /// <summary>
    /// Resolves a union path (namei): the layers of its parent directory come from the directory
    /// stack cache (<see cref="DirStacks"/>), which revalidates them against the branches, and the
    /// last component is looked up afresh in every layer. Never follows a symlink inside a branch.
    /// </summary>
    internal Errno Resolve(string path, out Resolution res, Func<Branch, bool>? branchFilter = null)
    {
        if (branchFilter is not null || !_dirStacks.Enabled) return ResolveFromRoots(path, out res, branchFilter);
        res = new Resolution { Path = path };
        if (path.Length == 0)
        {
            var re = _dirStacks.Get("", res, out var root);
            if (re != Errno.None) { res.Dispose(); return re; }
            res.Layers.AddRange(root);
            return Errno.None;
        }
        var e = _dirStacks.Get(UnionPath.Parent(path), res, out var parents);
        if (e != Errno.None) { res.Dispose(); return e; }
        return ResolveLast(res, parents, UnionPath.FileName(path));
    }

    /// <summary>
    /// Resolves a union path from the branch roots, one component at a time, with nothing cached
    /// (optionally over a subset of the branches).
    /// </summary>
    internal Errno ResolveFromRoots(string path, out Resolution res, Func<Branch, bool>? branchFilter = null)
    {
        res = new Resolution { Path = path };
        var re = RootLayers(out var current, branchFilter);
        if (re != Errno.None) { res.Dispose(); return re; }
        if (path.Length == 0)
        {
            res.Layers.AddRange(current);
            return Errno.None;
        }
        var components = path.Split('/');
        for (int i = 0; i < components.Length - 1; i++)
        {
            var e = LookupDirectory(res, current, components[i], out var found);
            if (e != Errno.None) { res.Dispose(); return e; }
            current = found;
        }
        return ResolveLast(res, current, components[^1]);
    }

    /// <summary>The root layers: every branch root, whose markers never cut or redirect the roots below.</summary>
    internal Errno RootLayers(out List<Layer> current, Func<Branch, bool>? branchFilter = null)
    {
        current = [];
        foreach (var b in _branches.Branches)
        {
            if (branchFilter is not null && !branchFilter(b)) continue;
            var layer = new Layer { Branch = b, ParentFd = b.RootFd.Fd, Name = ".", RelPath = "", DirFd = new SafeFd(b.RootFd.Fd, ownsHandle: false) };
            // A branch whose filesystem is gone (ENOTCONN, EIO): say so, rather than answering
            // as if the branch held nothing (ENOENT for its files, a listing without them).
            if (Sys.FStatx(b.RootFd.Fd, out layer.St) != 0) return Sys.LastErrno;
            ReadRootMarkers(layer);
            current.Add(layer);
        }
        return Errno.None;
    }

    internal void ReadRootMarkers(Layer layer)
    {
        ReadDirMarkers(layer);
        layer.Opaque = false; // the root never cuts lower roots
        layer.Redirect = null;
    }

    /// <summary>Looks up an intermediate component: it must exist and be a directory.</summary>
    internal Errno LookupDirectory(Resolution res, List<Layer> parents, string name, out List<Layer> found)
    {
        found = [];
        var e = LookupInLayers(res, parents, name, found, out _);
        if (e != Errno.None) return e;
        if (found.Count == 0) return Errno.ENOENT;
        if (!found[0].IsDir) return Errno.ENOTDIR;
        return Errno.None;
    }

    private Errno ResolveLast(Resolution res, List<Layer> parents, string name)
    {
        var found = new List<Layer>();
        var e = LookupInLayers(res, parents, name, found, out int whiteoutBranch);
        if (e != Errno.None) { res.Dispose(); return e; }
        res.ParentLayers = parents;
        res.Layers.AddRange(found);
        res.WhiteoutBranch = whiteoutBranch;
        if (found.Count == 1 && !found[0].IsDir) SubstituteIndexEntry(res);
        res.DataLayer = found.FirstOrDefault(l => l.IsData);
        return Errno.None;
    }

    /// <summary>Looks <paramref name="name"/> up in each layer of a merged directory, top to bottom.</summary>
    private Errno LookupInLayers(Resolution res, List<Layer> parents, string name, List<Layer> found, out int whiteoutBranch)
    {
        whiteoutBranch = -1;
        if (Markers.IsMarkerName(name)) return Errno.None;
        string lookupName = name;
        // An indexed stack visits only its unindexed layers and the layers that hold the name.
        var index = NameIndex.Of(parents);
        int[]? slots = null, whiteoutSlots = null;
        string? slotsFor = null;
        for (int i = 0; ; i++)
        {
            if (index is not null)
            {
                if (!ReferenceEquals(slotsFor, lookupName))
                {
                    slotsFor = lookupName;
                    slots = index.SlotsOf(lookupName);
                    whiteoutSlots = index.SlotsOf(Markers.AufsWhiteoutPrefix + lookupName);
                }
                i = index.NextCandidate(i, slots, whiteoutSlots);
            }
            if (i >= parents.Count) break;
            var pl = parents[i];
            if (pl.RelPath.Length == 0 && pl.Branch.HiddenRootName == lookupName) continue;
            int dirFd = pl.DirFd!.Fd;
            if (pl.Index is not null)
            {
                if (!NameIndex.Has(slots, pl.IndexSlot))
                {
                    if (pl.Branch.AufsFormat && NameIndex.Has(whiteoutSlots, pl.IndexSlot))
                    {
                        whiteoutBranch = pl.Branch.Index;
                        break;
                    }
                    continue;
                }
            }
            var e = BranchIo.Stat(dirFd, lookupName, out var st);
            if (e == Errno.ENOENT)
            {
                if (pl.Branch.AufsFormat && BranchIo.Stat(dirFd, Markers.AufsWhiteoutPrefix + lookupName, out _) == Errno.None)
                {
                    whiteoutBranch = pl.Branch.Index;
                    break;
                }
                continue;
            }
            if (e == Errno.ENOTDIR) continue;
            if (e != Errno.None) return e;
            if (IsWhiteout(pl, lookupName, st))
            {
                whiteoutBranch = pl.Branch.Index;
                break;
            }
            if (found.Count > 0 && !st.IsDirectory) break;
            var layer = new Layer { Branch = pl.Branch, ParentFd = dirFd, Name = lookupName, RelPath = UnionPath.Join(pl.RelPath, lookupName), St = st, MayHaveOrigin = pl.Impure };
            found.Add(layer);
            if (st.IsRegular && _options.Metacopy && pl.Impure) FindMetacopyData(res, layer, parents, i, found);
            if (!st.IsDirectory) break;
            e = LoadDirMarkers(res, layer);
            if (e != Errno.None) return e;
            if (layer.Opaque) break;
            if (layer.Redirect is { } redirect && FollowRedirects)
            {
                if (redirect.StartsWith('/'))
                {
                    FollowAbsoluteRedirect(res, redirect.Trim('/'), pl.Branch.Index, found);
                    break;
                }
                lookupName = redirect;
            }
        }
        return Errno.None;
    }

    private bool FollowRedirects => _options.RedirectDir is RedirectDirMode.On or RedirectDirMode.Follow;

    private bool IsWhiteout(Layer parent, string name, in Statx st)
    {
        if (BranchIo.IsWhiteoutDevice(st)) return true;
        if (!parent.XWhiteouts || !st.IsRegular || st.Size != 0) return false;
        if (BranchIo.OpenPath(parent.DirFd!.Fd, name, out var fd) != Errno.None) return false;
        using (fd) return BranchIo.GetXattr(fd.Fd, _markers.Whiteout) is not null;
    }

    /// <summary>Opens a directory layer and reads its markers.</summary>
    private Errno LoadDirMarkers(Resolution res, Layer layer)
    {
        // A readable descriptor lets the xattr calls skip /proc; O_PATH when the directory cannot be read.
        var e = BranchIo.OpenAt(layer.ParentFd, layer.Name, BranchIo.DirReadFlags, 0, out var fd);
        bool isPath = false;
        if (e is Errno.EACCES or Errno.EPERM)
        {
            e = BranchIo.OpenAt(layer.ParentFd, layer.Name, BranchIo.DirPathFlags, 0, out fd);
            isPath = true;
        }
        if (e != Errno.None) return e;
        layer.DirFd = res.Own(fd);
        layer.DirFdIsPath = isPath;
        ReadSubdirMarkers(layer);
        return Errno.None;
    }

    /// <summary>A directory's markers, the xattr forms and aufs's opaque file (roots: <see cref="ReadRootMarkers"/>).</summary>
    private void ReadSubdirMarkers(Layer layer)
    {
        ReadDirMarkers(layer);
        if (!layer.Opaque && layer.Branch.AufsFormat && BranchIo.Stat(layer.DirFd!.Fd, Markers.AufsOpaque, out _) == Errno.None) layer.Opaque = true;
    }

    /// <summary>Reads a directory layer's markers again from scratch (to compare with cached ones).</summary>
    internal void RereadDirMarkers(Layer layer, bool isRoot)
    {
        layer.Opaque = layer.XWhiteouts = layer.Impure = false;
        layer.Redirect = null;
        layer.Origin = 0;
        if (isRoot) ReadRootMarkers(layer);
        else ReadSubdirMarkers(layer);
    }

    /// <summary>One listxattr tells whether there is anything to read at all (usually there is not).</summary>
    internal void ReadDirMarkers(Layer layer)
    {
        int fd = layer.DirFd!.Fd;
        layer.OriginKnown = true;
        if (BranchIo.ListXattr(fd, layer.DirFdIsPath, out var names) != Errno.None || names.Count == 0) return;
        foreach (var name in names)
        {
            if (!Markers.IsPrivateXattr(name)) continue;
            if (name == _markers.Opaque)
            {
                string? opaque = BranchIo.AsString(BranchIo.GetXattr(fd, layer.DirFdIsPath, name));
                if (opaque == "y") layer.Opaque = true;
                if (opaque == "x") layer.XWhiteouts = true;
            }
            else if (name == _markers.Whiteouts) layer.XWhiteouts = true;
            else if (name == _markers.Redirect) layer.Redirect = BranchIo.AsString(BranchIo.GetXattr(fd, layer.DirFdIsPath, name));
            else if (name == _markers.Impure || name == _markers.OverlayImpure) layer.Impure = true;
            else if (name == _markers.Origin) layer.Origin = DecodeOrigin(BranchIo.GetXattr(fd, layer.DirFdIsPath, name));
        }
    }

    /// <summary>Lower layers of a renamed directory live at the redirect path in every branch below.</summary>
    private void FollowAbsoluteRedirect(Resolution res, string relPath, int belowIndex, List<Layer> found)
    {
        var comps = relPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (comps.Length == 0) return;
        foreach (var b in _branches.Branches)
        {
            if (b.Index <= belowIndex) continue;
            int dirFd = b.RootFd.Fd;
            bool reachable = true;
            for (int c = 0; c < comps.Length - 1 && reachable; c++)
            {
                if (BranchIo.OpenAt(dirFd, comps[c], BranchIo.DirPathFlags, 0, out var next) != Errno.None) { reachable = false; break; }
                dirFd = res.Own(next).Fd;
            }
            if (!reachable) continue;
            string last = comps[^1];
            if (BranchIo.Stat(dirFd, last, out var st) != Errno.None) continue;
            if (BranchIo.IsWhiteoutDevice(st) || !st.IsDirectory) return;
            var layer = new Layer { Branch = b, ParentFd = dirFd, Name = last, RelPath = relPath, St = st };
            if (LoadDirMarkers(res, layer) != Errno.None) return;
            found.Add(layer);
            if (layer.Opaque) return;
            if (layer.Redirect is { } again && FollowRedirects)
            {
                string next = again.StartsWith('/') ? again.Trim('/') : UnionPath.Join(UnionPath.Parent(relPath), again);
                FollowAbsoluteRedirect(res, next, b.Index, found);
                return;
            }
        }
    }

    /// <summary>For a metadata-only copy, adds the layer that holds its data (by its redirect, else by name below).</summary>
    private void FindMetacopyData(Resolution res, Layer layer, List<Layer> parents, int index, List<Layer> found)
    {
        if (BranchIo.OpenPath(layer.ParentFd, layer.Name, out var pfd) != Errno.None) return;
        string? redirect;
        using (pfd)
        {
            if (BranchIo.GetXattr(pfd.Fd, _markers.Metacopy) is null) return;
            redirect = BranchIo.GetXattrString(pfd.Fd, _markers.Redirect);
        }
        layer.IsMetacopy = true;
        if (redirect is not null && redirect.StartsWith('/'))
        {
            var comps = redirect.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            foreach (var b in _branches.Branches)
            {
                if (b.Index <= layer.Branch.Index || comps.Length == 0) continue;
                int dirFd = b.RootFd.Fd;
                bool reachable = true;
                for (int c = 0; c < comps.Length - 1 && reachable; c++)
                {
                    if (BranchIo.OpenAt(dirFd, comps[c], BranchIo.DirPathFlags, 0, out var next) != Errno.None) reachable = false;
                    else dirFd = res.Own(next).Fd;
                }
                if (!reachable || BranchIo.Stat(dirFd, comps[^1], out var st) != Errno.None || !st.IsRegular) continue;
                found.Add(new Layer { Branch = b, ParentFd = dirFd, Name = comps[^1], RelPath = redirect.Trim('/'), St = st, IsData = true });
                return;
            }
            return;
        }
        for (int j = index + 1; j < parents.Count; j++)
        {
            var pl = parents[j];
            string name = redirect ?? layer.Name;
            if (BranchIo.Stat(pl.DirFd!.Fd, name, out var st) != Errno.None) continue;
            if (st.IsRegular && !BranchIo.IsWhiteoutDevice(st))
                found.Add(new Layer { Branch = pl.Branch, ParentFd = pl.DirFd.Fd, Name = name, RelPath = UnionPath.Join(pl.RelPath, name), St = st, IsData = true });
            return;
        }
    }

    /// <summary>
    /// A lower file with several links whose other name was copied up already: the index entry in a
    /// writable branch holds the one upper copy, so this name sees its data too.
    /// </summary>
    private void SubstituteIndexEntry(Resolution res)
    {
        var top = res.Top;
        if (!_options.Index || top.Branch.IsWritable || !top.St.IsRegular || top.St.NLink < 2) return;
        ulong ino = ComputeIno(res);
        string key = IndexName(ino);
        foreach (var b in _branches.Branches)
        {
            if (b.Index >= top.Branch.Index) break;
            if (b.IndexFd is null || !b.IsWritable) continue;
            if (BranchIo.Stat(b.IndexFd.Fd, key, out var st) != Errno.None) continue;
            res.Layers[0] = new Layer { Branch = b, ParentFd = b.IndexFd.Fd, Name = key, RelPath = top.RelPath, St = st, IsIndex = true, MayHaveOrigin = true };
            return;
        }
    }

    internal static string IndexName(ulong ino) => ino.ToString("x16");
}
