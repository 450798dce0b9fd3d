namespace Lamina.Tracking;

/// <summary>
/// Drops what a transport's kernel cached of the union (FUSE notifications): the branch tracker calls
/// it for every change made outside the union. Never called from inside a request handler (the
/// kernel would wait for the directory lock the request holds).
/// </summary>
public interface IKernelCacheInvalidator
{
    /// <summary>A name in a directory now means something else (or nothing); the directory's listing and attributes too.</summary>
    void EntryChanged(UnionNode dir, string name);

    /// <summary>A name was removed; <paramref name="child"/> is the node it named when known.</summary>
    void EntryDeleted(UnionNode dir, string name, UnionNode? child);

    /// <summary>An object's data and attributes changed.</summary>
    void ObjectChanged(UnionNode node);

    /// <summary>Only an object's attributes changed (its cached data stays good).</summary>
    void AttributesChanged(UnionNode node) => ObjectChanged(node);

    /// <summary>Anything may have changed (events were lost): every cached name of the mount is to be checked again.</summary>
    void NamesLost() { }
}
