using Lamina.Native;
using Lamina.Watches;

namespace Lamina.Tests.Watches;

/// <summary>Watch targets with no filesystem: one key object per path; paths ending in '/' are directories; "missing/..." does not exist.</summary>
public sealed class MemoryTargets : IWatchTargets
{
    private readonly Dictionary<string, object> _keys = [];
    public readonly Dictionary<object, Watch> Attached = new(ReferenceEqualityComparer.Instance);
    public int Pins;

    public Errno Resolve(string path, bool followLast, out WatchTarget target)
    {
        target = default;
        if (path.StartsWith("missing", StringComparison.Ordinal)) return Errno.ENOENT;
        lock (_keys)
        {
            if (!_keys.TryGetValue(path, out var key)) _keys[path] = key = new object();
            target = new WatchTarget(key, path, path.EndsWith('/'));
            Pins++;
        }
        return Errno.None;
    }

    public void Attach(Watch watch) { lock (_keys) Attached[watch.Target] = watch; }
    public void Detach(Watch watch) { lock (_keys) { Attached.Remove(watch.Target); Pins--; } }
    public void Unpin(object key) { lock (_keys) Pins--; }

    public object KeyOf(string path) { lock (_keys) return _keys[path]; }
}
