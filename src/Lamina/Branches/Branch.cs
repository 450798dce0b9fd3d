using Lamina.Native;

namespace Lamina.Branches;

/// <summary>
/// One opened branch. All access goes through <see cref="RootFd"/> (and the work/index descriptors of a
/// writable branch), never through joined absolute paths.
/// </summary>
public sealed class Branch : IDisposable
{
    internal Branch(string path, string canonicalPath, BranchMode mode, SafeFd root, Statx rootStat)
    {
        Path = path;
        CanonicalPath = canonicalPath;
        Mode = mode;
        RootFd = root;
        Dev = rootStat.Dev;
        RootIno = rootStat.Ino;
    }

    /// <summary>The path as configured.</summary>
    public string Path { get; }

    /// <summary>The real absolute path (symlinks resolved), used only for messages and nesting checks.</summary>
    public string CanonicalPath { get; }

    public BranchMode Mode { get; internal set; }

    /// <summary>Position in the branch order, 0 = top. Updated when branches are added, removed or reordered.</summary>
    public int Index { get; internal set; }

    public bool IsWritable => Mode != BranchMode.ReadOnly;
    public bool CanCreate => Mode == BranchMode.ReadWrite;

    internal SafeFd RootFd { get; }

    /// <summary>Directory for temporary objects built before they are renamed into place (writable branches).</summary>
    internal SafeFd? WorkFd { get; set; }

    /// <summary>Directory of hard-link index entries: name = union inode in hex, a link to the upper copy.</summary>
    internal SafeFd? IndexFd { get; set; }

    /// <summary>Holds the exclusive flock that marks the work dir as used by this union.</summary>
    internal SafeFd? LockFd { get; set; }

    /// <summary>Name at the branch root hidden from the union (the per-branch work dir of a mergerfs-style union).</summary>
    internal string? HiddenRootName { get; set; }

    /// <summary>The branch holds aufs ".wh." markers (<c>.wh..wh.aufs</c> at its root); only then are they looked for.</summary>
    internal bool AufsFormat { get; set; }

    public ulong Dev { get; }
    public ulong RootIno { get; }

    /// <summary>Which distinct filesystem this is, in order of first appearance; the high bits of union inode numbers.</summary>
    internal int FsIndex { get; set; }

    private int _openFiles;
    internal int OpenFiles => Volatile.Read(ref _openFiles);
    internal void AddOpenFile() => Interlocked.Increment(ref _openFiles);
    internal void RemoveOpenFile() => Interlocked.Decrement(ref _openFiles);

    private int _tempCounter;
    /// <summary>A fresh temporary name in the work dir ("#hex" like overlayfs).</summary>
    internal string NextTempName() => $"#{Environment.ProcessId:x}.{Interlocked.Increment(ref _tempCounter):x}";

    public long FreeBytes() => Sys.FStatFs(RootFd.Fd, out var s) == 0 ? (long)s.BAvail * s.BSize : 0;
    public long UsedBytes() => Sys.FStatFs(RootFd.Fd, out var s) == 0 ? (long)(s.Blocks - s.BFree) * s.BSize : long.MaxValue;

    public override string ToString() => $"{Path}={Mode switch { BranchMode.ReadOnly => "RO", BranchMode.NoCreate => "NC", _ => "RW" }}";

    public void Dispose()
    {
        WorkFd?.Dispose();
        IndexFd?.Dispose();
        LockFd?.Dispose();
        RootFd.Dispose();
    }
}
