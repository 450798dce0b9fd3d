using System.Text;
using Lamina.Native;

namespace Lamina.Tests.Model;

/// <summary>What a pre-populated layer holds at one path.</summary>
public enum EntryKind { File, Dir, OpaqueDir, Whiteout }

public sealed record LayerEntry(int Layer, string Path, EntryKind Kind, string Content = "")
{
    public override string ToString() => $"L{Layer} {Kind} {Path}{(Kind == EntryKind.File ? $" \"{Content}\"" : "")}";
}

/// <summary>One filesystem operation of a generated sequence.</summary>
public sealed record Op(string Kind, string A, string B = "", long N = 0, string Data = "", uint Flags = 0)
{
    public Errno Apply(IFsDriver d) => Kind switch
    {
        "create" => d.Create(A, Data),
        "mkdir" => d.Mkdir(A),
        "unlink" => d.Unlink(A),
        "rmdir" => d.Rmdir(A),
        "rename" => d.Rename(A, B, Flags),
        "link" => d.Link(A, B),
        "write" => d.Write(A, N, Data),
        "truncate" => d.Truncate(A, N),
        "chmod" => d.Chmod(A, (uint)N),
        "touch" => d.Touch(A),
        _ => throw new InvalidOperationException(Kind),
    };

    public override string ToString() => Kind switch
    {
        "rename" => $"rename {A} -> {B}{(Flags == Sys.RENAME_EXCHANGE ? " EXCHANGE" : Flags == Sys.RENAME_NOREPLACE ? " NOREPLACE" : "")}",
        "link" => $"link {A} -> {B}",
        "write" => $"write {A} @{N} \"{Data}\"",
        "truncate" => $"truncate {A} {N}",
        "chmod" => $"chmod {A} {Convert.ToString(N, 8)}",
        "create" => $"create {A} \"{Data}\"",
        _ => $"{Kind} {A}",
    };
}

/// <summary>Layers (index 0 = upper, 1 = top lower, 2 = bottom lower) plus an operation sequence.</summary>
public sealed class Scenario
{
    public const int LayerCount = 3;
    private static readonly string[] Names = ["a", "b", "c", "d"];

    public required int Seed { get; init; }
    public required List<LayerEntry> Layers { get; init; }
    public required List<Op> Ops { get; init; }

    public static Scenario Generate(int seed, int opCount)
    {
        var rng = new Random(seed);
        var entries = new List<LayerEntry>();
        var below = new TreeModel();
        // Bottom layer first so upper layers can whiteout or shadow what is below.
        for (int layer = LayerCount - 1; layer >= 0; layer--)
        {
            var here = new Dictionary<string, EntryKind>();
            int count = layer == 0 ? rng.Next(0, 4) : rng.Next(4, 12);
            for (int i = 0; i < count; i++)
            {
                string path = RandomPath(rng);
                var kind = rng.Next(10) switch
                {
                    < 4 => EntryKind.File,
                    < 7 => EntryKind.Dir,
                    < 8 when layer < LayerCount - 1 => EntryKind.OpaqueDir,
                    < 10 when layer < LayerCount - 1 => EntryKind.Whiteout,
                    _ => EntryKind.File,
                };
                // Every parent is a plain directory of this layer.
                var parts = path.Split('/');
                bool blocked = false;
                for (int p = 1; p < parts.Length && !blocked; p++)
                {
                    string parent = string.Join('/', parts[..p]);
                    if (here.TryGetValue(parent, out var k)) blocked = k is EntryKind.File or EntryKind.Whiteout;
                    else here[parent] = EntryKind.Dir;
                }
                if (blocked || here.ContainsKey(path)) continue;
                // Whiteouts hide something, as in layers overlayfs writes (overlayfs shows a whiteout that
                // hides nothing in readdir of a lower-only directory, a quirk not worth mirroring).
                if (kind == EntryKind.Whiteout && !below.Exists(path)) kind = EntryKind.File;
                here[path] = kind;
            }
            foreach (var (path, kind) in here.OrderBy(kv => kv.Key.Count(c => c == '/')).ThenBy(kv => kv.Key, StringComparer.Ordinal))
                entries.Add(new LayerEntry(layer, path, kind, kind == EntryKind.File ? $"L{layer}:{path}" : ""));
            below = new Scenario { Seed = seed, Layers = entries, Ops = [] }.InitialModel();
        }
        var scenario = new Scenario { Seed = seed, Layers = entries, Ops = [] };
        var model = scenario.InitialModel();
        for (int i = 0; i < opCount; i++)
        {
            var op = RandomOp(rng, model, i);
            op.Apply(model);
            scenario.Ops.Add(op);
        }
        return scenario;
    }

    private static string RandomPath(Random rng)
    {
        int depth = rng.Next(1, 4);
        return string.Join('/', Enumerable.Range(0, depth).Select(_ => Names[rng.Next(Names.Length)]));
    }

    private static string PickPath(Random rng, TreeModel model)
    {
        var existing = model.Snapshot().Keys.ToList();
        if (existing.Count > 0 && rng.Next(4) != 0) return existing[rng.Next(existing.Count)];
        return RandomPath(rng);
    }

