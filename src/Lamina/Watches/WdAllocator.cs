using System.Numerics;

namespace Lamina.Watches;

/// <summary>
/// Watch descriptors exactly as the kernel hands them out: inotify calls
/// idr_alloc_cyclic(idr, mark, 1, 0), i.e. the lowest free number at or after the cursor,
/// else the lowest free number at or after 1; the cursor then moves to the number + 1, and past
/// INT_MAX it reads as negative, so the next search starts at 1 again. INOTIFY_IOC_SETNEXTWD
/// only moves the cursor.
/// </summary>
/// <remarks>
/// Used numbers live in a sparse bitmap of 4096-bit leaves with a fill count, so "first free at
/// or after n" looks at one leaf unless it crosses full ones: O(1) for restore (cursor set to a
/// free number first), and O(used/4096) at worst when a cyclic search runs through a full range.
/// </remarks>
public sealed class WdAllocator
{
    private const int LeafShift = 12, LeafSize = 1 << LeafShift, Words = LeafSize / 64;

    private sealed class Leaf
    {
        public readonly ulong[] Bits = new ulong[Words];
        public int Count;
    }

    private readonly Dictionary<int, Leaf> _leaves = [];
    private uint _next; // idr->idr_next: unsigned, so id + 1 past INT_MAX is "negative"

    /// <summary>Numbers in use.</summary>
    public int Count { get; private set; }

    /// <summary>The raw cursor (idr_next), as a checkpoint stores it.</summary>
    public uint Cursor { get => _next; set => _next = value; }

    /// <summary>INOTIFY_IOC_SETNEXTWD: false (EINVAL) unless 1 ≤ <paramref name="wd"/> ≤ INT_MAX.</summary>
    public bool SetNext(int wd)
    {
        if (wd < 1) return false;
        _next = (uint)wd;
        return true;
    }

    /// <summary>The next number, or -1 when all of 1..INT_MAX are in use (ENOSPC).</summary>
    public int Allocate()
    {
        const int start = 1;
        int id = (int)_next < start ? start : (int)_next;
        int found = FindFree(id);
        if (found < 0 && id > start) found = FindFree(start);
        if (found < 0) return -1;
        Mark(found);
        _next = (uint)found + 1;
        return found;
    }

    /// <summary>Takes a specific number (restore). False when it is in use or out of range.</summary>
    public bool Claim(int wd)
    {
        if (wd < 1 || IsUsed(wd)) return false;
        Mark(wd);
        return true;
    }

    public bool IsUsed(int wd) =>
        wd >= 1 && _leaves.TryGetValue(wd >> LeafShift, out var leaf) && (leaf.Bits[(wd & (LeafSize - 1)) >> 6] & (1UL << (wd & 63))) != 0;

    public void Free(int wd)
    {
        if (!_leaves.TryGetValue(wd >> LeafShift, out var leaf)) return;
        ref ulong word = ref leaf.Bits[(wd & (LeafSize - 1)) >> 6];
        ulong bit = 1UL << (wd & 63);
        if ((word & bit) == 0) return;
        word &= ~bit;
        Count--;
        if (--leaf.Count == 0) _leaves.Remove(wd >> LeafShift);
    }

    private void Mark(int wd)
    {
        int key = wd >> LeafShift;
        if (!_leaves.TryGetValue(key, out var leaf)) _leaves[key] = leaf = new Leaf();
        leaf.Bits[(wd & (LeafSize - 1)) >> 6] |= 1UL << (wd & 63);
        leaf.Count++;
        Count++;
    }

    /// <summary>The lowest free number in [<paramref name="from"/>, INT_MAX], or -1.</summary>
    private int FindFree(int from)
    {
        long id = from;
        while (id <= int.MaxValue)
        {
            int key = (int)(id >> LeafShift);
            if (!_leaves.TryGetValue(key, out var leaf)) return (int)id;
            if (leaf.Count < LeafSize)
            {
                int offset = (int)(id & (LeafSize - 1));
                for (int w = offset >> 6; w < Words; w++)
                {
                    ulong free = ~leaf.Bits[w];
                    if (w == offset >> 6) free &= ulong.MaxValue << (offset & 63);
                    if (free != 0) return (key << LeafShift) + w * 64 + BitOperations.TrailingZeroCount(free);
                }
            }
            id = ((long)key + 1) << LeafShift;
        }
        return -1;
    }
}
