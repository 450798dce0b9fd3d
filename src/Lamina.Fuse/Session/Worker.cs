using System.Runtime.InteropServices;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

/// <summary>
/// One worker thread: reads a request into its own pinned buffer, parses it in place, calls the
/// filesystem and writes the reply from its own reply buffer. Nothing is allocated per request
/// on the read, write, getattr and lookup paths.
/// </summary>
internal sealed unsafe partial class Worker
{
    private const int HeaderSize = 40;   // sizeof(fuse_in_header)
    private const int OutHeaderSize = 16; // sizeof(fuse_out_header)

    private readonly FuseSession _session;
    private readonly IFuseFileSystem _fs;
    private readonly int _fd;
    private readonly byte* _in;
    private readonly int _inCapacity;
    private readonly byte* _out;
    private readonly int _outCapacity;

    public Worker(FuseSession session, int fd)
    {
        _session = session;
        _fs = session.FileSystem;
        _fd = fd;
        _inCapacity = session.RequestBufferSize;
        _outCapacity = session.RequestBufferSize;
        _in = (byte*)NativeMemory.AlignedAlloc((nuint)_inCapacity, 4096);
        _out = (byte*)NativeMemory.AlignedAlloc((nuint)_outCapacity, 4096);
    }

    /// <summary>Reads and answers the INIT request, which always comes first.</summary>
    public void ServeInit()
    {
        while (true)
        {
            nint n = Sys.Read(_fd, _in, (nuint)_inCapacity);
            if (n < 0)
            {
                var e = Sys.LastErrno;
                if (e is Errno.EINTR or Errno.EAGAIN or Errno.ENOENT) continue;
                throw new ErrnoException(e, "read /dev/fuse", "while waiting for INIT");
            }
            var header = MemoryMarshal.Read<InHeader>(new ReadOnlySpan<byte>(_in, HeaderSize));
            if (header.Opcode != Opcode.Init)
            {
                SendError(header.Unique, Errno.EIO);
                continue;
            }
            var init = MemoryMarshal.Read<InitIn>(Pad(new ReadOnlySpan<byte>(_in + HeaderSize, (int)n - HeaderSize), sizeof(InitIn)));
            if (init.Major != FuseConstants.KernelVersion || init.Minor < FuseConstants.MinimumMinorVersion)
            {
                SendError(header.Unique, Errno.EPROTO);
                throw new ErrnoException(Errno.EPROTO, "FUSE INIT",
                    $"kernel speaks protocol {init.Major}.{init.Minor}; Lamina needs 7.{FuseConstants.MinimumMinorVersion} or newer");
            }
            _session.ApplyInit(init, out var reply);
            SendStruct(header.Unique, reply);
            return;
        }
    }

    // A short INIT from an old kernel is zero-extended to the struct's size.
    private static ReadOnlySpan<byte> Pad(ReadOnlySpan<byte> body, int size)
    {
        if (body.Length >= size) return body;
        var padded = new byte[size];
        body.CopyTo(padded);
        return padded;
    }

    public void Run()
    {
        try
        {
            while (true)
            {
                nint n = Sys.Read(_fd, _in, (nuint)_inCapacity);
                if (n < 0)
                {
                    var e = Sys.LastErrno;
                    if (e is Errno.EINTR or Errno.EAGAIN or Errno.ENOENT) continue;
                    _session.Ended(e is Errno.ENODEV or Errno.ECONNABORTED ? Errno.ENODEV : e);
                    return;
                }
                if (n < HeaderSize) continue;
                try
                {
                    if (!Dispatch(new ReadOnlySpan<byte>(_in, (int)n)))
                    {
                        _session.Ended(Errno.None);
                        return;
                    }
                }
                catch (Exception ex)
                {
                    // A filesystem bug must not take the mount down: answer EIO and say why.
                    var header = MemoryMarshal.Read<InHeader>(new ReadOnlySpan<byte>(_in, HeaderSize));
                    _session.Options.Log?.Invoke($"{header.Opcode} on node {header.NodeId} failed: {ex}");
                    if (header.Opcode is not (Opcode.Forget or Opcode.BatchForget)) SendError(header.Unique, Errno.EIO);
                }
            }
        }
        finally
        {
            ClosePipe();
            NativeMemory.AlignedFree(_in);
            NativeMemory.AlignedFree(_out);
        }
    }

    // CAP_SYS_RESOURCE in this thread's effective set: 1 raised, 0 lowered, -1 not known yet, 2 not ours to use.
    private int _sysResource = -1;

    /// <summary>
    /// Lowers CAP_SYS_RESOURCE while serving a caller other than root and raises it again for root,
    /// so quotas and reserved blocks limit an ordinary caller through the mount as they do directly.
    /// Changes the thread's capabilities only when the kind of caller changes.
    /// </summary>
    private void ActForCaller(uint uid)
    {
        if (_sysResource == 2) return;
        if (_sysResource == -1)
        {
            if (!Sys.ThreadMayUseCapability(Sys.CAP_SYS_RESOURCE)) { _sysResource = 2; return; }
            _sysResource = 1;
        }
        int want = uid == 0 ? 1 : 0;
        if (_sysResource == want) return;
        var e = Sys.SetThreadEffectiveCapability(Sys.CAP_SYS_RESOURCE, want == 1);
        if (e == Errno.None) _sysResource = want;
        else
        {
            _sysResource = 2;
            _session.Options.Log?.Invoke($"cannot change CAP_SYS_RESOURCE of a worker ({e}); callers' resource limits are not applied");
        }
    }

    private Span<byte> Payload => new(_out + OutHeaderSize, _outCapacity - OutHeaderSize);

    private void SendError(ulong unique, Errno errno) => Send(unique, -(int)errno, 0);

    private void SendOk(ulong unique) => Send(unique, 0, 0);

    private void SendStruct<T>(ulong unique, in T value) where T : unmanaged
    {
        MemoryMarshal.Write(Payload, in value);
        Send(unique, 0, sizeof(T));
    }

    private void Send(ulong unique, int error, int payloadLength)
    {
        var header = new OutHeader { Len = (uint)(OutHeaderSize + payloadLength), Error = error, Unique = unique };
        MemoryMarshal.Write(new Span<byte>(_out, OutHeaderSize), in header);
        WriteReply(_fd, _out, OutHeaderSize + payloadLength);
    }

    /// <summary>Writes one complete reply. ENOENT means the request was interrupted and is gone: not an error.</summary>
    internal static void WriteReply(int fd, byte* buffer, int length)
    {
        while (true)
        {
            nint n = Sys.Write(fd, buffer, (nuint)length);
            if (n >= 0) return;
            var e = Sys.LastErrno;
            if (e == Errno.EINTR) continue;
            return; // ENOENT (request gone), ENODEV (session gone): nothing to do.
        }
    }
}
