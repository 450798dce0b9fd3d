using System.Globalization;

namespace Lamina.Cli.Commands;

/// <summary>
/// The arguments of `lamina mount`, in the forms fuse-overlayfs, mount(8)/mount.fuse3 and
/// mergerfs users type: options may come before or after the operands, -o may repeat, and
/// generic mount options (rw, dev, suid, noauto, _netdev, x-*, ...) are accepted.
/// </summary>
public sealed class MountArguments
{
    public bool Foreground { get; private set; }
    public bool Debug { get; private set; }
    public string? Source { get; private set; }
    public string MountPoint { get; private set; } = "";

    /// <summary>Options for the union engine (lowerdir=..., policies, ...), in order.</summary>
    public List<string> EngineOptions { get; } = [];

    public string? FsName { get; private set; }
    public bool AllowOther { get; private set; }
    public bool ReadOnly { get; private set; }
    public bool NoSuid { get; private set; }
    public bool NoDev { get; private set; }
    public bool NoExec { get; private set; }
    public bool NoAtime { get; private set; }
    public Fuse.PassthroughMode Passthrough { get; private set; } = Fuse.PassthroughMode.Auto;
    /// <summary>Timeouts for what the branch tracker cannot follow (and, when given, for everything).</summary>
    public TimeSpan EntryTimeout { get; private set; } = TimeSpan.FromSeconds(1);
    public TimeSpan AttrTimeout { get; private set; } = TimeSpan.FromSeconds(1);

    /// <summary>Timeouts under directories the branch tracker follows: a day unless timeout options say otherwise.</summary>
    public TimeSpan TrackedEntryTimeout => _entryGiven ? EntryTimeout : TrackedTimeout;
    public TimeSpan TrackedAttrTimeout => _attrGiven ? AttrTimeout : TrackedTimeout;
    public static readonly TimeSpan TrackedTimeout = TimeSpan.FromHours(24);
    private bool _entryGiven, _attrGiven;

    /// <summary>Follow the branches for changes made outside the mount (tracking=off: short timeouts everywhere, as with no tracker).</summary>
    public bool Tracking { get; private set; } = true;
    /// <summary>How long directory stacks are trusted before branch directories are checked again (default: the entry timeout).</summary>
    public TimeSpan? Revalidate { get; private set; }
    public int? Workers { get; private set; }
    public string? LogFile { get; private set; }
    /// <summary>locks=mirror (default), local or mandatory: see Lamina.Locks.UnionLocks.</summary>
    public string LockMode { get; private set; } = "mirror";
    /// <summary>fuse-overlayfs ID mapping: STORED:SHOWN:COUNT ranges, and squashing (see Fuse.OwnerMap).</summary>
    public IReadOnlyList<Fuse.OwnerMap.Range> UidMapping { get; private set; } = [];
    public IReadOnlyList<Fuse.OwnerMap.Range> GidMapping { get; private set; } = [];
    public bool SquashToRoot { get; private set; }
    public uint? SquashToUid { get; private set; }
    public uint? SquashToGid { get; private set; }
    /// <summary>lock_waiters=N: most blocked lock requests at once; more fail with ENOLCK.</summary>
    public int LockWaiters { get; private set; } = Lamina.Locks.UnionLocks.DefaultMaxWaiters;

    /// <summary>True when the branches come as a mergerfs-style list in the source operand.</summary>
    public bool BranchListSource => Source is not null && !EngineOptions.Any(o => o.StartsWith("lowerdir=", StringComparison.Ordinal) || o.StartsWith("lowerdir+=", StringComparison.Ordinal));

