using Lamina.Fuse.Wire;

namespace Lamina.Fuse.Tests;

/// <summary>One field of a wire struct: the C# field, the C member (in include/uapi/linux/fuse.h) and its offset.</summary>
/// <param name="COld">The C expression that names the same bytes in headers older than <see cref="Since"/> (e.g. "padding").</param>
public sealed record WireField(string Cs, string C, int Offset, int Since = 0, string? COld = null);

/// <summary>A wire struct and the layout re-derived by hand from the 7.45 fuse.h (all natural alignment, no packing).</summary>
public sealed record WireStruct(Type Type, string C, int Size, WireField[] Fields, int Since = 0)
{
    public override string ToString() => Type.Name;
}

public static class WireLayout
{
    private static WireField F(string cs, string c, int offset, int since = 0, string? cOld = null) => new(cs, c, offset, since, cOld);

    // Offsets worked out from the header, field by field (u64 = 8, u32 = 4, u16 = 2; every struct is 8-aligned).
    public static readonly WireStruct[] All =
    [
        new(typeof(InHeader), "fuse_in_header", 40, [F("Len", "len", 0), F("Opcode", "opcode", 4), F("Unique", "unique", 8), F("NodeId", "nodeid", 16),
            F("Uid", "uid", 24), F("Gid", "gid", 28), F("Pid", "pid", 32), F("TotalExtLen", "total_extlen", 36), F("Padding", "padding", 38)]),
        new(typeof(OutHeader), "fuse_out_header", 16, [F("Len", "len", 0), F("Error", "error", 4), F("Unique", "unique", 8)]),
        new(typeof(ExtHeader), "fuse_ext_header", 8, [F("Size", "size", 0), F("Type", "type", 4)]),
        new(typeof(FuseAttr), "fuse_attr", 88, [F("Ino", "ino", 0), F("Size", "size", 8), F("Blocks", "blocks", 16), F("ATime", "atime", 24),
            F("MTime", "mtime", 32), F("CTime", "ctime", 40), F("ATimeNsec", "atimensec", 48), F("MTimeNsec", "mtimensec", 52),
            F("CTimeNsec", "ctimensec", 56), F("Mode", "mode", 60), F("NLink", "nlink", 64), F("Uid", "uid", 68), F("Gid", "gid", 72),
            F("RDev", "rdev", 76), F("BlkSize", "blksize", 80), F("Flags", "flags", 84)]),
        new(typeof(EntryOut), "fuse_entry_out", 128, [F("NodeId", "nodeid", 0), F("Generation", "generation", 8), F("EntryValid", "entry_valid", 16),
            F("AttrValid", "attr_valid", 24), F("EntryValidNsec", "entry_valid_nsec", 32), F("AttrValidNsec", "attr_valid_nsec", 36), F("Attr", "attr", 40)]),
        new(typeof(AttrOut), "fuse_attr_out", 104, [F("AttrValid", "attr_valid", 0), F("AttrValidNsec", "attr_valid_nsec", 8), F("Dummy", "dummy", 12), F("Attr", "attr", 16)]),
        new(typeof(GetAttrIn), "fuse_getattr_in", 16, [F("GetAttrFlags", "getattr_flags", 0), F("Dummy", "dummy", 4), F("Fh", "fh", 8)]),
        new(typeof(SetAttrIn), "fuse_setattr_in", 88, [F("Valid", "valid", 0), F("Padding", "padding", 4), F("Fh", "fh", 8), F("Size", "size", 16),
            F("LockOwner", "lock_owner", 24), F("ATime", "atime", 32), F("MTime", "mtime", 40), F("CTime", "ctime", 48), F("ATimeNsec", "atimensec", 56),
            F("MTimeNsec", "mtimensec", 60), F("CTimeNsec", "ctimensec", 64), F("Mode", "mode", 68), F("Unused4", "unused4", 72), F("Uid", "uid", 76),
            F("Gid", "gid", 80), F("Unused5", "unused5", 84)]),
        new(typeof(KStatFs), "fuse_kstatfs", 80, [F("Blocks", "blocks", 0), F("BFree", "bfree", 8), F("BAvail", "bavail", 16), F("Files", "files", 24),
            F("FFree", "ffree", 32), F("BSize", "bsize", 40), F("NameLen", "namelen", 44), F("FrSize", "frsize", 48), F("Padding", "padding", 52)]),
        new(typeof(InitIn), "fuse_init_in", 64, [F("Major", "major", 0), F("Minor", "minor", 4), F("MaxReadahead", "max_readahead", 8), F("Flags", "flags", 12), F("Flags2", "flags2", 16)]),
        new(typeof(InitOut), "fuse_init_out", 64, [F("Major", "major", 0), F("Minor", "minor", 4), F("MaxReadahead", "max_readahead", 8), F("Flags", "flags", 12),
            F("MaxBackground", "max_background", 16), F("CongestionThreshold", "congestion_threshold", 18), F("MaxWrite", "max_write", 20),
            F("TimeGran", "time_gran", 24), F("MaxPages", "max_pages", 28), F("MapAlignment", "map_alignment", 30), F("Flags2", "flags2", 32),
            F("MaxStackDepth", "max_stack_depth", 36, since: 40, cOld: "unused[0]"), F("RequestTimeout", "request_timeout", 40, since: 43, cOld: "unused[1]")]),
        new(typeof(OpenIn), "fuse_open_in", 8, [F("Flags", "flags", 0), F("OpenFlags", "open_flags", 4)]),
        new(typeof(OpenOut), "fuse_open_out", 16, [F("Fh", "fh", 0), F("OpenFlags", "open_flags", 8), F("BackingId", "backing_id", 12, since: 40, cOld: "padding")]),
        new(typeof(CreateIn), "fuse_create_in", 16, [F("Flags", "flags", 0), F("Mode", "mode", 4), F("Umask", "umask", 8), F("OpenFlags", "open_flags", 12)]),
        new(typeof(ReleaseIn), "fuse_release_in", 24, [F("Fh", "fh", 0), F("Flags", "flags", 8), F("ReleaseFlags", "release_flags", 12), F("LockOwner", "lock_owner", 16)]),
        new(typeof(FlushIn), "fuse_flush_in", 24, [F("Fh", "fh", 0), F("Unused", "unused", 8), F("Padding", "padding", 12), F("LockOwner", "lock_owner", 16)]),
        new(typeof(ReadIn), "fuse_read_in", 40, [F("Fh", "fh", 0), F("Offset", "offset", 8), F("Size", "size", 16), F("ReadFlags", "read_flags", 20),
            F("LockOwner", "lock_owner", 24), F("Flags", "flags", 32), F("Padding", "padding", 36)]),
        new(typeof(WriteIn), "fuse_write_in", 40, [F("Fh", "fh", 0), F("Offset", "offset", 8), F("Size", "size", 16), F("WriteFlags", "write_flags", 20),
            F("LockOwner", "lock_owner", 24), F("Flags", "flags", 32), F("Padding", "padding", 36)]),
        new(typeof(WriteOut), "fuse_write_out", 8, [F("Size", "size", 0), F("Padding", "padding", 4)]),
        new(typeof(FsyncIn), "fuse_fsync_in", 16, [F("Fh", "fh", 0), F("FsyncFlags", "fsync_flags", 8), F("Padding", "padding", 12)]),
        new(typeof(SetXattrIn), "fuse_setxattr_in", 16, [F("Size", "size", 0), F("Flags", "flags", 4), F("SetXattrFlags", "setxattr_flags", 8), F("Padding", "padding", 12)]),
        new(typeof(GetXattrIn), "fuse_getxattr_in", 8, [F("Size", "size", 0), F("Padding", "padding", 4)]),
        new(typeof(GetXattrOut), "fuse_getxattr_out", 8, [F("Size", "size", 0), F("Padding", "padding", 4)]),
        new(typeof(AccessIn), "fuse_access_in", 8, [F("Mask", "mask", 0), F("Padding", "padding", 4)]),
        new(typeof(InterruptIn), "fuse_interrupt_in", 8, [F("Unique", "unique", 0)]),
        new(typeof(ForgetIn), "fuse_forget_in", 8, [F("NLookup", "nlookup", 0)]),
        new(typeof(ForgetOne), "fuse_forget_one", 16, [F("NodeId", "nodeid", 0), F("NLookup", "nlookup", 8)]),
        new(typeof(BatchForgetIn), "fuse_batch_forget_in", 8, [F("Count", "count", 0), F("Dummy", "dummy", 4)]),
        new(typeof(MknodIn), "fuse_mknod_in", 16, [F("Mode", "mode", 0), F("RDev", "rdev", 4), F("Umask", "umask", 8), F("Padding", "padding", 12)]),
        new(typeof(MkdirIn), "fuse_mkdir_in", 8, [F("Mode", "mode", 0), F("Umask", "umask", 4)]),
        new(typeof(RenameIn), "fuse_rename_in", 8, [F("NewDir", "newdir", 0)]),
        new(typeof(Rename2In), "fuse_rename2_in", 16, [F("NewDir", "newdir", 0), F("Flags", "flags", 8), F("Padding", "padding", 12)]),
        new(typeof(LinkIn), "fuse_link_in", 8, [F("OldNodeId", "oldnodeid", 0)]),
        new(typeof(FileLock), "fuse_file_lock", 24, [F("Start", "start", 0), F("End", "end", 8), F("Type", "type", 16), F("Pid", "pid", 20)]),
        new(typeof(LkIn), "fuse_lk_in", 48, [F("Fh", "fh", 0), F("Owner", "owner", 8), F("Lk", "lk", 16), F("LkFlags", "lk_flags", 40), F("Padding", "padding", 44)]),
        new(typeof(LkOut), "fuse_lk_out", 24, [F("Lk", "lk", 0)]),
        new(typeof(FallocateIn), "fuse_fallocate_in", 32, [F("Fh", "fh", 0), F("Offset", "offset", 8), F("Length", "length", 16), F("Mode", "mode", 24), F("Padding", "padding", 28)]),
        new(typeof(LseekIn), "fuse_lseek_in", 24, [F("Fh", "fh", 0), F("Offset", "offset", 8), F("Whence", "whence", 16), F("Padding", "padding", 20)]),
        new(typeof(LseekOut), "fuse_lseek_out", 8, [F("Offset", "offset", 0)]),
        new(typeof(CopyFileRangeIn), "fuse_copy_file_range_in", 56, [F("FhIn", "fh_in", 0), F("OffIn", "off_in", 8), F("NodeIdOut", "nodeid_out", 16),
            F("FhOut", "fh_out", 24), F("OffOut", "off_out", 32), F("Len", "len", 40), F("Flags", "flags", 48)]),
        new(typeof(IoctlIn), "fuse_ioctl_in", 32, [F("Fh", "fh", 0), F("Flags", "flags", 8), F("Cmd", "cmd", 12), F("Arg", "arg", 16), F("InSize", "in_size", 24), F("OutSize", "out_size", 28)]),
        new(typeof(IoctlOut), "fuse_ioctl_out", 16, [F("Result", "result", 0), F("Flags", "flags", 4), F("InIovs", "in_iovs", 8), F("OutIovs", "out_iovs", 12)]),
        new(typeof(PollIn), "fuse_poll_in", 24, [F("Fh", "fh", 0), F("Kh", "kh", 8), F("Flags", "flags", 16), F("Events", "events", 20)]),
        new(typeof(PollOut), "fuse_poll_out", 8, [F("REvents", "revents", 0), F("Padding", "padding", 4)]),
        new(typeof(Dirent), "fuse_dirent", 24, [F("Ino", "ino", 0), F("Off", "off", 8), F("NameLen", "namelen", 16), F("Type", "type", 20)]),
        new(typeof(NotifyInvalInodeOut), "fuse_notify_inval_inode_out", 24, [F("Ino", "ino", 0), F("Off", "off", 8), F("Len", "len", 16)]),
        new(typeof(NotifyInvalEntryOut), "fuse_notify_inval_entry_out", 16, [F("Parent", "parent", 0), F("NameLen", "namelen", 8), F("Flags", "flags", 12)]),
        new(typeof(NotifyDeleteOut), "fuse_notify_delete_out", 24, [F("Parent", "parent", 0), F("Child", "child", 8), F("NameLen", "namelen", 16), F("Padding", "padding", 20)]),
        new(typeof(NotifyStoreOut), "fuse_notify_store_out", 24, [F("NodeId", "nodeid", 0), F("Offset", "offset", 8), F("Size", "size", 16), F("Padding", "padding", 20)]),
        new(typeof(NotifyRetrieveOut), "fuse_notify_retrieve_out", 32, [F("NotifyUnique", "notify_unique", 0), F("NodeId", "nodeid", 8), F("Offset", "offset", 16),
            F("Size", "size", 24), F("Padding", "padding", 28)]),
        new(typeof(NotifyRetrieveIn), "fuse_notify_retrieve_in", 40, [F("Dummy1", "dummy1", 0), F("Offset", "offset", 8), F("Size", "size", 16),
            F("Dummy2", "dummy2", 20), F("Dummy3", "dummy3", 24), F("Dummy4", "dummy4", 32)]),
        new(typeof(BackingMap), "fuse_backing_map", 16, [F("Fd", "fd", 0), F("Flags", "flags", 4), F("Padding", "padding", 8)], Since: 40),
    ];

