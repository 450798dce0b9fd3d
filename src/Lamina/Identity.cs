using System.Buffers.Binary;
using Lamina.Native;

namespace Lamina;

/// <summary>
/// Union inode numbers, like overlayfs xino. Every distinct filesystem among the branches gets an
/// index in order of first appearance (the top branch's filesystem is 0). The union inode of an object
/// is its origin's real inode, with the filesystem index in the top 16 bits:
/// <c>ino = fsIndex &lt;&lt; 48 | realIno</c> (so with all branches on one filesystem the union inode is
/// simply the real one). The origin is the object as it first existed in a lower layer; a copy-up records
/// the union inode on the upper copy (xattr <c>trusted.lamina.origin</c>, 8 bytes little endian), so it
/// survives copy-up, rename and remount. Objects born in a writable branch use their own inode.
/// A merged directory without that record (upper made by kernel overlayfs) takes its first lower's.
/// </summary>
public sealed partial class UnionFileSystem
{
    private const ulong InoMask = (1UL << 48) - 1;

    internal static ulong Pack(Layer layer) => Pack(layer.Branch.FsIndex, layer.St.Ino);

    internal static ulong Pack(int fsIndex, ulong realIno)
    {
        if (fsIndex == 0) return realIno;
        // Real inode numbers beyond 48 bits cannot be packed; mix them instead (collisions then possible, as with xino=off).
        ulong ino = realIno <= InoMask ? realIno : (realIno ^ (realIno >> 48)) & InoMask;
        return ((ulong)fsIndex << 48) | ino;
    }

    internal ulong ComputeIno(Resolution res)
    {
        var top = res.Top;
        ulong origin = ReadOrigin(top);
        if (origin != 0) return origin;
        if (top.IsDir && res.Layers.Count > 1 && top.Branch.IsWritable) return Pack(res.Layers[1]);
        return Pack(top);
    }

    /// <summary>
    /// The origin recorded on an object. Lamina marks every directory it places an object with an
    /// origin in (impure), so a non-directory elsewhere is not asked: that saves three calls per lookup.
    /// </summary>
    internal ulong ReadOrigin(Layer layer)
    {
        if (layer.OriginKnown) return layer.Origin;
        if (layer.DirFd is not null) return DecodeOrigin(BranchIo.GetXattr(layer.DirFd.Fd, layer.DirFdIsPath, _markers.Origin));
        if (!layer.MayHaveOrigin) return 0;
        if (BranchIo.OpenPath(layer.ParentFd, layer.Name, out var fd) != Errno.None) return 0;
        using (fd) return DecodeOrigin(BranchIo.GetXattr(fd.Fd, _markers.Origin));
    }

    private static ulong DecodeOrigin(byte[]? value) =>
        value is { Length: 8 } ? BinaryPrimitives.ReadUInt64LittleEndian(value) : 0;

    internal Errno WriteOrigin(int pathFd, ulong ino)
    {
        Span<byte> buf = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buf, ino);
        return BranchIo.SetXattr(pathFd, _markers.Origin, buf);
    }
}
