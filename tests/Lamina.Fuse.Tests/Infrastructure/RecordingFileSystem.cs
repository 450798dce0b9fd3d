using System.Collections.Concurrent;
using System.Text;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>A tiny in-memory filesystem that records what the session handed it.</summary>
public sealed class RecordingFileSystem : IFuseFileSystem
{
    public const ulong FileNode = 2;
    public static readonly byte[] FileData = Encoding.ASCII.GetBytes("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    public static readonly string[] DirNames = Enumerable.Range(0, 10).Select(i => "e" + i).ToArray();

    public FuseConnectionInfo? Connection;
    public volatile bool Destroyed;
    public readonly ConcurrentQueue<(ulong Node, ulong NLookup)> Forgotten = new();
    public readonly ConcurrentQueue<string> Calls = new();
    public RequestContext LastContext;
    public ulong? LastGetAttrFh;
    public (ulong Offset, byte[] Data)? LastWrite;
    public (string Name, byte[] Value, int Flags)? LastSetXattr;
    public (ulong Parent, string Name, ulong NewParent, string NewName, uint Flags)? LastRename;
    public readonly ConcurrentDictionary<ulong, (TaskCompletionSource<Errno> Tcs, CancellationToken Token, LkIn Request)> Waits = new();

    public void Init(FuseConnectionInfo connection) => Connection = connection;

    public void Destroy() => Destroyed = true;

    public static FuseAttr FileAttr() => new()
    {
        Ino = FileNode, Size = (ulong)FileData.Length, Blocks = 1, Mode = 0x8000 | 0x1a4, NLink = 1, Uid = 1000, Gid = 1000,
        ATime = 1_700_000_000, ATimeNsec = 1, MTime = 1_700_000_001, MTimeNsec = 2, CTime = 1_700_000_002, CTimeNsec = 3, BlkSize = 4096,
    };

    public Errno Lookup(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, out EntryOut entry)
    {
        LastContext = ctx;
        Calls.Enqueue($"lookup {parent} {Encoding.UTF8.GetString(name)}");
        entry = default;
        if (name.SequenceEqual("boom"u8)) throw new InvalidOperationException("a filesystem bug");
        if (parent != FuseConstants.RootId || !name.SequenceEqual("hello"u8)) return Errno.ENOENT;
        entry.NodeId = FileNode;
        entry.Generation = 7;
        entry.SetTimeouts(TimeSpan.FromSeconds(1.25), TimeSpan.FromSeconds(2));
        entry.Attr = FileAttr();
        return Errno.None;
    }

    public void Forget(ulong nodeId, ulong nlookup) => Forgotten.Enqueue((nodeId, nlookup));

    public Errno GetAttr(in RequestContext ctx, ulong nodeId, ulong? fh, out AttrOut attr)
    {
        LastGetAttrFh = fh;
        attr = default;
        if (nodeId != FileNode) return Errno.ENOENT;
        attr.SetTimeout(TimeSpan.FromSeconds(3));
        attr.Attr = FileAttr();
        return Errno.None;
    }

    public Errno Read(in RequestContext ctx, ulong nodeId, in ReadIn request, Span<byte> buffer, out int count)
    {
        int off = (int)Math.Min(request.Offset, (ulong)FileData.Length);
        count = Math.Min(buffer.Length, FileData.Length - off);
        FileData.AsSpan(off, count).CopyTo(buffer);
        return Errno.None;
    }

    public Errno Write(in RequestContext ctx, ulong nodeId, in WriteIn request, ReadOnlySpan<byte> data, out uint written)
    {
        LastWrite = (request.Offset, data.ToArray());
        written = (uint)data.Length;
        return Errno.None;
    }

    public Errno OpenDir(in RequestContext ctx, ulong nodeId, int flags, out OpenOut open)
    {
        open = new OpenOut { Fh = 99, OpenFlags = OpenReplyFlags.CacheDir | OpenReplyFlags.Passthrough, BackingId = 5 };
        return Errno.None;
    }

    public Errno ReadDir(in RequestContext ctx, ulong nodeId, ulong fh, long offset, ref DirEntryBuffer entries)
    {
        for (int i = (int)offset; i < DirNames.Length; i++)
        {
            var name = Encoding.ASCII.GetBytes(DirNames[i]);
            bool added;
            if (entries.IsPlus)
            {
                var e = new EntryOut { NodeId = 100 + (ulong)i, Generation = 1 };
                e.Attr.Ino = 100 + (ulong)i;
                e.Attr.Mode = 0x8000 | 0x1a4;
                added = entries.TryAddPlus(e, i + 1, 8, name);
            }
            else added = entries.TryAdd(100 + (ulong)i, i + 1, 8, name);
            if (!added) break;
        }
        return Errno.None;
    }

    public Errno SetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        LastSetXattr = (Encoding.UTF8.GetString(name), value.ToArray(), flags);
        return Errno.None;
    }

    public Errno Rename(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        LastRename = (parent, Encoding.UTF8.GetString(name), newParent, Encoding.UTF8.GetString(newName), flags);
        return Errno.None;
    }

    public Errno GetXattr(in RequestContext ctx, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> value, out int size)
    {
        size = 0;
        if (!name.SequenceEqual("user.k"u8)) return Errno.ENODATA;
        var v = "value"u8;
        if (value.IsEmpty) { size = v.Length; return Errno.None; }
        if (value.Length < v.Length) return Errno.ERANGE;
        v.CopyTo(value);
        size = v.Length;
        return Errno.None;
    }

    public Errno ReadLink(in RequestContext ctx, ulong nodeId, Span<byte> target, out int length)
    {
        var t = "../some/target"u8;
        t.CopyTo(target);
        length = t.Length;
        return Errno.None;
    }

    public Errno Create(in RequestContext ctx, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out EntryOut entry, out OpenOut open)
    {
        Calls.Enqueue($"create {parent} {Encoding.UTF8.GetString(name)} flags={flags:x} mode={Convert.ToString(mode, 8)} umask={Convert.ToString(umask, 8)}");
        entry = new EntryOut { NodeId = 3, Generation = 1 };
        entry.Attr = FileAttr();
        entry.Attr.Ino = 3;
        // Asks for passthrough whatever was negotiated: the session must strip it when it is off.
        open = new OpenOut { Fh = 0x55, OpenFlags = OpenReplyFlags.KeepCache | OpenReplyFlags.Passthrough, BackingId = 9 };
        return Errno.None;
    }

    public ValueTask<Errno> SetLkWait(RequestContext ctx, ulong nodeId, LkIn request, CancellationToken cancel)
    {
        var tcs = new TaskCompletionSource<Errno>(TaskCreationOptions.RunContinuationsAsynchronously);
        cancel.Register(() => tcs.TrySetCanceled(cancel));
        Waits[ctx.Unique] = (tcs, cancel, request);
        return new ValueTask<Errno>(tcs.Task);
    }
}
