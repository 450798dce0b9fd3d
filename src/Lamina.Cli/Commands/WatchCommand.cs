using System.Globalization;
using System.Text;
using System.Text.Json;
using Lamina.Cli.Control;
using Lamina.Watches;

namespace Lamina.Cli.Commands;

/// <summary>
/// `lamina watch [-m] [-r] [-e EVENTS] [-t SECONDS] [-q] [--format FMT] [--json] [--no-dereference] PATH...`
/// and `lamina watch --attach ID MOUNTPOINT`: events of a Lamina mount, including changes made
/// directly in its branches, printed the way `inotifywait` prints them ("DIR/ EVENTS NAME").
/// </summary>
public static class WatchCommand
{
    public const string Usage = "watch [-m] [-r] [-e EVENTS] [-t SECONDS] [-q] [--format FMT] [--json] [--reconnect SECONDS] PATH...";

    public static int Run(string[] args)
    {
        bool monitor = false, recursive = false, json = false, quiet = false, noFollow = false;
        uint mask = 0;
        string? format = null;
        int? attach = null;
        double timeout = 0, reconnect = 60;
        var paths = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new CommandLineException($"watch: {a} needs a value");
            switch (a)
            {
                case "-m" or "--monitor": monitor = true; break;
                case "-r" or "--recursive": recursive = true; break;
                case "-q" or "--quiet" or "-qq": quiet = true; break;
                case "--json": json = true; break;
                case "--no-dereference": noFollow = true; break;
                case "--format": format = Value(); break;
                case "-t" or "--timeout": timeout = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--reconnect": reconnect = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--attach": attach = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "-e" or "--event":
                    var names = Value();
                    if (!InotifyMask.TryParse(names, out uint m)) throw new CommandLineException($"watch: unknown event in '{names}'");
                    mask |= m;
                    break;
                case "--": paths.AddRange(args[(i + 1)..]); i = args.Length; break;
                default:
                    if (a.StartsWith('-') && a.Length > 1) throw new CommandLineException($"watch: unknown option {a} (usage: lamina {Usage})");
                    paths.Add(a);
                    break;
            }
        }
        if (paths.Count == 0) throw new CommandLineException($"watch: no path given (usage: lamina {Usage})");
        if (mask == 0) mask = InotifyMask.AllEvents;
        if (recursive) mask |= InotifyMask.Recursive;
        if (noFollow) mask |= InotifyMask.DontFollow;

        // Every path must be on one Lamina mount (one daemon, one instance).
        var mounts = StatusCommand.LaminaMounts().Select(m => m.MountPoint.TrimEnd('/')).OrderByDescending(m => m.Length).ToList();
        string? mountPoint = null;
        var unionPaths = new List<string>();
        var shown = new List<string>();
        foreach (var p in paths)
        {
            string full = Path.GetFullPath(p);
            if (!noFollow && new FileInfo(full).LinkTarget is not null && new FileInfo(full).ResolveLinkTarget(true) is { } target) full = target.FullName;
            string? mp = mounts.FirstOrDefault(m => full == m || full.StartsWith(m + "/", StringComparison.Ordinal) || m.Length == 0);
            if (mp is null) return Program.Fail($"{p}: not on a Lamina mount", 1);
            if (mountPoint is not null && mp != mountPoint) return Program.Fail("watch: all paths must be on the same Lamina mount", 1);
            mountPoint = mp;
            unionPaths.Add(full.Length > mp.Length ? full[(mp.Length + 1)..] : "");
            shown.Add(Directory.Exists(full) && !p.EndsWith('/') ? p + "/" : p);
        }

