using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Cli.Control;

/// <summary>
/// Watches survive a restart of the mount daemon (W2b). The daemon keeps its watch table in
/// <see cref="ControlPaths.WatchStateFor"/>: every instance with its id, wds, masks, union paths and
/// cursor, and the branch watcher's snapshot of each followed directory. The file is rewritten
/// (temporary file, fsync, rename, so a crash leaves the old or the new one) soon after every change
/// of a table, at least every second while the snapshot changes, and once more on SIGTERM, then with
/// the pending events and marked clean. A daemon started later for the same branches at the same
/// mount point rebuilds every instance with its id and wds, compares the snapshot with the branches
/// as they are now and reports each difference as an event (changes made while no daemon ran), and
/// after an unclean stop (a crash, kill -9) queues IN_Q_OVERFLOW first: events of the last moments
/// may be lost. Clients reattach with "watch-attach ID"; an instance nobody reattaches within
/// <see cref="ReattachGrace"/> ends.
/// </summary>
public sealed partial class ControlServer
{
    private const string StateMagic = "lamina-watch-state 1";
    private readonly object _stateGate = new();
    private readonly AutoResetEvent _stateWake = new(false);
    private readonly ConcurrentDictionary<int, DateTime> _awaitingClient = new();
    private readonly ConcurrentDictionary<int, Task> _clientGone = new(); // streamed instance → its command reader, done once the client left
    private Thread? _saver;
    private volatile bool _tableDirty;
    private volatile bool _suspended;
    private volatile bool _ended; // unmounted for good: nothing is saved any more
    private long _savedGeneration = -1;
    private int _streams;
    private Action<string>? _stateLog;

    /// <summary>How long a restored instance waits for its client (LAMINA_WATCH_REATTACH_SECONDS, default 120).</summary>
    public static TimeSpan ReattachGrace =>
        double.TryParse(Environment.GetEnvironmentVariable("LAMINA_WATCH_REATTACH_SECONDS"), CultureInfo.InvariantCulture, out double s) && s > 0
            ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(120);

    private string StateFile => ControlPaths.WatchStateFor(_mountPoint);

    /// <summary>Which branches the saved table belongs to: restored only by a daemon over the same ones.</summary>
    private string BranchSignature => string.Join(":", _union.Branches.Select(b => Uri.EscapeDataString(b.ToString())));

    /// <summary>Registers an instance under its id; its table changes mark the state for saving.</summary>
    private void Register(int id, WatchInstance instance)
    {
        _watchInstances[id] = instance;
        instance.TableChanged += _ => MarkDirty();
        instance.Closed += _ => MarkDirty();
        MarkDirty();
    }

    private void MarkDirty()
    {
        _tableDirty = true;
        _stateWake.Set();
    }

    /// <summary>Rebuilds the watch table a previous daemon left for this mount point (before the socket accepts anyone).</summary>
    private void RestoreWatchState(Action<string>? log)
    {
        _stateLog = log;
        string file = StateFile;
        try
        {
            if (!File.Exists(file)) return;
            var lines = File.ReadAllLines(file, Encoding.UTF8);
            if (lines.Length < 3 || lines[0] != StateMagic) { log?.Invoke($"watch state {file}: not recognised, ignored"); File.Delete(file); return; }
            if (lines[1] != "branches " + BranchSignature) { log?.Invoke($"watch state {file}: other branches, ignored"); File.Delete(file); return; }
            bool clean = lines[2] == "clean 1";
            EnsureBranchWatcher();
            var started = System.Diagnostics.Stopwatch.StartNew();
            int instances = 0, watches = 0, maxId = 0;
            var deadline = DateTime.UtcNow + ReattachGrace;
            int i = 3;
            while (i < lines.Length)
            {
                string header = lines[i++];
                int end = i;
                while (end < lines.Length && !lines[end].StartsWith("--- ", StringComparison.Ordinal)) end++;
                var block = lines[i..end];
                i = end;
                if (header == "--- snapshot") { _branchWatcher!.CompareWithSaved(block); continue; }
                if (!header.StartsWith("--- instance ", StringComparison.Ordinal) || !int.TryParse(header[13..], CultureInfo.InvariantCulture, out int id)) continue;
                var instance = _union.Watches.CreateInstance();
                if (instance.Restore(new StringReader(string.Join('\n', block)), out int restored) != Errno.None) { instance.Dispose(); continue; }
                if (!clean) instance.ReportLostEvents();
                _awaitingClient[id] = deadline;
                Register(id, instance);
                maxId = Math.Max(maxId, id);
                instances++;
                watches += restored;
            }
            InterlockedMax(ref _nextInstance, maxId);
            // The comparison with the saved snapshot runs on the branch watcher's thread: let it finish
            // before anything is saved again, so a second crash cannot lose what it found.
            _branchWatcher?.Drain(TimeSpan.FromSeconds(30));
            log?.Invoke($"watch state: restored {instances} instances, {watches} watches ({(clean ? "clean stop" : "after a crash: IN_Q_OVERFLOW queued")}) in {started.Elapsed.TotalMilliseconds:F0} ms");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            log?.Invoke($"watch state {file}: {ex.Message}");
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    /// <summary>Starts the thread that saves the table after changes and ends instances nobody reattached.</summary>
    private void StartWatchStateSaver()
    {
        _saver = new Thread(SaveLoop) { IsBackground = true, Name = "lamina-watch-state" };
        _saver.Start();
    }

    private void SaveLoop()
    {
        while (!_suspended && !_ended)
        {
            _stateWake.WaitOne(TimeSpan.FromSeconds(1));
            if (_suspended || _ended) return;
            foreach (var (id, until) in _awaitingClient)
                if (DateTime.UtcNow > until && _awaitingClient.TryRemove(id, out _) && _watchInstances.TryRemove(id, out var gone))
                {
                    _stateLog?.Invoke($"watch instance {id}: no client reattached, ended");
                    gone.Dispose();
                }
            long generation = _branchWatcher?.SnapshotGeneration ?? 0;
            if (!_tableDirty && generation == Interlocked.Read(ref _savedGeneration)) continue;
            var took = System.Diagnostics.Stopwatch.StartNew();
            SaveWatchState(clean: false);
            // Bounded cost however large the table: at most a tenth of the time goes into saving.
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Max(100, took.Elapsed.TotalMilliseconds * 9)));
        }
    }

