using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    public const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000, SOL_SOCKET = 1, SCM_RIGHTS = 1;

    [LibraryImport(Libc, EntryPoint = "socketpair", SetLastError = true)]
    public static partial int SocketPair(int domain, int type, int protocol, int* fds);

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLen;
        public IoVec* Iov;
        public nuint IovLen;
        public void* Control;
        public nuint ControlLen;
        public int Flags;
    }

    [LibraryImport(Libc, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* msg, int flags);

    /// <summary>Receives one descriptor passed with SCM_RIGHTS; -1 with errno set when none came.</summary>
    public static int ReceiveDescriptor(int socket)
    {
        byte data;
        var iov = new IoVec { Base = &data, Length = 1 };
        // cmsghdr (len: size_t, level: int, type: int) followed by one int, aligned to 8.
        const int controlSize = 24;
        byte* control = stackalloc byte[controlSize];
        new Span<byte>(control, controlSize).Clear();
        var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = control, ControlLen = controlSize };
        nint n;
        do { n = RecvMsg(socket, &msg, 0); } while (n < 0 && LastErrno == Errno.EINTR);
        if (n <= 0) return -1;
        nuint cmsgLen = *(nuint*)control;
        int level = *(int*)(control + 8), type = *(int*)(control + 12);
        if (msg.ControlLen < 16 || cmsgLen < 20 || level != SOL_SOCKET || type != SCM_RIGHTS) return -1;
        return *(int*)(control + 16);
    }
}
