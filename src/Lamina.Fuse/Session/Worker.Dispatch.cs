using System.Runtime.InteropServices;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

internal sealed unsafe partial class Worker
{
    /// <summary>Answers one request. Returns false when the session is over (DESTROY).</summary>
    private bool Dispatch(ReadOnlySpan<byte> request)
    {
        var h = MemoryMarshal.Read<InHeader>(request);
        int argsEnd = (int)Math.Min(h.Len, (uint)request.Length) - h.TotalExtLen * 8;
        if (argsEnd < HeaderSize) { SendError(h.Unique, Errno.EINVAL); return true; }
        var body = request[HeaderSize..argsEnd];
        uint[]? groups = h.TotalExtLen > 0 ? ParseGroups(request[argsEnd..(int)Math.Min(h.Len, (uint)request.Length)]) : null;
        var ctx = new RequestContext(h.Unique, h.Opcode, h.NodeId, h.Uid, h.Gid, h.Pid, groups);
        ulong node = h.NodeId;
        Errno e;
        if (_session.Options.CallerResourceLimits) ActForCaller(h.Uid);

        switch (h.Opcode)
        {
            case Opcode.Lookup:
            {
                e = _fs.Lookup(in ctx, node, CString(ref body), out var entry);
                ReplyEntry(h.Unique, e, in entry);
                break;
            }
            case Opcode.Forget:
                _fs.Forget(node, Read<ForgetIn>(body).NLookup);
                break;
            case Opcode.BatchForget:
            {
                var b = Read<BatchForgetIn>(body);
                var items = MemoryMarshal.Cast<byte, ForgetOne>(body[sizeof(BatchForgetIn)..]);
                int count = (int)Math.Min(b.Count, (uint)items.Length);
                for (int i = 0; i < count; i++) _fs.Forget(items[i].NodeId, items[i].NLookup);
                break;
            }
            case Opcode.GetAttr:
            {
                var g = Read<GetAttrIn>(body);
                e = _fs.GetAttr(in ctx, node, (g.GetAttrFlags & FuseConstants.GetAttrFh) != 0 ? g.Fh : null, out var attr);
                ReplyStruct(h.Unique, e, in attr);
                break;
            }
            case Opcode.SetAttr:
            {
                var s = Read<SetAttrIn>(body);
                e = _fs.SetAttr(in ctx, node, in s, out var attr);
                ReplyStruct(h.Unique, e, in attr);
                break;
            }
            case Opcode.ReadLink:
            {
                var target = Payload[..Math.Min(Payload.Length, 4096)];
                e = _fs.ReadLink(in ctx, node, target, out int length);
                ReplyData(h.Unique, e, length);
                break;
            }
            case Opcode.Symlink:
            {
                var name = CString(ref body);
                var target = CString(ref body);
                e = _fs.Symlink(in ctx, node, name, target, out var entry);
                ReplyEntry(h.Unique, e, in entry);
                break;
            }
            case Opcode.Mknod:
            {
                var m = Read<MknodIn>(body);
                body = body[sizeof(MknodIn)..];
                e = _fs.Mknod(in ctx, node, CString(ref body), m.Mode, m.RDev, m.Umask, out var entry);
                ReplyEntry(h.Unique, e, in entry);
                break;
            }
            case Opcode.Mkdir:
            {
                var m = Read<MkdirIn>(body);
                body = body[sizeof(MkdirIn)..];
                e = _fs.Mkdir(in ctx, node, CString(ref body), m.Mode, m.Umask, out var entry);
                ReplyEntry(h.Unique, e, in entry);
                break;
            }
            case Opcode.Unlink:
                Reply(h.Unique, _fs.Unlink(in ctx, node, CString(ref body)));
                break;
            case Opcode.Rmdir:
                Reply(h.Unique, _fs.Rmdir(in ctx, node, CString(ref body)));
                break;
            case Opcode.Rename:
            {
                var r = Read<RenameIn>(body);
                body = body[sizeof(RenameIn)..];
                var oldName = CString(ref body);
                Reply(h.Unique, _fs.Rename(in ctx, node, oldName, r.NewDir, CString(ref body), 0));
                break;
            }
            case Opcode.Rename2:
            {
                var r = Read<Rename2In>(body);
                body = body[sizeof(Rename2In)..];
                var oldName = CString(ref body);
                Reply(h.Unique, _fs.Rename(in ctx, node, oldName, r.NewDir, CString(ref body), r.Flags));
                break;
            }
            case Opcode.Link:
            {
                var l = Read<LinkIn>(body);
                body = body[sizeof(LinkIn)..];
                e = _fs.Link(in ctx, l.OldNodeId, node, CString(ref body), out var entry);
                ReplyEntry(h.Unique, e, in entry);
                break;
            }
            case Opcode.Open:
            {
                var o = Read<OpenIn>(body);
                e = _fs.Open(in ctx, node, (int)o.Flags, out var open);
                ReplyOpen(h.Unique, e, ref open);
                break;
            }
            case Opcode.Create:
            {
                var c = Read<CreateIn>(body);
                body = body[sizeof(CreateIn)..];
                e = _fs.Create(in ctx, node, CString(ref body), (int)c.Flags, c.Mode, c.Umask, out var entry, out var open);
                ReplyCreate(h.Unique, e, in entry, ref open);
                break;
            }
            case Opcode.TmpFile:
            {
                var c = Read<CreateIn>(body);
                e = _fs.TmpFile(in ctx, node, (int)c.Flags, c.Mode, c.Umask, out var entry, out var open);
                ReplyCreate(h.Unique, e, in entry, ref open);
                break;
            }
            case Opcode.Read:
            {
                var r = Read<ReadIn>(body);
                if (TrySpliceRead(in ctx, node, in r)) break; // Worker.Splice.cs
                var buffer = Payload[..(int)Math.Min(r.Size, (uint)Payload.Length)];
                e = _fs.Read(in ctx, node, in r, buffer, out int count);
                ReplyData(h.Unique, e, Math.Min(count, buffer.Length));
                CopiedReads++;
                break;
            }
            case Opcode.Write:
            {
                var w = Read<WriteIn>(body);
                var data = body[sizeof(WriteIn)..];
                if (data.Length > w.Size) data = data[..(int)w.Size];
                e = _fs.Write(in ctx, node, in w, data, out uint written);
                ReplyStruct(h.Unique, e, new WriteOut { Size = written });
                break;
            }
            case Opcode.StatFs:
            {
                e = _fs.StatFs(in ctx, node, out var st);
                ReplyStruct(h.Unique, e, in st);
                break;
            }
            case Opcode.Release:
                Reply(h.Unique, _fs.Release(in ctx, node, Read<ReleaseIn>(body)));
                break;
            case Opcode.Fsync:
            {
                var f = Read<FsyncIn>(body);
                Reply(h.Unique, _fs.Fsync(in ctx, node, f.Fh, (f.FsyncFlags & FuseConstants.FsyncFdatasync) != 0));
                break;
            }
            case Opcode.SetXattr:
            {
                // Without FUSE_SETXATTR_EXT the kernel sends the 8-byte form (size, flags).
                uint size = MemoryMarshal.Read<uint>(body);
                int flags = MemoryMarshal.Read<int>(body[4..]);
                body = body[8..];
                var name = CString(ref body);
                var value = body[..(int)Math.Min(size, (uint)body.Length)];
                Reply(h.Unique, _fs.SetXattr(in ctx, node, name, value, flags));
                break;
            }
            case Opcode.GetXattr:
            {
                var g = Read<GetXattrIn>(body);
                body = body[sizeof(GetXattrIn)..];
                var name = CString(ref body);
                e = _fs.GetXattr(in ctx, node, name, XattrBuffer(g.Size), out int size);
                ReplyXattr(h.Unique, e, g.Size, size);
                break;
            }
            case Opcode.ListXattr:
            {
                var g = Read<GetXattrIn>(body);
                e = _fs.ListXattr(in ctx, node, XattrBuffer(g.Size), out int size);
                ReplyXattr(h.Unique, e, g.Size, size);
                break;
            }
            case Opcode.RemoveXattr:
                Reply(h.Unique, _fs.RemoveXattr(in ctx, node, CString(ref body)));
                break;
            case Opcode.Flush:
            {
                var f = Read<FlushIn>(body);
                Reply(h.Unique, _fs.Flush(in ctx, node, f.Fh, f.LockOwner));
                break;
            }
            case Opcode.OpenDir:
            {
                var o = Read<OpenIn>(body);
                e = _fs.OpenDir(in ctx, node, (int)o.Flags, out var open);
                open.OpenFlags &= ~OpenReplyFlags.Passthrough;
                ReplyStruct(h.Unique, e, in open);
                break;
            }
            case Opcode.ReadDir:
            case Opcode.ReadDirPlus:
            {
                var r = Read<ReadIn>(body);
                var entries = new DirEntryBuffer(Payload[..(int)Math.Min(r.Size, (uint)Payload.Length)], h.Opcode == Opcode.ReadDirPlus);
                e = _fs.ReadDir(in ctx, node, r.Fh, (long)r.Offset, ref entries);
                ReplyData(h.Unique, e, entries.BytesUsed);
                break;
            }
            case Opcode.ReleaseDir:
                Reply(h.Unique, _fs.ReleaseDir(in ctx, node, Read<ReleaseIn>(body).Fh));
                break;
            case Opcode.FsyncDir:
            {
                var f = Read<FsyncIn>(body);
                Reply(h.Unique, _fs.FsyncDir(in ctx, node, f.Fh, (f.FsyncFlags & FuseConstants.FsyncFdatasync) != 0));
                break;
            }
            case Opcode.GetLk:
            {
                e = _fs.GetLk(in ctx, node, Read<LkIn>(body), out var conflict);
                ReplyStruct(h.Unique, e, new LkOut { Lk = conflict });
                break;
            }
            case Opcode.SetLk:
                Reply(h.Unique, _fs.SetLk(in ctx, node, Read<LkIn>(body)));
                break;
            case Opcode.SetLkW:
                StartBlockingLock(ctx, node, Read<LkIn>(body));
                break;
            case Opcode.Access:
                Reply(h.Unique, _fs.Access(in ctx, node, (int)Read<AccessIn>(body).Mask));
                break;
            case Opcode.Interrupt:
                HandleInterrupt(h.Unique, Read<InterruptIn>(body).Unique);
                break;
            case Opcode.Destroy:
                _session.Destroyed();
                SendOk(h.Unique);
                return false;
            case Opcode.Fallocate:
                Reply(h.Unique, _fs.Fallocate(in ctx, node, Read<FallocateIn>(body)));
                break;
            case Opcode.Lseek:
            {
                var l = Read<LseekIn>(body);
                e = _fs.Lseek(in ctx, node, l.Fh, (long)l.Offset, (int)l.Whence, out long result);
                ReplyStruct(h.Unique, e, new LseekOut { Offset = (ulong)result });
                break;
            }
            case Opcode.CopyFileRange:
            {
                e = _fs.CopyFileRange(in ctx, node, Read<CopyFileRangeIn>(body), out uint copied);
                ReplyStruct(h.Unique, e, new WriteOut { Size = copied });
                break;
            }
            case Opcode.Ioctl:
            {
                var io = Read<IoctlIn>(body);
                var input = body[sizeof(IoctlIn)..];
                var output = Payload[sizeof(IoctlOut)..][..(int)Math.Min(io.OutSize, (uint)(Payload.Length - sizeof(IoctlOut)))];
                e = _fs.Ioctl(in ctx, node, in io, input, output, out int result, out int outSize);
                if (e != Errno.None) { SendError(h.Unique, e); break; }
                MemoryMarshal.Write(Payload, new IoctlOut { Result = result });
                Send(h.Unique, 0, sizeof(IoctlOut) + outSize);
                break;
            }
            case Opcode.Poll:
            {
                e = _fs.Poll(in ctx, node, Read<PollIn>(body), out uint revents);
                ReplyStruct(h.Unique, e, new PollOut { REvents = revents });
                break;
            }
            case Opcode.NotifyReply:
                _session.Notifier.CompleteRetrieve(h.Unique, body);
                break;
            case Opcode.Init:
                SendError(h.Unique, Errno.EPROTO);
                break;
            default:
                SendError(h.Unique, Errno.ENOSYS);
                break;
        }
        return true;
    }

