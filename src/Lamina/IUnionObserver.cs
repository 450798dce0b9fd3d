using Lamina.Native;

namespace Lamina;

/// <summary>What changed underneath the union, found by the engine while resolving (a branch changed behind its back).</summary>
/// <param name="Parent">The directory whose entry changed, when known.</param>
/// <param name="Name">The entry name in <paramref name="Parent"/>, when known.</param>
/// <param name="Node">The node whose object changed, when known.</param>
/// <param name="Reason">A short human-readable reason.</param>
public sealed record BranchChange(UnionNode? Parent, string? Name, UnionNode? Node, string Reason);

/// <summary>
/// The one way the engine tells what hangs off it what it did: the lock table, the watch hub, the
/// branch watcher, the branch tracker and a transport all subscribe here
/// (<see cref="UnionFileSystem.Observe"/>), and the engine never calls any of them by name.
/// </summary>
/// <remarks>
/// <para>Every method has an empty default, so an observer implements only what it needs. Calls
/// come on the thread of the operation, after the change took effect in the branches and, for
/// namespace changes, under the engine's namespace lock, so they arrive in the order the changes
/// happened. An observer must not call back into an operation that changes the union.</para>
/// <para>Order: observers are called in the order they subscribed, except those that subscribed
/// with <c>first: true</c>, which come before all others. An observer that must record a change as the
/// engine's own before anyone reports it (the branch watcher) subscribes first.</para>
/// </remarks>
public interface IUnionObserver
{
    // ---- names ---------------------------------------------------------------------------------

    /// <summary>A name was made in <paramref name="parent"/> (create, mkdir, mknod, symlink, link); <paramref name="node"/> is what it names.</summary>
    void EntryCreated(UnionNode parent, string name, UnionNode? node) { }

    /// <summary>A name was removed (unlink, rmdir); <paramref name="node"/> is what it named, when the engine knew it.</summary>
    void EntryRemoved(UnionNode parent, string name, UnionNode? node, bool isDirectory) { }

    /// <summary>
    /// A name was renamed. <paramref name="replaced"/> is what the new name named before: with
    /// <paramref name="exchange"/> it now has the old name, otherwise it is gone from the view.
    /// </summary>
    void EntryRenamed(UnionNode parent, string name, UnionNode newParent, string newName, UnionNode? moved, UnionNode? replaced, bool exchange) { }

    // ---- objects -------------------------------------------------------------------------------

    /// <summary>
    /// An object was changed or used through the union: inotify event bits (IN_MODIFY, IN_ATTRIB,
    /// IN_ACCESS, IN_OPEN), as the kernel's fsnotify hooks raise them for the same call.
    /// </summary>
    void ObjectChanged(UnionNode node, uint events) { }

    /// <summary>An object's link count changed (a name made or removed for it elsewhere).</summary>
    void LinkCountChanged(UnionNode node) { }

    // ---- copy-up -------------------------------------------------------------------------------

    /// <summary>
    /// Copy-up built <paramref name="node"/>'s new file as <paramref name="tempName"/> in the work
    /// directory <paramref name="workFd"/> and is about to rename it into place. Anything other than
    /// <see cref="Errno.None"/> refuses the copy-up with that error, and the copy is discarded.
    /// </summary>
    Errno BeforePublish(UnionNode node, int workFd, string tempName) => Errno.None;

    /// <summary>A copy-up was published and the node's open handles moved onto the copy.</summary>
    void AfterPublish(UnionNode node) { }

    // ---- handles -------------------------------------------------------------------------------

    /// <summary>A handle is about to close, while it still counts as open (and as a writer, when it was one).</summary>
    void HandleClosing(UnionNode node, int openFlags) { }

    /// <summary>A file handle was released: what was taken through it (locks) goes with it.</summary>
    void HandleReleased(UnionHandle handle) { }

    /// <summary>A file or directory handle closed (IN_CLOSE_WRITE or IN_CLOSE_NOWRITE by <paramref name="openFlags"/>).</summary>
    void HandleClosed(UnionNode node, int openFlags) { }

    // ---- node identity ---------------------------------------------------------------------------

    /// <summary>
    /// A node entered the engine's table (looked up, made, listed with its attributes), or left it
    /// (forgotten by every holder). Called under the table's lock: an observer may only note it.
    /// </summary>
    void NodeAdded(UnionNode node) { }

    /// <inheritdoc cref="NodeAdded"/>
    void NodeDropped(UnionNode node) { }

    // ---- the branches --------------------------------------------------------------------------

    /// <summary>Resolution found a branch changed behind the engine's back (an object replaced, a branch removed).</summary>
    void BranchChanged(BranchChange change) { }

    /// <summary>The union is going away.</summary>
    void Unmounting() { }
}
