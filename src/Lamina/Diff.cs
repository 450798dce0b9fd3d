using Lamina.Branches;
using Lamina.Native;

namespace Lamina;

/// <summary>Kind of change in <see cref="UnionFileSystem.Diff"/>, as docker diff prints it.</summary>
public enum ChangeKind { Added = 'A', Changed = 'C', Deleted = 'D' }

/// <summary>One changed path ("/a/b") of the union relative to its read-only branches.</summary>
public readonly record struct Change(ChangeKind Kind, string Path)
{
    public override string ToString() => $"{(char)Kind} {Path}";
}

public sealed partial class UnionFileSystem
{
    /// <summary>
    /// What the writable branches hold relative to the read-only ones, like <c>docker diff</c>:
    /// A for objects only in writable branches, C for objects present below and changed or copied up
    /// (directories with changes inside), D for lower objects hidden by whiteouts or opaque directories.
    /// </summary>
    public List<Change> Diff()
    {
        using var scope = Read();
        var changes = new SortedDictionary<string, ChangeKind>(StringComparer.Ordinal);
        DiffDirectory("", changes);
        return changes.Select(kv => new Change(kv.Value, "/" + kv.Key)).ToList();
    }

    private void DiffDirectory(string dirPath, SortedDictionary<string, ChangeKind> changes)
    {
        if (Resolve(dirPath, out var all) != Errno.None) return;
        using (all)
        {
            if (!all.Exists || !all.Top.IsDir) return;
            var lowerNames = LowerListing(dirPath, out bool lowerExists);
            bool cutsLower = false;
            var upperNames = new HashSet<string>(StringComparer.Ordinal);
            foreach (var layer in all.Layers.Where(l => l.Branch.IsWritable))
            {
                if (layer.Opaque) cutsLower = true;
                if (BranchIo.OpenAt(layer.ParentFd, layer.Name, BranchIo.DirReadFlags, 0, out var fd) != Errno.None) continue;
                using (fd)
                {
                    BranchIo.ReadDir(fd.Fd, out var raw);
                    foreach (var (rawName, type, _) in raw)
                    {
                        string name = rawName;
                        if (layer.RelPath.Length == 0 && name == layer.Branch.HiddenRootName) continue;
                        if (name == Markers.AufsOpaque) continue;
                        bool whiteout = false;
                        if (Markers.IsMarkerName(name))
                        {
                            if (!layer.Branch.AufsFormat || name == Markers.AufsBranchMarker) continue;
                            name = name[Markers.AufsWhiteoutPrefix.Length..];
                            whiteout = true;
                        }
                        else if (type == Sys.DT_CHR && BranchIo.Stat(fd.Fd, name, out var st) == Errno.None && BranchIo.IsWhiteoutDevice(st)) whiteout = true;
                        string path = UnionPath.Join(dirPath, name);
                        if (!upperNames.Add(name) || changes.ContainsKey(path)) continue;
                        if (whiteout)
                        {
                            if (lowerNames.Contains(name)) changes[path] = ChangeKind.Deleted;
                            continue;
                        }
                        changes[path] = lowerNames.Contains(name) && !cutsLower ? ChangeKind.Changed : ChangeKind.Added;
                        if (type == Sys.DT_DIR) DiffDirectory(path, changes);
                    }
                }
            }
            if (cutsLower && lowerExists)
            {
                foreach (var name in lowerNames.Where(n => !upperNames.Contains(n)))
                    changes[UnionPath.Join(dirPath, name)] = ChangeKind.Deleted;
            }
        }
    }

    /// <summary>Names visible at <paramref name="dirPath"/> in the union of the read-only branches alone.</summary>
    private HashSet<string> LowerListing(string dirPath, out bool exists)
    {
        exists = false;
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (Resolve(dirPath, out var lower, b => !b.IsWritable) != Errno.None) return names;
        using (lower)
        {
            if (!lower.Exists || !lower.Top.IsDir) return names;
            exists = true;
            if (ReadMerged(lower, out var entries) == Errno.None)
                foreach (var e in entries) names.Add(e.Name);
        }
        return names;
    }
}