    private static Op RandomOp(Random rng, TreeModel model, int i)
    {
        string a = PickPath(rng, model);
        string b = PickPath(rng, model);
        // New names are more useful as destinations than existing ones.
        string fresh = (rng.Next(2) == 0 && model.IsDir(a) ? a : string.Join('/', a.Split('/')[..^1].Append(Names[rng.Next(Names.Length)])));
        return rng.Next(100) switch
        {
            < 14 => new Op("create", fresh, Data: $"new{i}"),
            < 26 => new Op("write", a, N: rng.Next(0, 12), Data: $"w{i}"),
            < 32 => new Op("truncate", a, N: rng.Next(0, 10)),
            < 46 => new Op("rename", a, rng.Next(2) == 0 ? fresh : b),
            < 49 => new Op("rename", a, b, Flags: Sys.RENAME_EXCHANGE),
            < 52 => new Op("rename", a, fresh, Flags: Sys.RENAME_NOREPLACE),
            < 62 => new Op("unlink", a),
            < 72 => new Op("mkdir", fresh),
            < 78 => new Op("rmdir", a),
            < 84 => new Op("link", a, fresh),
            < 91 => new Op("chmod", a, N: rng.Next(2) == 0 ? 0x1C0 : 0x1ED),
            _ => new Op("touch", a),
        };
    }

    /// <summary>The merged view of the layers, computed independently of the engine.</summary>
    public TreeModel InitialModel()
    {
        var model = new TreeModel();
        for (int layer = LayerCount - 1; layer >= 0; layer--)
        {
            foreach (var e in Layers.Where(e => e.Layer == layer))
            {
                switch (e.Kind)
                {
                    case EntryKind.Whiteout:
                        model.Remove(e.Path);
                        break;
                    case EntryKind.File:
                        model.Put(e.Path, isDir: false, e.Content);
                        break;
                    case EntryKind.Dir:
                        if (!model.IsDir(e.Path)) model.Put(e.Path, isDir: true);
                        break;
                    case EntryKind.OpaqueDir:
                        if (!model.IsDir(e.Path)) model.Put(e.Path, isDir: true);
                        model.ClearDir(e.Path);
                        break;
                }
            }
        }
        return model;
    }

    /// <summary>Writes the layers into <paramref name="t"/> (upper = layer 0, lowers = 1, 2).</summary>
    public void Materialize(TestLayers t)
    {
        foreach (var e in Layers)
        {
            string root = e.Layer == 0 ? t.Upper! : t.Lowers[e.Layer - 1];
            string full = Path.Combine(root, e.Path);
            switch (e.Kind)
            {
                case EntryKind.File:
                    File.WriteAllText(full, e.Content);
                    Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, full, 0x1A4, 0));
                    break;
                case EntryKind.Dir:
                case EntryKind.OpaqueDir:
                    Directory.CreateDirectory(full);
                    Assert.Equal(0, Sys.FChmodAt(Sys.AT_FDCWD, full, 0x1ED, 0));
                    if (e.Kind == EntryKind.OpaqueDir) TestLayers.SetXattr(full, "trusted.overlay.opaque", "y");
                    break;
                case EntryKind.Whiteout:
                    TestLayers.Whiteout(root, e.Path);
                    break;
            }
        }
    }

    public string Describe(IEnumerable<Op>? ops = null)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"seed {Seed}; layers (L0 = upper, L1 = top lower, L2 = bottom lower):");
        foreach (var e in Layers) sb.AppendLine("  " + e);
        sb.AppendLine("operations:");
        int i = 0;
        foreach (var op in ops ?? Ops) sb.AppendLine($"  {i++,3}: {op}");
        return sb.ToString();
    }

    public static string? CompareSnapshots(SortedDictionary<string, Snap> expected, SortedDictionary<string, Snap> actual, string expectedName, string actualName)
    {
        var sb = new StringBuilder();
        foreach (var (p, s) in expected)
        {
            if (!actual.TryGetValue(p, out var a)) sb.AppendLine($"  {p}: {expectedName} has {s}, {actualName} has nothing");
            else if (a != s) sb.AppendLine($"  {p}: {expectedName} has {s}, {actualName} has {a}");
        }
        foreach (var (p, a) in actual)
            if (!expected.ContainsKey(p)) sb.AppendLine($"  {p}: {actualName} has {a}, {expectedName} has nothing");
        return sb.Length == 0 ? null : sb.ToString();
    }

    /// <summary>Greedy delta debugging: drops chunks of operations while <paramref name="fails"/> still holds.</summary>
    public static List<Op> Shrink(List<Op> ops, Func<List<Op>, bool> fails, int budget = 150)
    {
        var current = ops;
        int chunk = Math.Max(1, current.Count / 2);
        while (chunk >= 1 && budget > 0)
        {
            bool removed = false;
            for (int start = 0; start < current.Count && budget > 0;)
            {
                var candidate = current.Take(start).Concat(current.Skip(start + chunk)).ToList();
                budget--;
                if (candidate.Count < current.Count && fails(candidate)) { current = candidate; removed = true; }
                else start += chunk;
            }
            if (!removed) chunk /= 2;
        }
        return current;
    }
}
