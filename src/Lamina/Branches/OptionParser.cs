using System.Text;
using Lamina.Policies;

namespace Lamina.Branches;

/// <summary>
/// Parses overlayfs mount options (<c>lowerdir=a:b,upperdir=u,workdir=w,...</c>) and mergerfs-style
/// branch lists (<c>/a=RW:/b=RO:/c=NC</c>). Backslash escapes ',' ':' '=' and '\' in paths, as overlayfs does.
/// </summary>
public static class OptionParser
{
    // Flags a mount or a FUSE session takes that the engine accepts without meaning for itself.
    private static readonly HashSet<string> GenericFlags = new(StringComparer.Ordinal)
    {
        "rw", "ro", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime",
        "strictatime", "nodiratime", "diratime", "sync", "async", "dirsync", "lazytime", "defaults",
        "allow_other", "allow_root", "default_permissions", "auto_unmount", "volatile", "nfs_export=off",
    };

    private static readonly HashSet<string> GenericValued = new(StringComparer.Ordinal)
    {
        "fsname", "subtype", "max_read", "uid", "gid", "umask", "context", "fscontext", "rootcontext", "nfs_export", "uuid",
    };

    /// <summary>Parses overlayfs syntax. Throws <see cref="UnionConfigException"/> naming the option at fault.</summary>
    public static UnionOptions ParseOverlay(string options)
    {
        var result = new UnionOptions();
        string? upper = null;
        List<string> lowers = [];
        foreach (var item in SplitEscaped(options, ','))
        {
            if (item.Length == 0) continue;
            int eq = IndexOfUnescaped(item, '=');
            string key = eq < 0 ? item : item[..eq];
            string? value = eq < 0 ? null : item[(eq + 1)..];
            switch (key)
            {
                case "lowerdir":
                    lowers.AddRange(SplitEscaped(Require(key, value), ':').Select(Unescape).Where(p => p.Length > 0));
                    break;
                case "upperdir": upper = Unescape(Require(key, value)); break;
                case "workdir": result.WorkDir = Unescape(Require(key, value)); break;
                case "userxattr": NoValue(key, value); result.UserXattr = true; break;
                case "redirect_dir":
                    result.RedirectDir = Require(key, value) switch
                    {
                        "on" => RedirectDirMode.On, "follow" => RedirectDirMode.Follow,
                        "nofollow" => RedirectDirMode.NoFollow, "off" => RedirectDirMode.Off,
                        _ => throw BadValue(key, value),
                    };
                    break;
                case "metacopy": result.Metacopy = OnOff(key, value); break;
                case "index": result.Index = OnOff(key, value); break;
                case "xino":
                    result.Xino = Require(key, value) is "on" or "off" or "auto" ? value! : throw BadValue(key, value);
                    break;
                default:
                    ParseCommon(result, key, value, item);
                    break;
            }
        }
        if (lowers.Count == 0) throw new UnionConfigException("missing option 'lowerdir': overlay syntax needs at least one lower directory", "lowerdir");
        if (upper is not null && result.WorkDir is null) throw new UnionConfigException("option 'upperdir' needs 'workdir'", "workdir");
        if (upper is null && result.WorkDir is not null) throw new UnionConfigException("option 'workdir' given without 'upperdir'", "workdir");
        if (upper is not null) result.Branches.Add(new BranchSpec(upper, BranchMode.ReadWrite));
        foreach (var lower in lowers) result.Branches.Add(new BranchSpec(lower, BranchMode.ReadOnly));
        return result;
    }

    /// <summary>Parses a mergerfs branch list (<c>/a=RW:/b=RO</c>, default RW) plus optional comma options.</summary>
    public static UnionOptions ParseBranchList(string branches, string? options = null)
    {
        var result = new UnionOptions();
        foreach (var part in SplitEscaped(branches, ':'))
        {
            if (part.Length == 0) continue;
            int eq = LastIndexOfUnescaped(part, '=');
            string path = Unescape(eq < 0 ? part : part[..eq]);
            var mode = eq < 0 ? BranchMode.ReadWrite : part[(eq + 1)..].ToUpperInvariant() switch
            {
                "RW" => BranchMode.ReadWrite,
                "RO" => BranchMode.ReadOnly,
                "NC" => BranchMode.NoCreate,
                var m => throw new UnionConfigException($"branch '{path}': unknown mode '{m}' (expected RW, RO or NC)", path),
            };
            if (path.Length == 0) throw new UnionConfigException($"empty branch path in '{branches}'", branches);
            result.Branches.Add(new BranchSpec(path, mode));
        }
        if (result.Branches.Count == 0) throw new UnionConfigException("no branches given", branches);
        if (options is not null)
        {
            foreach (var item in SplitEscaped(options, ','))
            {
                if (item.Length == 0) continue;
                int eq = IndexOfUnescaped(item, '=');
                string key = eq < 0 ? item : item[..eq];
                string? value = eq < 0 ? null : item[(eq + 1)..];
                if (key == "userxattr") { NoValue(key, value); result.UserXattr = true; continue; }
                ParseCommon(result, key, value, item);
            }
        }
        return result;
    }

    private static void ParseCommon(UnionOptions result, string key, string? value, string item)
    {
        if (key.StartsWith("category.", StringComparison.Ordinal) || key.StartsWith("func.", StringComparison.Ordinal))
        {
            string op = key[(key.IndexOf('.') + 1)..];
            var policy = Policy.Parse(Require(key, value)) ?? throw BadValue(key, value);
            // category.create covers every creating operation; func.create only file creation.
            if (key == "func.create") op = "mknod";
            if (!result.Policies.Set(op, policy))
                throw new UnionConfigException($"unknown option '{key}': expected category.create, func.create, func.mkdir or func.copyup", key);
            return;
        }
        if (GenericFlags.Contains(item) || (value is not null && GenericValued.Contains(key)) || (value is null && GenericFlags.Contains(key)))
        {
            result.MountFlags[key] = value;
            return;
        }
        throw new UnionConfigException($"unknown option '{key}'", key);
    }

    private static string Require(string key, string? value) =>
        string.IsNullOrEmpty(value) ? throw new UnionConfigException($"option '{key}' needs a value", key) : value;

    private static void NoValue(string key, string? value)
    {
        if (value is not null) throw new UnionConfigException($"option '{key}' takes no value", key);
    }

    private static bool OnOff(string key, string? value) => Require(key, value) switch
    {
        "on" => true, "off" => false, _ => throw BadValue(key, value),
    };

    private static UnionConfigException BadValue(string key, string? value) =>
        new($"option '{key}': invalid value '{value}'", key);

    /// <summary>Splits on <paramref name="sep"/> not preceded by a backslash; escapes are kept for later unescaping.</summary>
    internal static List<string> SplitEscaped(string s, char sep)
    {
        var parts = new List<string>();
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length) { sb.Append(s[i]).Append(s[i + 1]); i++; continue; }
            if (s[i] == sep) { parts.Add(sb.ToString()); sb.Clear(); continue; }
            sb.Append(s[i]);
        }
        parts.Add(sb.ToString());
        return parts;
    }

    internal static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length) i++;
            sb.Append(s[i]);
        }
        return sb.ToString();
    }

    private static int IndexOfUnescaped(string s, char c)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\') { i++; continue; }
            if (s[i] == c) return i;
        }
        return -1;
    }

    private static int LastIndexOfUnescaped(string s, char c)
    {
        int found = -1;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\') { i++; continue; }
            if (s[i] == c) found = i;
        }
        return found;
    }
}
