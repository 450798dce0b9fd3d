using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

/// <summary>
/// Messages the server sends the kernel unasked: drop cached attributes, data or names, push
/// data into the page cache, or fetch it back.
///
/// Do not send an entry notification for a directory from inside a request on that directory:
/// the kernel holds the directory's lock while it waits for the reply, and the notification
/// waits for the same lock.
/// </summary>
public sealed unsafe class FuseNotifier
{
    private readonly FuseSession _session;
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<byte[]>> _retrievals = new();
    private long _nextRetrieve;

    internal FuseNotifier(FuseSession session) => _session = session;

    /// <summary>Drops cached attributes of a node, and its cached data from <paramref name="offset"/> (length 0 = to the end; offset -1 = attributes only).</summary>
    public Errno InvalidateInode(ulong nodeId, long offset = 0, long length = 0) =>
        Send(NotifyCode.InvalInode, new NotifyInvalInodeOut { Ino = nodeId, Off = offset, Len = length }, default, default);

    /// <summary>Drops a cached name (and, unless <paramref name="expireOnly"/>, the dentry itself).</summary>
    public Errno InvalidateEntry(ulong parent, ReadOnlySpan<byte> name, bool expireOnly = false) =>
        Send(NotifyCode.InvalEntry, new NotifyInvalEntryOut { Parent = parent, NameLen = (uint)name.Length, Flags = expireOnly ? FuseConstants.ExpireOnly : 0 }, name, default);

    /// <summary>Tells the kernel a name was deleted: it drops the dentry and, if it still points at <paramref name="child"/>, reports the deletion to inotify watchers on the mount.</summary>
    public Errno Delete(ulong parent, ulong child, ReadOnlySpan<byte> name) =>
        Send(NotifyCode.Delete, new NotifyDeleteOut { Parent = parent, Child = child, NameLen = (uint)name.Length }, name, default);

    /// <summary>
    /// Makes every name the kernel has cached for the mount invalid at its next use (FUSE_NOTIFY_INC_EPOCH,
    /// protocol 7.44): one message instead of one per name, when the server cannot tell which changed.
    /// ENOSYS when the kernel does not speak it.
    /// </summary>
    public Errno IncrementEpoch() =>
        _session.Connection.ProtocolMinor < 44 ? Errno.ENOSYS : SendHeaderOnly(NotifyCode.IncEpoch);

    private Errno SendHeaderOnly(NotifyCode code)
    {
        var header = new OutHeader { Len = (uint)sizeof(OutHeader), Error = (int)code, Unique = 0 };
        nint n;
        do { n = Sys.Write(_session.DeviceFd, (byte*)&header, (nuint)sizeof(OutHeader)); } while (n < 0 && Sys.LastErrno == Errno.EINTR);
        return n < 0 ? Sys.LastErrno : Errno.None;
    }

    /// <summary>Pushes data into the kernel's page cache of a node.</summary>
    public Errno Store(ulong nodeId, long offset, ReadOnlySpan<byte> data) =>
        Send(NotifyCode.Store, new NotifyStoreOut { NodeId = nodeId, Offset = (ulong)offset, Size = (uint)data.Length }, default, data);

    /// <summary>Asks the kernel for the cached data of a node; completes with what it had (possibly less).</summary>
    public Task<byte[]> Retrieve(ulong nodeId, long offset, int size)
    {
        ulong id = (ulong)Interlocked.Increment(ref _nextRetrieve);
        var tcs = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        _retrievals[id] = tcs;
        var e = Send(NotifyCode.Retrieve, new NotifyRetrieveOut { NotifyUnique = id, NodeId = nodeId, Offset = (ulong)offset, Size = (uint)size }, default, default);
        if (e != Errno.None)
        {
            _retrievals.TryRemove(id, out _);
            tcs.TrySetException(new ErrnoException(e, "FUSE retrieve"));
        }
        return tcs.Task;
    }

    internal void CompleteRetrieve(ulong unique, ReadOnlySpan<byte> body)
    {
        if (!_retrievals.TryRemove(unique, out var tcs)) return;
        if (body.Length < sizeof(NotifyRetrieveIn)) { tcs.TrySetResult(Array.Empty<byte>()); return; }
        var r = MemoryMarshal.Read<NotifyRetrieveIn>(body);
        var data = body[sizeof(NotifyRetrieveIn)..];
        tcs.TrySetResult(data[..(int)Math.Min(r.Size, (uint)data.Length)].ToArray());
    }

    private Errno Send<T>(NotifyCode code, in T args, ReadOnlySpan<byte> name, ReadOnlySpan<byte> data) where T : unmanaged
    {
        int nameLen = name.Length > 0 ? name.Length + 1 : 0;
        int len = sizeof(OutHeader) + sizeof(T) + nameLen + data.Length;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(len);
        try
        {
            var span = buffer.AsSpan(0, len);
            MemoryMarshal.Write(span, new OutHeader { Len = (uint)len, Error = (int)code, Unique = 0 });
            MemoryMarshal.Write(span[sizeof(OutHeader)..], in args);
            int pos = sizeof(OutHeader) + sizeof(T);
            if (nameLen > 0)
            {
                name.CopyTo(span[pos..]);
                span[pos + name.Length] = 0;
                pos += nameLen;
            }
            data.CopyTo(span[pos..]);
            fixed (byte* p = buffer)
            {
                nint n;
                do { n = Sys.Write(_session.DeviceFd, p, (nuint)len); } while (n < 0 && Sys.LastErrno == Errno.EINTR);
                return n < 0 ? Sys.LastErrno : Errno.None;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
