namespace Lamina.Fuse.Wire;

/// <summary>INIT capability flags; bits 32..63 travel in the flags2 field.</summary>
[Flags]
public enum InitFlags : ulong
{
    None = 0,
    AsyncRead = 1UL << 0,
    PosixLocks = 1UL << 1,
    AtomicOTrunc = 1UL << 3,
    ExportSupport = 1UL << 4,
    BigWrites = 1UL << 5,
    DontMask = 1UL << 6,
    SpliceWrite = 1UL << 7,
    SpliceMove = 1UL << 8,
    SpliceRead = 1UL << 9,
    FlockLocks = 1UL << 10,
    HasIoctlDir = 1UL << 11,
    AutoInvalData = 1UL << 12,
    DoReaddirplus = 1UL << 13,
    ReaddirplusAuto = 1UL << 14,
    AsyncDio = 1UL << 15,
    WritebackCache = 1UL << 16,
    NoOpenSupport = 1UL << 17,
    ParallelDirops = 1UL << 18,
    HandleKillpriv = 1UL << 19,
    PosixAcl = 1UL << 20,
    AbortError = 1UL << 21,
    MaxPages = 1UL << 22,
    CacheSymlinks = 1UL << 23,
    NoOpendirSupport = 1UL << 24,
    ExplicitInvalData = 1UL << 25,
    MapAlignment = 1UL << 26,
    Submounts = 1UL << 27,
    HandleKillprivV2 = 1UL << 28,
    SetxattrExt = 1UL << 29,
    InitExt = 1UL << 30,
    InitReserved = 1UL << 31,
    SecurityCtx = 1UL << 32,
    HasInodeDax = 1UL << 33,
    CreateSuppGroup = 1UL << 34,
    HasExpireOnly = 1UL << 35,
    DirectIoAllowMmap = 1UL << 36,
    Passthrough = 1UL << 37,
    NoExportSupport = 1UL << 38,
    HasResend = 1UL << 39,
    AllowIdmap = 1UL << 40,
    OverIoUring = 1UL << 41,
}

/// <summary>Flags of an OPEN, CREATE or OPENDIR reply.</summary>
[Flags]
public enum OpenReplyFlags : uint
{
    None = 0,
    DirectIo = 1 << 0,
    KeepCache = 1 << 1,
    NonSeekable = 1 << 2,
    CacheDir = 1 << 3,
    Stream = 1 << 4,
    NoFlush = 1 << 5,
    ParallelDirectWrites = 1 << 6,
    Passthrough = 1 << 7,
}

/// <summary>Bits of fuse_setattr_in.valid.</summary>
[Flags]
public enum SetAttrValid : uint
{
    Mode = 1 << 0, Uid = 1 << 1, Gid = 1 << 2, Size = 1 << 3, ATime = 1 << 4, MTime = 1 << 5,
    Fh = 1 << 6, ATimeNow = 1 << 7, MTimeNow = 1 << 8, LockOwner = 1 << 9, CTime = 1 << 10,
    KillSuidGid = 1 << 11,
}

public static class FuseConstants
{
    public const ulong RootId = 1;
    public const uint KernelVersion = 7;
    /// <summary>The newest minor version this library speaks.</summary>
    public const uint KernelMinorVersion = 45;
    /// <summary>The oldest minor version this library accepts.</summary>
    public const uint MinimumMinorVersion = 31;
    public const int MinReadBuffer = 8192;

    public const uint GetAttrFh = 1;
    public const uint LkFlock = 1;
    public const uint ReleaseFlush = 1, ReleaseFlockUnlock = 2;
    public const uint WriteCache = 1, WriteLockOwner = 2, WriteKillSuidGid = 4;
    public const uint ReadLockOwner = 2;
    public const uint FsyncFdatasync = 1;
    public const uint OpenKillSuidGid = 1;
    public const uint ExpireOnly = 1;
    public const uint ExtGroups = 32;

    // Device ioctls (FUSE_DEV_IOC_MAGIC 229).
    public static readonly ulong DevIocClone = Native.Sys.IoR(229, 0, 4);
    public static readonly ulong DevIocBackingOpen = Native.Sys.IoW(229, 1, 16);
    public static readonly ulong DevIocBackingClose = Native.Sys.IoW(229, 2, 4);
}
