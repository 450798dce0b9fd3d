using Lamina.Branches;
using Lamina.Native;

namespace Lamina.Locks;

/// <summary>One byte range held by one POSIX or OFD owner. End is inclusive.</summary>
internal sealed record RangeLock(LockKind Kind, ulong Owner, short Type, long Start, long End, int Pid, UnionHandle? Handle)
{
    public bool Overlaps(long start, long end) => Start <= end && start <= End;
}

/// <summary>A whole-file flock lock, owned by an open file description.</summary>
internal sealed record FlockLock(ulong Owner, short Type, int Pid, UnionHandle? Handle);

/// <summary>Who a waiter is blocked on: an owner in the table, or a party seen only on the branch file.</summary>
internal readonly record struct Blocker(LockKind Kind, ulong Owner, bool External);

/// <summary>A blocked SETLKW: completes with the answer, or is cancelled (EINTR).</summary>
internal sealed class Waiter(NodeLocks node, LockRequest request)
{
    public readonly NodeLocks Node = node;
    public readonly LockRequest Request = request;
    public readonly TaskCompletionSource<Errno> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public Blocker Blocker;
    public CancellationTokenRegistration Cancellation;
    public int RetryDelayMs = 5;
}

/// <summary>
/// The lock held on a branch file for one union owner: an open file description of the branch file,
/// so the branch's own lock manager sees it as one owner, exactly like the union's table does.
/// </summary>
internal sealed class Mirror(SafeFd fd, bool writable, Branch? branch, UnionHandle? openedThrough)
{
    public SafeFd Fd = fd;
    public bool Writable = writable;
    public Branch? Branch = branch;
    /// <summary>The handle it was opened through (for diagnostics); an idle mirror is kept for the owner's next lock until a handle of the node is released.</summary>
    public UnionHandle? OpenedThrough = openedThrough;

    /// <summary>The branch file's path, as the kernel names it (only asked for by listings and logs).</summary>
    public string File => Sys.ReadLink(Sys.AT_FDCWD, BranchIo.ProcPath(Fd.Fd)) ?? "?";
    /// <summary>The same locks taken on the copy being built by copy-up, before it is published.</summary>
    public SafeFd? Staged;
}

internal readonly record struct MirrorKey(bool Flock, bool Ofd, ulong Owner);

/// <summary>Everything locked on one union node. POSIX locks are kept in the kernel's list order (by owner in order of arrival, each owner's locks by start), so F_GETLK names the same lock the kernel would.</summary>
internal sealed class NodeLocks(UnionNode node)
{
    public readonly UnionNode Node = node;
    public List<RangeLock> Posix = [];
    public List<FlockLock> Flocks = [];
    public readonly List<Waiter> Waiters = [];
    public readonly Dictionary<MirrorKey, Mirror> Mirrors = [];
    /// <summary>Mirrors left on the branch file a copy-up moved away from, until no open file still uses that file.</summary>
    public readonly List<(Branch? Branch, SafeFd Fd)> Retired = [];

    public bool Idle => Posix.Count == 0 && Flocks.Count == 0 && Waiters.Count == 0 && Mirrors.Count == 0 && Retired.Count == 0;

    public static bool SameOwner(RangeLock l, in LockRequest r) => l.Owner == r.Owner && (l.Kind == LockKind.Ofd) == (r.Kind == LockKind.Ofd);

    /// <summary>The first lock of another owner that <paramref name="r"/> conflicts with, in list order (what F_GETLK reports).</summary>
    public RangeLock? FirstPosixConflict(in LockRequest r)
    {
        foreach (var l in Posix)
        {
            if (SameOwner(l, r) || !l.Overlaps(r.Start, r.End)) continue;
            if (l.Type == LockType.Write || r.Type == LockType.Write) return l;
        }
        return null;
    }

    /// <summary>
    /// Applies a POSIX lock or unlock for its owner, with fcntl(2)'s splitting and merging: ranges of
    /// the same type that overlap or touch become one; a different type or an unlock cuts the owner's
    /// older ranges. Conflicts must have been checked already. Returns true when anything changed.
    /// </summary>
    public bool ApplyPosix(in LockRequest r)
    {
        int first = -1;
        var mine = new List<RangeLock>();
        var rest = new List<RangeLock>(Posix.Count + 2);
        foreach (var l in Posix)
        {
            if (SameOwner(l, r))
            {
                if (first < 0) first = rest.Count;
                mine.Add(l);
            }
            else rest.Add(l);
        }
        if (mine.Count == 0 && r.Type == LockType.Unlock) return false;

        long s = r.Start, e = r.End;
        RangeLock? mergedInto = null;
        var kept = new List<RangeLock>(mine.Count + 2);
        foreach (var l in mine)
        {
            // "start - 1" rather than "end + 1": end may be OFFSET_MAX.
            bool touches = l.End >= s - 1 && l.Start - 1 <= e;
            if (r.Type != LockType.Unlock && l.Type == r.Type && touches)
            {
                s = Math.Min(s, l.Start);
                e = Math.Max(e, l.End);
                mergedInto ??= l; // the kernel keeps the older lock (and its pid) when it grows it
                continue;
            }
            if (!l.Overlaps(s, e)) { kept.Add(l); continue; }
            if (l.Start < s) kept.Add(l with { End = s - 1 });
            if (l.End > e) kept.Add(l with { Start = e + 1 });
        }
        if (r.Type != LockType.Unlock)
            kept.Add(mergedInto is not null ? mergedInto with { Start = s, End = e } : new RangeLock(r.Kind, r.Owner, r.Type, s, e, r.Pid, r.Handle));
        kept.Sort((a, b) => a.Start.CompareTo(b.Start));

        bool changed = kept.Count != mine.Count || !kept.SequenceEqual(mine);
        if (first < 0) first = rest.Count; // a new owner goes to the end of the list
        rest.InsertRange(first, kept);
        Posix = rest;
        return changed;
    }

    /// <summary>Removes the POSIX/OFD locks matching <paramref name="match"/>; true when any went.</summary>
    public bool RemovePosix(Func<RangeLock, bool> match)
    {
        int before = Posix.Count;
        Posix = Posix.Where(l => !match(l)).ToList();
        return Posix.Count != before;
    }

    public bool RemoveFlocks(Func<FlockLock, bool> match)
    {
        int before = Flocks.Count;
        Flocks = Flocks.Where(l => !match(l)).ToList();
        return Flocks.Count != before;
    }
}