    public static MountArguments Parse(IReadOnlyList<string> args)
    {
        var m = new MountArguments();
        var operands = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "--") { operands.AddRange(args.Skip(i + 1)); break; }
            switch (a)
            {
                case "-f" or "--foreground": m.Foreground = true; continue;
                case "-d" or "--debug": m.Debug = true; m.Foreground = true; continue;
                case "-o":
                    if (i + 1 >= args.Count) throw new CommandLineException("option -o needs a value");
                    m.AddOptions(args[++i]);
                    continue;
                case "-n" or "-s" or "-v": continue; // accepted from mount(8) (no mtab, sloppy, verbose)
                case "-h" or "--help":
                    throw new CommandLineException("usage: lamina mount [-f] [-d] -o lowerdir=...,upperdir=...,workdir=... MOUNTPOINT");
            }
            if (a.StartsWith("-o", StringComparison.Ordinal) && a.Length > 2) { m.AddOptions(a[2..]); continue; }
            if (a.StartsWith('-') && a.Length > 1) throw new CommandLineException($"unknown option '{a}'");
            operands.Add(a);
        }
        switch (operands.Count)
        {
            case 1: m.MountPoint = operands[0]; break;
            case 2: m.Source = operands[0]; m.MountPoint = operands[1]; break;
            case 0: throw new CommandLineException("mount needs a MOUNTPOINT");
            default: throw new CommandLineException($"too many operands: {string.Join(' ', operands)} (expected [SOURCE] MOUNTPOINT)");
        }
        if (!m.BranchListSource && !m.EngineOptions.Any(o => o.StartsWith("lowerdir", StringComparison.Ordinal)))
            throw new CommandLineException("no branches given: use -o lowerdir=...[,upperdir=...,workdir=...] or a branch list like /a=RW:/b=RO");
        return m;
    }

    private void AddOptions(string list)
    {
        foreach (var raw in SplitOptions(list))
        {
            if (raw.Length == 0) continue;
            int eq = raw.IndexOf('=');
            string key = eq < 0 ? raw : raw[..eq];
            string? value = eq < 0 ? null : raw[(eq + 1)..];
            switch (key)
            {
                case "fsname": FsName = value; break;
                case "subtype": break; // always fuse.lamina
                case "allow_other" or "allow_root": AllowOther = true; break;
                case "default_permissions": break; // always on: the kernel checks modes
                case "ro": ReadOnly = true; EngineOptions.Add(raw); break;
                case "rw": ReadOnly = false; break;
                case "nosuid": NoSuid = true; break;
                case "nodev": NoDev = true; break;
                case "noexec": NoExec = true; break;
                case "noatime": NoAtime = true; break;
                case "suid" or "dev" or "exec" or "atime" or "relatime" or "strictatime" or "nodiratime" or "lazytime"
                    or "auto" or "noauto" or "user" or "nouser" or "users" or "owner" or "group" or "_netdev"
                    or "nofail" or "defaults" or "async" or "sync" or "dirsync" or "loop" or "context" or "fscontext"
                    or "defcontext" or "rootcontext" or "fsync" or "noacl" or "volatile":
                    break; // generic mount(8) options: meaningful to mount(8), harmless here
                case "passthrough":
                    Passthrough = value switch
                    {
                        null or "on" or "1" or "true" => Fuse.PassthroughMode.On,
                        "auto" => Fuse.PassthroughMode.Auto,
                        "upper" => Fuse.PassthroughMode.Upper,
                        "off" or "0" or "false" => Fuse.PassthroughMode.Off,
                        _ => throw new CommandLineException($"option passthrough= takes auto, upper, on or off, not '{value}'"),
                    };
                    break;
                case "nopassthrough": Passthrough = Fuse.PassthroughMode.Off; break;
                case "entry_timeout": EntryTimeout = Seconds(key, value); _entryGiven = true; break;
                case "attr_timeout": AttrTimeout = Seconds(key, value); _attrGiven = true; break;
                case "timeout": EntryTimeout = AttrTimeout = Seconds(key, value); _entryGiven = _attrGiven = true; break;
                case "tracking":
                    Tracking = value switch
                    {
                        null or "on" => true,
                        "off" => false,
                        _ => throw new CommandLineException($"option tracking= takes on or off, not '{value}'"),
                    };
                    break;
                case "revalidate": Revalidate = Seconds(key, value); break;
                case "workers" or "threads": Workers = Int(key, value); break;
                case "log": LogFile = value; break;
                case "lock_waiters": LockWaiters = Int(key, value); break;
                case "locks":
                    LockMode = value is "mirror" or "local" or "mandatory" ? value
                        : throw new CommandLineException($"option locks= takes mirror, local or mandatory, not '{value}'");
                    break;
                case "uidmapping" or "gidmapping":
                    if (key == "uidmapping") UidMapping = Ranges(key, value ?? ""); else GidMapping = Ranges(key, value ?? "");
                    _lastMapping = key;
                    continue;
                case "squash_to_root": SquashToRoot = true; break;
                case "squash_to_uid": SquashToUid = Id(key, value); break;
                case "squash_to_gid": SquashToGid = Id(key, value); break;
                case "xattr_permissions":
                    throw new CommandLineException("option xattr_permissions= (fuse-overlayfs's ownership kept in an xattr, which containers/storage asks for with force_mask) is not supported");
                default:
                    if (_lastMapping is { } mapping && IsTriple(raw))
                    {
                        // The man page's form uidmapping=0:1000:1,1:110000:65536 puts the next
                        // triple after a comma, where it arrives as an option of its own.
                        var more = Ranges(mapping, raw);
                        if (mapping == "uidmapping") UidMapping = [.. UidMapping, .. more]; else GidMapping = [.. GidMapping, .. more];
                        continue;
                    }
                    if (key.StartsWith("x-", StringComparison.Ordinal)) break; // userspace-only fstab options
                    EngineOptions.Add(raw);
                    break;
            }
            _lastMapping = null; // only a triple right after uidmapping=/gidmapping= continues it
        }
    }

    private string? _lastMapping;

    private static bool IsTriple(string raw)
    {
        var parts = raw.Split(':', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 3 && parts.Length % 3 == 0 && parts.All(p => p.Length > 0 && p.All(char.IsAsciiDigit));
    }

    private static IReadOnlyList<Fuse.OwnerMap.Range> Ranges(string key, string value)
    {
        try { return Fuse.OwnerMap.ParseRanges(key, value); }
        catch (FormatException ex) { throw new CommandLineException(ex.Message); }
    }

    private static uint Id(string key, string? value) =>
        uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new CommandLineException($"option {key}= needs an id (a whole number from 0 to 4294967295), not '{value}'");

    /// <summary>uidmapping=, gidmapping=, squash_to_*: how owners are shown through the mount (null: as stored).</summary>
    public Fuse.OwnerMap? Owners()
    {
        var map = new Fuse.OwnerMap
        {
            Uids = UidMapping,
            Gids = GidMapping,
            SquashUid = SquashToUid ?? (SquashToRoot ? 0u : null),
            SquashGid = SquashToGid ?? (SquashToRoot ? 0u : null),
            OverflowUid = Fuse.OwnerMap.KernelOverflowId(uid: true),
            OverflowGid = Fuse.OwnerMap.KernelOverflowId(uid: false),
        };
        return map.IsIdentity ? null : map;
    }

    private static TimeSpan Seconds(string key, string? value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s >= 0
            ? TimeSpan.FromSeconds(s)
            : throw new CommandLineException($"option {key}= needs a number of seconds, not '{value}'");

    private static int Int(string key, string? value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new CommandLineException($"option {key}= needs a positive whole number, not '{value}'");

    /// <summary>
    /// Splits on commas that are neither escaped with a backslash (overlayfs escapes ',' and ':'
    /// in paths that way) nor inside double quotes (containers/storage quotes SELinux contexts,
    /// which contain commas).
    /// </summary>
    public static IEnumerable<string> SplitOptions(string list)
    {
        var current = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < list.Length; i++)
        {
            char c = list[i];
            if (c == '\\' && i + 1 < list.Length) { current.Append(c).Append(list[++i]); continue; }
            if (c == '"') quoted = !quoted;
            if (c == ',' && !quoted) { yield return current.ToString(); current.Clear(); continue; }
            current.Append(c);
        }
        yield return current.ToString();
    }
}