    private static T Read<T>(ReadOnlySpan<byte> body) where T : unmanaged
    {
        if (body.Length >= sizeof(T)) return MemoryMarshal.Read<T>(body);
        // Older kernels send shorter forms of some structs; the missing tail is zero.
        T value = default;
        body.CopyTo(new Span<byte>(&value, sizeof(T)));
        return value;
    }

    /// <summary>Takes one NUL-terminated string off the front of <paramref name="body"/>.</summary>
    private static ReadOnlySpan<byte> CString(ref ReadOnlySpan<byte> body)
    {
        int nul = body.IndexOf((byte)0);
        if (nul < 0) { var all = body; body = default; return all; }
        var s = body[..nul];
        body = body[(nul + 1)..];
        return s;
    }

    private static uint[]? ParseGroups(ReadOnlySpan<byte> extensions)
    {
        while (extensions.Length >= sizeof(ExtHeader))
        {
            var eh = MemoryMarshal.Read<ExtHeader>(extensions);
            if (eh.Size < sizeof(ExtHeader) || eh.Size > extensions.Length) return null;
            if (eh.Type == FuseConstants.ExtGroups)
            {
                var data = extensions[sizeof(ExtHeader)..(int)eh.Size];
                uint n = MemoryMarshal.Read<uint>(data);
                var list = MemoryMarshal.Cast<byte, uint>(data[4..]);
                return list[..(int)Math.Min(n, (uint)list.Length)].ToArray();
            }
            extensions = extensions[(int)eh.Size..];
        }
        return null;
    }

