namespace Lamina.Fuse.Wire;

/// <summary>Request opcodes (enum fuse_opcode).</summary>
public enum Opcode : uint
{
    Lookup = 1, Forget = 2, GetAttr = 3, SetAttr = 4, ReadLink = 5, Symlink = 6, Mknod = 8,
    Mkdir = 9, Unlink = 10, Rmdir = 11, Rename = 12, Link = 13, Open = 14, Read = 15, Write = 16,
    StatFs = 17, Release = 18, Fsync = 20, SetXattr = 21, GetXattr = 22, ListXattr = 23,
    RemoveXattr = 24, Flush = 25, Init = 26, OpenDir = 27, ReadDir = 28, ReleaseDir = 29,
    FsyncDir = 30, GetLk = 31, SetLk = 32, SetLkW = 33, Access = 34, Create = 35, Interrupt = 36,
    Bmap = 37, Destroy = 38, Ioctl = 39, Poll = 40, NotifyReply = 41, BatchForget = 42,
    Fallocate = 43, ReadDirPlus = 44, Rename2 = 45, Lseek = 46, CopyFileRange = 47,
    SetupMapping = 48, RemoveMapping = 49, SyncFs = 50, TmpFile = 51, Statx = 52,
}

/// <summary>Server-to-kernel notification codes (enum fuse_notify_code).</summary>
public enum NotifyCode : int
{
    Poll = 1, InvalInode = 2, InvalEntry = 3, Store = 4, Retrieve = 5, Delete = 6, Resend = 7, IncEpoch = 8,
}
