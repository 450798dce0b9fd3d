namespace Lamina.Watches;

public enum UnionChangeKind { Created, Deleted, Changed, Renamed }

/// <summary>One change as a FileSystemWatcher reports it, with union paths ("" is the root).</summary>
public sealed record UnionChange(UnionChangeKind Kind, string Path, string? OldPath, bool IsDirectory, uint Mask);

/// <summary>
/// A FileSystemWatcher-like view of a union directory (or file): C# events with union paths, renames
/// paired by cookie. Events are raised on the watcher's own thread, in order.
/// </summary>
public sealed class UnionWatcher : IDisposable
{
    public const uint DefaultMask = InotifyMask.Create | InotifyMask.Delete | InotifyMask.Move | InotifyMask.Modify
        | InotifyMask.Attrib | InotifyMask.CloseWrite | InotifyMask.DeleteSelf | InotifyMask.MoveSelf;

    private readonly WatchInstance _instance;
    private readonly Thread _thread;
    private volatile bool _stopping;

    internal UnionWatcher(UnionWatches hub, string path, bool recursive, uint mask)
    {
        _instance = hub.CreateInstance();
        var e = _instance.AddWatch(path, mask | (recursive ? InotifyMask.Recursive : 0), out int wd);
        if (e != Native.Errno.None)
        {
            _instance.Dispose();
            throw new Native.ErrnoException(e, $"watch {path}");
        }
        Wd = wd;
        Path = _instance.FindWatch(wd)!.Path;
        _thread = new Thread(Run) { IsBackground = true, Name = "lamina-watcher" };
        _thread.Start();
    }

    public int Wd { get; }

    /// <summary>The watched union path.</summary>
    public string Path { get; }

    public event Action<UnionChange>? Created, Deleted, Changed, Renamed;

    /// <summary>Every change, including the ones above.</summary>
    public event Action<UnionChange>? Any;

    /// <summary>The queue overflowed: changes were lost (rescan).</summary>
    public event Action? Overflowed;

    /// <summary>The watched object went away (deleted, unmounted): no more events.</summary>
    public event Action? Ended;

    private void Run()
    {
        (string Path, bool Dir, uint Cookie)? pendingFrom = null;
        while (!_stopping)
        {
            var events = _instance.ReadEvents(TimeSpan.FromMilliseconds(pendingFrom is null ? 500 : 20));
            if (events.Count == 0 && pendingFrom is { } lone)
            {
                Raise(new UnionChange(UnionChangeKind.Deleted, lone.Path, null, lone.Dir, InotifyMask.MovedFrom));
                pendingFrom = null;
            }
            foreach (var e in events)
            {
                if (e.Mask == InotifyMask.QOverflow) { Overflowed?.Invoke(); continue; }
                bool dir = (e.Mask & InotifyMask.IsDir) != 0;
                string path = e.Name is null ? Path : UnionPath.Join(Path, e.Name);
                if (pendingFrom is { } from && !((e.Mask & InotifyMask.MovedTo) != 0 && e.Cookie == from.Cookie))
                {
                    Raise(new UnionChange(UnionChangeKind.Deleted, from.Path, null, from.Dir, InotifyMask.MovedFrom));
                    pendingFrom = null;
                }
                if ((e.Mask & InotifyMask.Ignored) != 0) { Ended?.Invoke(); _stopping = true; break; }
                if ((e.Mask & InotifyMask.MovedFrom) != 0) { pendingFrom = (path, dir, e.Cookie); continue; }
                if ((e.Mask & InotifyMask.MovedTo) != 0)
                {
                    string? old = pendingFrom?.Path;
                    pendingFrom = null;
                    Raise(new UnionChange(old is null ? UnionChangeKind.Created : UnionChangeKind.Renamed, path, old, dir, e.Mask));
                    continue;
                }
                var kind = (e.Mask & InotifyMask.Create) != 0 ? UnionChangeKind.Created
                    : (e.Mask & (InotifyMask.Delete | InotifyMask.DeleteSelf)) != 0 ? UnionChangeKind.Deleted
                    : UnionChangeKind.Changed;
                Raise(new UnionChange(kind, path, null, dir, e.Mask));
            }
        }
    }

    private void Raise(UnionChange c)
    {
        (c.Kind switch
        {
            UnionChangeKind.Created => Created,
            UnionChangeKind.Deleted => Deleted,
            UnionChangeKind.Renamed => Renamed,
            _ => Changed,
        })?.Invoke(c);
        Any?.Invoke(c);
    }

    public void Dispose()
    {
        _stopping = true;
        _instance.Dispose();
        if (Thread.CurrentThread != _thread) _thread.Join();
    }
}