    private void Reply(ulong unique, Errno e)
    {
        if (e == Errno.None) SendOk(unique); else SendError(unique, e);
    }

    /// <summary>Replies with the first <paramref name="length"/> bytes already written to the payload, or the error.</summary>
    private void ReplyData(ulong unique, Errno e, int length)
    {
        if (e == Errno.None) Send(unique, 0, length); else SendError(unique, e);
    }

    /// <summary>GETXATTR and LISTXATTR: a requested size of 0 asks for the size only; otherwise the data goes straight into the payload.</summary>
    private Span<byte> XattrBuffer(uint requested) =>
        requested == 0 ? Span<byte>.Empty : Payload[..(int)Math.Min(requested, (uint)Payload.Length)];

    private void ReplyXattr(ulong unique, Errno e, uint requested, int size)
    {
        if (requested == 0) ReplyStruct(unique, e, new GetXattrOut { Size = (uint)size });
        else ReplyData(unique, e, size);
    }

    private void ReplyStruct<T>(ulong unique, Errno e, in T value) where T : unmanaged
    {
        if (e == Errno.None) SendStruct(unique, in value); else SendError(unique, e);
    }

    private void ReplyEntry(ulong unique, Errno e, in EntryOut entry) => ReplyStruct(unique, e, in entry);

    private void ReplyOpen(ulong unique, Errno e, ref OpenOut open)
    {
        if (e == Errno.None && !_session.Connection.Passthrough) StripPassthrough(ref open);
        ReplyStruct(unique, e, in open);
    }

    private static void StripPassthrough(ref OpenOut open)
    {
        open.OpenFlags &= ~OpenReplyFlags.Passthrough;
        open.BackingId = 0;
    }

    private void ReplyCreate(ulong unique, Errno e, in EntryOut entry, ref OpenOut open)
    {
        if (e != Errno.None) { SendError(unique, e); return; }
        if (!_session.Connection.Passthrough) StripPassthrough(ref open);
        MemoryMarshal.Write(Payload, in entry);
        MemoryMarshal.Write(Payload[sizeof(EntryOut)..], in open);
        Send(unique, 0, sizeof(EntryOut) + sizeof(OpenOut));
    }
}
