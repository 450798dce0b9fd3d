using Lamina.Native;

namespace Lamina;

public sealed partial class UnionFileSystem
{
    /// <summary>
    /// statfs of the union: the sum over the writable branches (each filesystem counted once), in the
    /// block size of the first; a union without writable branches sums all of them.
    /// </summary>
    public Errno StatFs(UnionNode node, out StatFs result)
    {
        var branches = _branches.Branches.Where(b => b.IsWritable).ToList();
        if (branches.Count == 0) branches = [.. _branches.Branches];
        StatFs sum = default;
        var seenDevices = new HashSet<ulong>();
        bool first = true;
        foreach (var b in branches)
        {
            if (!seenDevices.Add(b.Dev)) continue;
            if (Sys.FStatFs(b.RootFd.Fd, out var s) != 0) { result = default; return Sys.LastErrno; }
            if (first)
            {
                sum = s;
                first = false;
                continue;
            }
            double scale = (double)s.BSize / sum.BSize;
            sum.Blocks += (ulong)(s.Blocks * scale);
            sum.BFree += (ulong)(s.BFree * scale);
            sum.BAvail += (ulong)(s.BAvail * scale);
            sum.Files += s.Files;
            sum.FFree += s.FFree;
            sum.NameLen = Math.Min(sum.NameLen, s.NameLen);
        }
        result = sum;
        return Errno.None;
    }
}
