using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Cli.Control;

/// <summary>
/// Watches over the control socket (issue 7). One streaming connection is one watch instance:
///   client: "watch MASKHEX\tPATH\tPATH..." (union paths, percent-escaped; "" is the root) or "watch-attach ID"
///   server: "wd WD PATH" or "error ERRNO PATH" per path, then "ready ID", then one line per event:
///           "event WD MASKHEX COOKIE NAME" (NAME percent-escaped, "-" for none)
///   client, later lines: "add MASKHEX PATH", "rm WD", "setnextwd WD" (answered "ok ..." / "error ..." in the stream)
/// The instance ends with the connection. One-shot requests: "watch-checkpoint FILE", "watch-restore FILE",
/// "watch-list".
/// </summary>
public sealed partial class ControlServer
{
    private readonly ConcurrentDictionary<int, WatchInstance> _watchInstances = new();
    private int _nextInstance;
    private BranchWatcher? _branchWatcher;

    partial void StreamExtension(string verb, string argument, StreamReader reader, StreamWriter writer, ref bool handled)
    {
        if (verb is not ("watch" or "watch-attach")) return;
        handled = true;
        EnsureBranchWatcher();
        WatchInstance instance;
        int id;
        if (verb == "watch-attach")
        {
            if (_suspended)
            {
                writer.Write($"error EAGAIN instance {argument}\n"); // this daemon is stopping: ask the next one
                writer.Flush();
                return;
            }
            if (!int.TryParse(argument, CultureInfo.InvariantCulture, out id) || !_watchInstances.TryGetValue(id, out var found))
            {
                writer.Write($"error ENOENT instance {argument}\n");
                writer.Flush();
                return;
            }
            _awaitingClient.TryRemove(id, out _);
            instance = found;
            foreach (var w in instance.Watches) writer.Write($"wd {w.Wd} {Uri.EscapeDataString(w.Path)}\n");
        }
        else
        {
            var fields = argument.Split('\t');
            if (!uint.TryParse(fields[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint mask))
            {
                writer.Write("error EINVAL mask\n");
                writer.Flush();
                return;
            }
            instance = _union.Watches.CreateInstance();
            id = Interlocked.Increment(ref _nextInstance);
            Register(id, instance);
            foreach (var path in fields.Skip(1).Select(Uri.UnescapeDataString))
            {
                var e = instance.AddWatch(path, mask, out int wd);
                writer.Write(e == Errno.None ? $"wd {wd} {Uri.EscapeDataString(instance.FindWatch(wd)!.Path)}\n" : $"error {e} {Uri.EscapeDataString(path)}\n");
            }
        }
        writer.Write($"ready {id}\n");
        writer.Flush();
        var commands = Task.Run(() => StreamCommands(instance, reader, writer));
        _clientGone[id] = commands;
        Interlocked.Increment(ref _streams);
        try
        {
            while (!commands.IsCompleted && !_suspended)
            {
                var events = instance.ReadEvents(TimeSpan.FromMilliseconds(250));
                if (events.Count == 0) continue;
                lock (writer)
                {
                    foreach (var e in events)
                        writer.Write($"event {e.Wd} {e.Mask:x} {e.Cookie} {(e.Name is null ? "-" : Uri.EscapeDataString(e.Name))}\n");
                    writer.Flush();
                }
            }
            if (_suspended)
                lock (writer)
                {
                    // The table is saved: the client reattaches to the next daemon with the same instance id.
                    writer.Write("suspend\n");
                    writer.Flush();
                }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // the watcher went away
        }
        finally
        {
            _watchInstances.TryRemove(id, out _);
            _clientGone.TryRemove(id, out _);
            instance.Dispose();
            Interlocked.Decrement(ref _streams);
        }
    }

    /// <summary>Commands on an open watch stream; returns at end of input (the watcher closed the connection).</summary>
    private static void StreamCommands(WatchInstance instance, StreamReader reader, StreamWriter writer)
    {
        try
        {
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                var f = line.Split(' ', 3);
                string reply;
                switch (f[0])
                {
                    case "add" when f.Length == 3 && uint.TryParse(f[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint mask):
                        var e = instance.AddWatch(Uri.UnescapeDataString(f[2]), mask, out int wd);
                        reply = e == Errno.None ? $"wd {wd} {f[2]}" : $"error {e} {f[2]}";
                        break;
                    case "rm" when f.Length == 2 && int.TryParse(f[1], CultureInfo.InvariantCulture, out int rm):
                        reply = instance.RemoveWatch(rm) is var re && re == Errno.None ? $"ok rm {rm}" : $"error {re} rm {rm}";
                        break;
                    case "setnextwd" when f.Length == 2 && int.TryParse(f[1], CultureInfo.InvariantCulture, out int next):
                        reply = instance.SetNextWd(next) is var se && se == Errno.None ? $"ok setnextwd {next}" : $"error {se} setnextwd {next}";
                        break;
                    default:
                        reply = $"error EINVAL {line}";
                        break;
                }
                lock (writer)
                {
                    writer.Write(reply + "\n");
                    writer.Flush();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
        }
    }

    partial void AnswerWatches(string verb, string argument, ref string? answer)
    {
        switch (verb)
        {
            case "watch-list":
                var sb = new StringBuilder();
                foreach (var (id, i) in _watchInstances.OrderBy(kv => kv.Key))
                    sb.Append(CultureInfo.InvariantCulture, $"instance {id}: {i.WatchCount} watches, {i.QueuedEvents} queued, next wd cursor {i.WdCursor}\n");
                answer = sb.ToString();
                break;
            case "watch-checkpoint":
                answer = WatchCheckpoint(argument);
                break;
            case "watch-restore":
                answer = WatchRestore(argument);
                break;
        }
    }

    private const string DaemonCheckpointMagic = "lamina-watch-checkpoint 1";

    /// <summary>Every live instance's table (wds, masks, union paths, cursor, pending events) into one file.</summary>
    private string WatchCheckpoint(string file)
    {
        if (!Path.IsPathFullyQualified(file)) return "error: checkpoint needs an absolute file name\n";
        var started = System.Diagnostics.Stopwatch.StartNew();
        int watches = 0, count = 0;
        string tmp = file + ".tmp";
        using (var w = new StreamWriter(tmp, false, new UTF8Encoding(false)))
        {
            w.Write(DaemonCheckpointMagic + "\n");
            foreach (var (id, i) in _watchInstances.OrderBy(kv => kv.Key))
            {
                w.Write($"--- instance {id}\n");
                i.Checkpoint(w);
                watches += i.WatchCount;
                count++;
            }
        }
        File.Move(tmp, file, overwrite: true);
        return $"checkpoint: {count} instances, {watches} watches in {started.Elapsed.TotalMilliseconds:F0} ms\n";
    }

    /// <summary>Rebuilds the instances of a checkpoint with their wds; each can then be streamed with "watch-attach ID".</summary>
    private string WatchRestore(string file)
    {
        if (!File.Exists(file)) return $"error: {file}: no such file\n";
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var reader = new StreamReader(file, Encoding.UTF8);
        if (reader.ReadLine() != DaemonCheckpointMagic) return $"error: {file}: not a Lamina watch checkpoint\n";
        var sb = new StringBuilder();
        var block = new StringBuilder();
        string? header = null;
        void Flush()
        {
            if (header is null) return;
            var instance = _union.Watches.CreateInstance();
            var e = instance.Restore(new StringReader(block.ToString()), out int restored);
            if (e != Errno.None) { instance.Dispose(); sb.Append(CultureInfo.InvariantCulture, $"error: {header}: {e}\n"); }
            else
            {
                int id = Interlocked.Increment(ref _nextInstance);
                Register(id, instance);
                sb.Append(CultureInfo.InvariantCulture, $"restored {header} as instance {id}: {restored} watches\n");
            }
            block.Clear();
        }
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.StartsWith("--- ", StringComparison.Ordinal)) { Flush(); header = line[4..]; continue; }
            block.Append(line).Append('\n');
        }
        Flush();
        EnsureBranchWatcher();
        sb.Append(CultureInfo.InvariantCulture, $"restore: {started.Elapsed.TotalMilliseconds:F0} ms\n");
        return sb.ToString();
    }

    /// <summary>Starts following direct branch changes (real inotify on contributing branch directories) once somebody watches.</summary>
    private void EnsureBranchWatcher()
    {
        if (_branchWatcher is not null) return;
        // The branch tracker tells the kernel of direct changes; where it cannot run, the watcher does for what it follows.
        var bw = new BranchWatcher(_union, _adapter.Tracker is { Unavailable: null } ? null : _adapter.CacheInvalidator);
        if (Interlocked.CompareExchange(ref _branchWatcher, bw, null) is null) bw.Start();
        else bw.Dispose();
    }
}