    /// <summary>A named constant: the C# value and the C expression (macro or enumerator) it must equal.</summary>
    public sealed record WireConstant(string Label, string C, ulong Value, int Since = 0);

    private static IEnumerable<WireConstant> Build()
    {
        foreach (var op in Enum.GetValues<Opcode>())
        {
            string c = op switch
            {
                Opcode.BatchForget => "FUSE_BATCH_FORGET",
                Opcode.CopyFileRange => "FUSE_COPY_FILE_RANGE",
                Opcode.NotifyReply => "FUSE_NOTIFY_REPLY",
                _ => "FUSE_" + op.ToString().ToUpperInvariant(),
            };
            yield return new($"Opcode.{op}", c, (ulong)op, op == Opcode.Statx ? 39 : 0);
        }
        var initNames = new Dictionary<InitFlags, (string C, int Since)>
        {
            [InitFlags.AsyncRead] = ("FUSE_ASYNC_READ", 0), [InitFlags.PosixLocks] = ("FUSE_POSIX_LOCKS", 0),
            [InitFlags.AtomicOTrunc] = ("FUSE_ATOMIC_O_TRUNC", 0), [InitFlags.ExportSupport] = ("FUSE_EXPORT_SUPPORT", 0),
            [InitFlags.BigWrites] = ("FUSE_BIG_WRITES", 0), [InitFlags.DontMask] = ("FUSE_DONT_MASK", 0),
            [InitFlags.SpliceWrite] = ("FUSE_SPLICE_WRITE", 0), [InitFlags.SpliceMove] = ("FUSE_SPLICE_MOVE", 0),
            [InitFlags.SpliceRead] = ("FUSE_SPLICE_READ", 0), [InitFlags.FlockLocks] = ("FUSE_FLOCK_LOCKS", 0),
            [InitFlags.HasIoctlDir] = ("FUSE_HAS_IOCTL_DIR", 0), [InitFlags.AutoInvalData] = ("FUSE_AUTO_INVAL_DATA", 0),
            [InitFlags.DoReaddirplus] = ("FUSE_DO_READDIRPLUS", 0), [InitFlags.ReaddirplusAuto] = ("FUSE_READDIRPLUS_AUTO", 0),
            [InitFlags.AsyncDio] = ("FUSE_ASYNC_DIO", 0), [InitFlags.WritebackCache] = ("FUSE_WRITEBACK_CACHE", 0),
            [InitFlags.NoOpenSupport] = ("FUSE_NO_OPEN_SUPPORT", 0), [InitFlags.ParallelDirops] = ("FUSE_PARALLEL_DIROPS", 0),
            [InitFlags.HandleKillpriv] = ("FUSE_HANDLE_KILLPRIV", 0), [InitFlags.PosixAcl] = ("FUSE_POSIX_ACL", 0),
            [InitFlags.AbortError] = ("FUSE_ABORT_ERROR", 0), [InitFlags.MaxPages] = ("FUSE_MAX_PAGES", 0),
            [InitFlags.CacheSymlinks] = ("FUSE_CACHE_SYMLINKS", 0), [InitFlags.NoOpendirSupport] = ("FUSE_NO_OPENDIR_SUPPORT", 0),
            [InitFlags.ExplicitInvalData] = ("FUSE_EXPLICIT_INVAL_DATA", 0), [InitFlags.MapAlignment] = ("FUSE_MAP_ALIGNMENT", 0),
            [InitFlags.Submounts] = ("FUSE_SUBMOUNTS", 0), [InitFlags.HandleKillprivV2] = ("FUSE_HANDLE_KILLPRIV_V2", 0),
            [InitFlags.SetxattrExt] = ("FUSE_SETXATTR_EXT", 0), [InitFlags.InitExt] = ("FUSE_INIT_EXT", 0),
            [InitFlags.InitReserved] = ("FUSE_INIT_RESERVED", 0), [InitFlags.SecurityCtx] = ("FUSE_SECURITY_CTX", 0),
            [InitFlags.HasInodeDax] = ("FUSE_HAS_INODE_DAX", 0), [InitFlags.CreateSuppGroup] = ("FUSE_CREATE_SUPP_GROUP", 39),
            [InitFlags.HasExpireOnly] = ("FUSE_HAS_EXPIRE_ONLY", 0), [InitFlags.DirectIoAllowMmap] = ("FUSE_DIRECT_IO_ALLOW_MMAP", 39),
            [InitFlags.Passthrough] = ("FUSE_PASSTHROUGH", 40), [InitFlags.NoExportSupport] = ("FUSE_NO_EXPORT_SUPPORT", 40),
            [InitFlags.HasResend] = ("FUSE_HAS_RESEND", 40), [InitFlags.AllowIdmap] = ("FUSE_ALLOW_IDMAP", 40),
            [InitFlags.OverIoUring] = ("FUSE_OVER_IO_URING", 42),
        };
        foreach (var f in Enum.GetValues<InitFlags>())
        {
            if (f == InitFlags.None) continue;
            if (!initNames.TryGetValue(f, out var n)) throw new InvalidOperationException($"InitFlags.{f} has no C name in the test table: add it");
            yield return new($"InitFlags.{f}", n.C, (ulong)f, n.Since);
        }
        foreach (var f in Enum.GetValues<OpenReplyFlags>())
        {
            if (f == OpenReplyFlags.None) continue;
            string c = f switch
            {
                OpenReplyFlags.DirectIo => "FOPEN_DIRECT_IO", OpenReplyFlags.KeepCache => "FOPEN_KEEP_CACHE",
                OpenReplyFlags.NonSeekable => "FOPEN_NONSEEKABLE", OpenReplyFlags.CacheDir => "FOPEN_CACHE_DIR",
                OpenReplyFlags.Stream => "FOPEN_STREAM", OpenReplyFlags.NoFlush => "FOPEN_NOFLUSH",
                OpenReplyFlags.ParallelDirectWrites => "FOPEN_PARALLEL_DIRECT_WRITES", OpenReplyFlags.Passthrough => "FOPEN_PASSTHROUGH",
                _ => throw new InvalidOperationException($"OpenReplyFlags.{f} has no C name in the test table"),
            };
            yield return new($"OpenReplyFlags.{f}", c, (ulong)f, f == OpenReplyFlags.Passthrough ? 40 : 0);
        }
        foreach (var f in Enum.GetValues<SetAttrValid>())
        {
            string c = f switch
            {
                SetAttrValid.ATimeNow => "FATTR_ATIME_NOW", SetAttrValid.MTimeNow => "FATTR_MTIME_NOW",
                SetAttrValid.LockOwner => "FATTR_LOCKOWNER", SetAttrValid.KillSuidGid => "FATTR_KILL_SUIDGID",
                _ => "FATTR_" + f.ToString().ToUpperInvariant(),
            };
            yield return new($"SetAttrValid.{f}", c, (ulong)f);
        }
        foreach (var n in Enum.GetValues<NotifyCode>())
        {
            string c = n switch
            {
                NotifyCode.InvalInode => "FUSE_NOTIFY_INVAL_INODE", NotifyCode.InvalEntry => "FUSE_NOTIFY_INVAL_ENTRY",
                NotifyCode.IncEpoch => "FUSE_NOTIFY_INC_EPOCH",
                _ => "FUSE_NOTIFY_" + n.ToString().ToUpperInvariant(),
            };
            yield return new($"NotifyCode.{n}", c, (ulong)n, n switch { NotifyCode.Resend => 40, NotifyCode.IncEpoch => 44, _ => 0 });
        }
        yield return new("FuseConstants.RootId", "FUSE_ROOT_ID", FuseConstants.RootId);
        yield return new("FuseConstants.KernelVersion", "FUSE_KERNEL_VERSION", FuseConstants.KernelVersion);
        yield return new("FuseConstants.MinReadBuffer", "FUSE_MIN_READ_BUFFER", FuseConstants.MinReadBuffer);
        yield return new("FuseConstants.GetAttrFh", "FUSE_GETATTR_FH", FuseConstants.GetAttrFh);
        yield return new("FuseConstants.LkFlock", "FUSE_LK_FLOCK", FuseConstants.LkFlock);
        yield return new("FuseConstants.ReleaseFlush", "FUSE_RELEASE_FLUSH", FuseConstants.ReleaseFlush);
        yield return new("FuseConstants.ReleaseFlockUnlock", "FUSE_RELEASE_FLOCK_UNLOCK", FuseConstants.ReleaseFlockUnlock);
        yield return new("FuseConstants.WriteCache", "FUSE_WRITE_CACHE", FuseConstants.WriteCache);
        yield return new("FuseConstants.WriteLockOwner", "FUSE_WRITE_LOCKOWNER", FuseConstants.WriteLockOwner);
        yield return new("FuseConstants.WriteKillSuidGid", "FUSE_WRITE_KILL_SUIDGID", FuseConstants.WriteKillSuidGid);
        yield return new("FuseConstants.ReadLockOwner", "FUSE_READ_LOCKOWNER", FuseConstants.ReadLockOwner);
        yield return new("FuseConstants.FsyncFdatasync", "FUSE_FSYNC_FDATASYNC", FuseConstants.FsyncFdatasync);
        yield return new("FuseConstants.OpenKillSuidGid", "FUSE_OPEN_KILL_SUIDGID", FuseConstants.OpenKillSuidGid);
        yield return new("FuseConstants.ExpireOnly", "FUSE_EXPIRE_ONLY", FuseConstants.ExpireOnly);
        yield return new("FuseConstants.ExtGroups", "FUSE_EXT_GROUPS", FuseConstants.ExtGroups, 39);
        yield return new("FuseConstants.DevIocClone", "FUSE_DEV_IOC_CLONE", FuseConstants.DevIocClone);
        yield return new("FuseConstants.DevIocBackingOpen", "FUSE_DEV_IOC_BACKING_OPEN", FuseConstants.DevIocBackingOpen, 40);
        yield return new("FuseConstants.DevIocBackingClose", "FUSE_DEV_IOC_BACKING_CLOSE", FuseConstants.DevIocBackingClose, 40);
    }

    public static readonly WireConstant[] Constants = Build().ToArray();
}
