using Lamina.Native;
using Lamina.Watches;

namespace Lamina;

/// <summary>
/// The engine's side of <see cref="IUnionObserver"/>: subscription, and the calls the operations make
/// (each marked "observers" where it stands). The list is copied on write, so a call costs one array
/// walk and takes no lock.
/// </summary>
public sealed partial class UnionFileSystem
{
    private IUnionObserver[] _observers = [];
    private int _firstObservers; // how many at the front of _observers subscribed with first: true
    private readonly object _observersGate = new();

    /// <summary>Subscribes <paramref name="observer"/> until the returned object is disposed.</summary>
    /// <param name="first">Called before every observer that did not ask to be first (see <see cref="IUnionObserver"/>).</param>
    public IDisposable Observe(IUnionObserver observer, bool first = false)
    {
        lock (_observersGate)
        {
            var list = _observers.ToList();
            if (first) list.Insert(_firstObservers++, observer);
            else list.Add(observer);
            Volatile.Write(ref _observers, [.. list]);
        }
        return new Subscription(this, observer, first);
    }

    private sealed class Subscription(UnionFileSystem fs, IUnionObserver observer, bool first) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            lock (fs._observersGate)
            {
                var list = fs._observers.ToList();
                if (!list.Remove(observer)) return;
                if (first) fs._firstObservers--;
                Volatile.Write(ref fs._observers, [.. list]);
            }
        }
    }

    private IUnionObserver[] Observers => Volatile.Read(ref _observers);

    private void NotifyNodeAdded(UnionNode node)
    {
        foreach (var o in Observers) o.NodeAdded(node);
    }

    private void NotifyNodeDropped(UnionNode node)
    {
        foreach (var o in Observers) o.NodeDropped(node);
    }

    internal void NotifyCreated(UnionNode parent, string name, UnionNode? node)
    {
        foreach (var o in Observers) o.EntryCreated(parent, name, node);
    }

    internal void NotifyRemoved(UnionNode parent, string name, UnionNode? node, bool isDir)
    {
        foreach (var o in Observers) o.EntryRemoved(parent, name, node, isDir);
    }

    internal void NotifyRenamed(UnionNode parent, string name, UnionNode newParent, string newName, UnionNode? moved, UnionNode? replaced, bool exchange)
    {
        foreach (var o in Observers) o.EntryRenamed(parent, name, newParent, newName, moved, replaced, exchange);
    }

    /// <summary>An object's data or attributes changed, or it was opened or read.</summary>
    internal void NotifyObject(UnionNode node, uint events)
    {
        if (events == 0) return;
        foreach (var o in Observers) o.ObjectChanged(node, events);
    }

    internal void NotifyOpened(UnionNode node) => NotifyObject(node, InotifyMask.Open);
    internal void NotifyAccessed(UnionNode node) => NotifyObject(node, InotifyMask.Access);
    internal void NotifyModified(UnionNode node) => NotifyObject(node, InotifyMask.Modify);
    internal void NotifyAttrib(UnionNode node) => NotifyObject(node, InotifyMask.Attrib);

    internal void NotifyLinkCount(UnionNode node)
    {
        foreach (var o in Observers) o.LinkCountChanged(node);
    }

    private Errno NotifyBeforePublish(ulong ino, int workFd, string tempName)
    {
        var observers = Observers;
        if (observers.Length == 0 || _nodes.FindByIno(ino) is not { } node) return Errno.None;
        foreach (var o in observers)
        {
            var e = o.BeforePublish(node, workFd, tempName);
            if (e != Errno.None) return e;
        }
        return Errno.None;
    }

    private void NotifyAfterPublish(UnionNode node)
    {
        foreach (var o in Observers) o.AfterPublish(node);
    }

    internal void NotifyClosing(UnionNode node, int openFlags)
    {
        foreach (var o in Observers) o.HandleClosing(node, openFlags);
    }

    private void NotifyReleased(UnionHandle handle)
    {
        foreach (var o in Observers) o.HandleReleased(handle);
    }

    internal void NotifyClosed(UnionNode node, int openFlags)
    {
        foreach (var o in Observers) o.HandleClosed(node, openFlags);
    }

    private void NotifyBranchChanged(BranchChange change)
    {
        foreach (var o in Observers) o.BranchChanged(change);
    }

    /// <summary>setattr's event bits as the kernel's fsnotify_change picks them.</summary>
    internal static uint SetAttrEvents(SetAttrRequest r)
    {
        uint mask = 0;
        if (r.Uid is not null || r.Gid is not null || r.Mode is not null) mask |= InotifyMask.Attrib;
        if (r.Size is not null) mask |= InotifyMask.Modify;
        bool a = r.ATime is not null || r.ATimeNow, m = r.MTime is not null || r.MTimeNow;
        if (a && m) mask |= InotifyMask.Attrib;
        else if (a) mask |= InotifyMask.Access;
        else if (m) mask |= InotifyMask.Modify;
        return mask;
    }

    /// <summary>Whether a handle opened with <paramref name="openFlags"/> may write.</summary>
    public static bool OpenForWriting(int openFlags) => (openFlags & Sys.O_ACCMODE) != Sys.O_RDONLY;
}