    /// <summary>Writes the state file (temporary file, fsync, rename); none when nobody watches.</summary>
    private void SaveWatchState(bool clean)
    {
        lock (_stateGate)
        {
            if (_suspended || _ended) return;
            _tableDirty = false;
            string file = StateFile;
            try
            {
                // An instance whose client has left ends with its stream: not worth restoring.
                var kept = _watchInstances.Where(kv => !(_clientGone.TryGetValue(kv.Key, out var t) && t.IsCompleted)).OrderBy(kv => kv.Key).ToList();
                if (kept.Count == 0)
                {
                    File.Delete(file);
                    Interlocked.Exchange(ref _savedGeneration, _branchWatcher?.SnapshotGeneration ?? 0);
                    return;
                }
                long generation = _branchWatcher?.SnapshotGeneration ?? 0;
                string tmp = file + ".tmp";
                using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
                {
                    using (var w = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true))
                    {
                        w.Write($"{StateMagic}\nbranches {BranchSignature}\nclean {(clean ? 1 : 0)}\n");
                        foreach (var (id, i) in kept)
                        {
                            w.Write(string.Create(CultureInfo.InvariantCulture, $"--- instance {id}\n"));
                            i.Checkpoint(w, includeEvents: clean);
                        }
                        if (_branchWatcher is { } bw)
                        {
                            w.Write("--- snapshot\n");
                            bw.SaveSnapshot(w);
                        }
                    }
                    stream.Flush(flushToDisk: true);
                }
                File.Move(tmp, file, overwrite: true);
                Interlocked.Exchange(ref _savedGeneration, generation);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _stateLog?.Invoke($"watch state {file}: {ex.Message}");
            }
        }
    }

    /// <summary>
    /// The mount was taken away from outside (`umount`, `lamina umount`), not stopped for a restart:
    /// nothing is kept for a next daemon. The watches end as the kernel ends them at unmount, with
    /// IN_UNMOUNT and IN_IGNORED when the union is disposed; <see cref="AwaitWatchStreams"/> then
    /// lets the streams pass those on, and each `lamina watch` ends at once instead of waiting to
    /// reconnect.
    /// </summary>
    public void EndWatches()
    {
        _branchWatcher?.Stop();
        lock (_stateGate)
        {
            _ended = true;
            try { File.Delete(StateFile); } catch (IOException) { }
        }
        _stateWake.Set();
        _saver?.Join(TimeSpan.FromSeconds(2));
    }

    /// <summary>Waits (up to <paramref name="within"/>) until every watch stream has ended.</summary>
    public void AwaitWatchStreams(TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (Volatile.Read(ref _streams) > 0 && DateTime.UtcNow < deadline) Thread.Sleep(20);
    }

    /// <summary>
    /// The daemon is stopping: save the table once more, with the pending events, marked clean; stop
    /// accepting; end every watch stream with "suspend" so its client reconnects to the next daemon.
    /// The watches themselves are not ended (no IN_UNMOUNT or IN_IGNORED goes out).
    /// </summary>
    public void SuspendWatches()
    {
        _branchWatcher?.Stop();
        SaveWatchState(clean: true);
        _suspended = true;
        _stateWake.Set();
        _socket.Dispose();
        try { File.Delete(_path); } catch (IOException) { }
        AwaitWatchStreams(TimeSpan.FromSeconds(2));
        _saver?.Join(TimeSpan.FromSeconds(2));
    }
}
