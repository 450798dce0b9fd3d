using System.Runtime.InteropServices;
using Lamina.Fuse.Mounting;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>
/// Plays the kernel's side of /dev/fuse over a SOCK_SEQPACKET socketpair (which keeps message
/// boundaries as the device does): hand-built requests go in, reply bytes come out.
/// </summary>
public sealed unsafe class FakeKernel : IDisposable
{
    private const int SOCK_SEQPACKET = 5;
    private readonly SafeFd _kernel;
    private readonly int _workers;
    private bool _started;
    private readonly byte[] _rx = new byte[2 << 20];

    public FakeKernel(IFuseFileSystem fs, FuseSessionOptions? options = null)
    {
        int* pair = stackalloc int[2];
        if (Sys.SocketPair(Sys.AF_UNIX, SOCK_SEQPACKET | Sys.SOCK_CLOEXEC, 0, pair) != 0)
            throw new ErrnoException(Sys.LastErrno, "socketpair");
        _kernel = new SafeFd(pair[0]);
        options ??= new FuseSessionOptions();
        options = options with { Workers = 1, Log = Log.Enqueue };
        _workers = options.Workers;
        Session = new FuseSession(FuseMount.ForDescriptor(new SafeFd(pair[1]), "/nonexistent/lamina-fake-kernel"), fs, options);
    }

    public FuseSession Session { get; }

    public System.Collections.Concurrent.ConcurrentQueue<string> Log { get; } = new();

    public static byte[] Bytes<T>(in T value) where T : unmanaged
    {
        var b = new byte[sizeof(T)];
        MemoryMarshal.Write(b, in value);
        return b;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>Sends one request: fuse_in_header followed by <paramref name="body"/> (and extensions).</summary>
    public void Send(Opcode opcode, ulong unique, ulong nodeId, byte[] body, byte[]? extensions = null, uint uid = 1000, uint gid = 1000, uint pid = 4242)
    {
        extensions ??= [];
        if (extensions.Length % 8 != 0) throw new ArgumentException("extensions must be a multiple of 8 bytes");
        var h = new InHeader
        {
            Len = (uint)(40 + body.Length + extensions.Length), Opcode = opcode, Unique = unique, NodeId = nodeId,
            Uid = uid, Gid = gid, Pid = pid, TotalExtLen = (ushort)(extensions.Length / 8),
        };
        var msg = Concat(Bytes(h), body, extensions);
        fixed (byte* p = msg)
        {
            nint n = Sys.Write(_kernel.Fd, p, (nuint)msg.Length);
            if (n != msg.Length) throw new ErrnoException(Sys.LastErrno, "write request");
        }
    }

    /// <summary>Sends bytes exactly as given (for malformed requests).</summary>
    public void SendRaw(byte[] msg)
    {
        fixed (byte* p = msg)
            if (Sys.Write(_kernel.Fd, p, (nuint)msg.Length) != msg.Length) throw new ErrnoException(Sys.LastErrno, "write request");
    }

    /// <summary>The next message from the server, or null when none comes within <paramref name="timeoutMs"/>.</summary>
    public byte[]? TryReceive(int timeoutMs)
    {
        var pfd = new Sys.PollFd { Fd = _kernel.Fd, Events = Sys.POLLIN };
        int r;
        do { r = Sys.Poll(&pfd, 1, timeoutMs); } while (r < 0 && Sys.LastErrno == Errno.EINTR);
        if (r <= 0) return null;
        nint n = Sys.Read(_kernel.Fd, _rx);
        if (n < 0) throw new ErrnoException(Sys.LastErrno, "read reply");
        return _rx.AsSpan(0, (int)n).ToArray();
    }

    public byte[] Receive(int timeoutMs = 5000) =>
        TryReceive(timeoutMs) ?? throw new TimeoutException($"no message from the server within {timeoutMs} ms; log: {string.Join(" | ", Log)}");

    /// <summary>Sends INIT (which must precede Start, as the kernel queues it at mount) and starts the session.</summary>
    public byte[] Start(uint minor = FuseConstants.KernelMinorVersion, InitFlags offered = (InitFlags)ulong.MaxValue, ulong unique = 1)
    {
        var init = new InitIn
        {
            Major = 7, Minor = minor, MaxReadahead = 128 * 1024,
            Flags = (uint)((ulong)offered & 0xffffffff), Flags2 = (uint)((ulong)offered >> 32),
        };
        Send(Opcode.Init, unique, 0, Bytes(init));
        Session.Start();
        _started = true;
        return Receive();
    }

    public static OutHeader Header(byte[] reply) => MemoryMarshal.Read<OutHeader>(reply);

    public void Dispose()
    {
        try
        {
            if (_started && !Session.Completion.IsCompleted)
            {
                // One DESTROY per worker: each worker that reads one returns (a closed socket would make them spin on EOF).
                for (int i = 0; i < _workers; i++) Send(Opcode.Destroy, 0xDE57_0000UL + (ulong)i, 0, []);
                Session.Completion.Wait(TimeSpan.FromSeconds(5));
            }
        }
        finally
        {
            Session.Dispose();
            _kernel.Dispose();
            // The workers have returned (or never started), so the server's end can close.
            if (_started ? Session.Completion.IsCompleted : true) Session.Mount.Device.Dispose();
        }
    }
}