        if (!quiet) Console.Error.WriteLine(recursive ? "Setting up watches.  Beware: since -r was given, this may take a while!" : "Setting up watches.");
        var client = attach is int id ? WatchClient.Attach(mountPoint!, id) : WatchClient.Open(mountPoint!, mask, unionPaths);
        try
        {
            return Stream(ref client, mountPoint!, unionPaths, shown, quiet, monitor, json, format, timeout, reconnect);
        }
        finally { client?.Dispose(); }
    }

    private static int Stream(ref WatchClient? client, string mountPoint, List<string> unionPaths, List<string> shown, bool quiet, bool monitor,
        bool json, string? format, double timeout, double reconnect)
    {
        if (client is null) return Program.Fail($"{mountPoint}: no Lamina daemon answers for this mount point", 1);
        foreach (var err in client.Errors) Console.Error.WriteLine($"Couldn't watch {err}");
        if (client.Watches.Count == 0) return 1;
        if (!quiet) Console.Error.WriteLine("Watches established.");

        // wd → what inotifywait prints as %w: the path as given (directories with a trailing slash).
        var display = new Dictionary<int, string>();
        foreach (var (wd, unionPath) in client.Watches)
        {
            int index = unionPaths.IndexOf(unionPath);
            string full = Path.Combine(mountPoint!, unionPath);
            display[wd] = index >= 0 ? shown[index] : Directory.Exists(full) ? full.TrimEnd('/') + "/" : full;
        }

        if (timeout > 0)
        {
            // inotifywait -t: exit 2 when nothing happened in time.
            var timer = new Timer(_ => Environment.Exit(2), null, TimeSpan.FromSeconds(timeout), Timeout.InfiniteTimeSpan);
            GC.KeepAlive(timer);
        }
        var live = new HashSet<int>(client.Watches.Keys);
        var stdout = Console.Out;
        while (true)
        {
            if (client.Next() is not { } e)
            {
                // The daemon stopped (or died): the next daemon of this mount point restores the instance
                // with the same wds; reconnect and go on. Watches that did not come back end.
                var again = reconnect > 0 ? WatchClient.Reattach(mountPoint, client.InstanceId, TimeSpan.FromSeconds(reconnect)) : null;
                var ended = live.Where(wd => again is null || !again.Watches.ContainsKey(wd)).Order().ToList();
                if (again is not null) { client.Dispose(); client = again; }
                foreach (int wd in ended)
                {
                    if (again is null) Print(new StreamedEvent(wd, InotifyMask.Unmount, 0, null));
                    Print(new StreamedEvent(wd, InotifyMask.Ignored, 0, null));
                    live.Remove(wd);
                }
                if (again is null || live.Count == 0) return 0;
                continue;
            }
            Print(e);
            if ((e.Mask & InotifyMask.Ignored) != 0) live.Remove(e.Wd);
            if (!monitor) return 0;
            if (live.Count == 0) return 0; // every watch ended, as inotifywait -m does
        }

        void Print(StreamedEvent e)
        {
            string w = display.GetValueOrDefault(e.Wd, "");
            string? name = e.Name;
            if (name is not null && name.Contains('/'))
            {
                int cut = name.LastIndexOf('/');
                w += name[..(cut + 1)];
                name = name[(cut + 1)..];
            }
            stdout.WriteLine(json ? Json(e, w, name) : format is null ? $"{w} {InotifyMask.Format(e.Mask)} {name}" : Format(format, e, w, name));
            stdout.Flush();
        }
    }

    /// <summary>inotifywait's --format: %w watched path, %f name, %e events, %Xe events separated by X, %c cookie, %T time, %% percent.</summary>
    private static string Format(string fmt, StreamedEvent e, string w, string? name)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < fmt.Length; i++)
        {
            char c = fmt[i];
            if (c != '%' || i + 1 >= fmt.Length) { sb.Append(c); continue; }
            char k = fmt[++i];
            switch (k)
            {
                case 'w': sb.Append(w); break;
                case 'f': sb.Append(name); break;
                case 'e': sb.Append(InotifyMask.Format(e.Mask)); break;
                case 'c': sb.Append(e.Cookie.ToString(CultureInfo.InvariantCulture)); break;
                case 'T': sb.Append(DateTime.Now.ToString("s", CultureInfo.InvariantCulture)); break;
                case '%': sb.Append('%'); break;
                default:
                    if (i + 1 < fmt.Length && fmt[i + 1] == 'e') { sb.Append(InotifyMask.Format(e.Mask, k)); i++; }
                    else sb.Append('%').Append(k);
                    break;
            }
        }
        return sb.ToString();
    }

    private static string Json(StreamedEvent e, string w, string? name)
    {
        using var ms = new MemoryStream();
        using (var j = new Utf8JsonWriter(ms))
        {
            j.WriteStartObject();
            j.WriteNumber("wd", e.Wd);
            j.WriteString("path", w);
            if (name is null) j.WriteNull("name"); else j.WriteString("name", name);
            j.WriteStartArray("events");
            foreach (var n in InotifyMask.Format(e.Mask).Split(',', StringSplitOptions.RemoveEmptyEntries)) j.WriteStringValue(n);
            j.WriteEndArray();
            j.WriteNumber("mask", e.Mask);
            j.WriteNumber("cookie", e.Cookie);
            j.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
