using Lamina.Branches;

namespace Lamina.Policies;

/// <summary>Placement policies in mergerfs's vocabulary.</summary>
public enum PolicyKind
{
    /// <summary>First found: branches in order.</summary>
    FirstFound,
    /// <summary>Existing path, first found: branches where the parent already exists first, in order.</summary>
    ExistingPathFirstFound,
    /// <summary>Most free space.</summary>
    MostFreeSpace,
    /// <summary>Existing path, most free space (path preserving).</summary>
    ExistingPathMostFreeSpace,
    /// <summary>Least used space.</summary>
    LeastUsedSpace,
    RoundRobin,
    Random,
}

/// <summary>What a placement policy may look at about one candidate branch.</summary>
public readonly record struct PlacementCandidate(Branch Branch, bool ParentExists);

/// <summary>A placement policy: orders the eligible branches; the engine tries them in that order, moving on after ENOSPC.</summary>
public sealed class Policy
{
    private int _roundRobin;

    public Policy(PolicyKind kind) => Kind = kind;

    public PolicyKind Kind { get; }

    public static Policy? Parse(string name) => name.ToLowerInvariant() switch
    {
        "ff" => new(PolicyKind.FirstFound),
        "epff" => new(PolicyKind.ExistingPathFirstFound),
        "mfs" => new(PolicyKind.MostFreeSpace),
        "epmfs" => new(PolicyKind.ExistingPathMostFreeSpace),
        "lus" => new(PolicyKind.LeastUsedSpace),
        "rr" or "roundrobin" => new(PolicyKind.RoundRobin),
        "rand" or "random" => new(PolicyKind.Random),
        _ => null,
    };

    /// <summary>Orders <paramref name="candidates"/> (given in branch order) by preference.</summary>
    public List<Branch> Order(IReadOnlyList<PlacementCandidate> candidates)
    {
        var list = candidates.ToList();
        switch (Kind)
        {
            case PolicyKind.FirstFound:
                break;
            case PolicyKind.ExistingPathFirstFound:
                list = [.. list.Where(c => c.ParentExists), .. list.Where(c => !c.ParentExists)];
                break;
            case PolicyKind.MostFreeSpace:
                list = [.. list.OrderByDescending(c => c.Branch.FreeBytes())];
                break;
            case PolicyKind.ExistingPathMostFreeSpace:
                list = [.. list.OrderBy(c => c.ParentExists ? 0 : 1).ThenByDescending(c => c.Branch.FreeBytes())];
                break;
            case PolicyKind.LeastUsedSpace:
                list = [.. list.OrderBy(c => c.Branch.UsedBytes())];
                break;
            case PolicyKind.RoundRobin:
                if (list.Count > 1)
                {
                    int start = (int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)list.Count);
                    list = [.. list.Skip(start), .. list.Take(start)];
                }
                break;
            case PolicyKind.Random:
                list = [.. list.OrderBy(_ => System.Random.Shared.Next())];
                break;
        }
        return list.Select(c => c.Branch).ToList();
    }

    public override string ToString() => Kind.ToString();
}

/// <summary>The policy for each operation class: create (files, nodes, symlinks, links), mkdir, copy-up.</summary>
public sealed class PolicySet
{
    public Policy Create { get; set; } = new(PolicyKind.ExistingPathFirstFound);
    public Policy Mkdir { get; set; } = new(PolicyKind.ExistingPathFirstFound);
    public Policy CopyUp { get; set; } = new(PolicyKind.ExistingPathFirstFound);

    /// <summary>Sets the policy for an option name ("create" as a category sets all three); false if unknown.</summary>
    public bool Set(string op, Policy policy)
    {
        switch (op)
        {
            case "create": Create = policy; Mkdir = policy; CopyUp = policy; return true;
            case "mkdir": Mkdir = policy; return true;
            case "copyup": CopyUp = policy; return true;
            case "mknod" or "symlink" or "link": Create = policy; return true;
            default: return false;
        }
    }
}
