using System.Buffers.Binary;
using System.Text;
using Lamina.Fuse.Tests.Infrastructure;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse.Tests;

/// <summary>
/// Request parsing and reply building without the kernel: the session serves one end of a
/// SOCK_SEQPACKET socketpair and the test writes hand-built requests into the other, then checks
/// the reply bytes at the offsets fuse.h gives (not through the structs under test).
/// </summary>
public sealed class ProtocolTests
{
    private static uint U32(byte[] b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(off));
    private static int I32(byte[] b, int off) => BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(off));
    private static ulong U64(byte[] b, int off) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(off));
    private static ushort U16(byte[] b, int off) => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(off));
    private static byte[] Le32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return b; }
    private static byte[] Le64(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); return b; }
    private static byte[] Z(string s) => Encoding.UTF8.GetBytes(s + "\0");

    /// <summary>Checks fuse_out_header: len (whole message), error, unique.</summary>
    private static void AssertHeader(byte[] reply, ulong unique, int error, int payload)
    {
        Assert.True(reply.Length == 16 + payload, $"reply is {reply.Length} bytes, expected {16 + payload}");
        Assert.Equal((uint)reply.Length, U32(reply, 0));
        Assert.Equal(error, I32(reply, 4));
        Assert.Equal(unique, U64(reply, 8));
    }

    private static (FakeKernel K, RecordingFileSystem Fs) Started(FuseSessionOptions? options = null)
    {
        var fs = new RecordingFileSystem();
        var k = new FakeKernel(fs, options);
        try
        {
            var init = k.Start();
            AssertHeader(init, 1, 0, 64);
            return (k, fs);
        }
        catch
        {
            k.Dispose();
            throw;
        }
    }

    [Fact]
    public void Init_negotiates_version_limits_and_only_wanted_flags()
    {
        var fs = new RecordingFileSystem();
        using var k = new FakeKernel(fs, new FuseSessionOptions { MaxPages = 32, PosixLocks = false, WritebackCache = false });
        var r = k.Start(minor: 45, unique: 0x1234);
        AssertHeader(r, 0x1234, 0, 64);
        const int p = 16;
        Assert.Equal(7u, U32(r, p + 0));                 // major
        Assert.Equal(45u, U32(r, p + 4));                // minor
        Assert.Equal(128u * 1024, U32(r, p + 8));        // max_readahead echoed
        ulong flags = U32(r, p + 12) | ((ulong)U32(r, p + 32) << 32); // flags | flags2 << 32
        Assert.Equal(32u * 4096, U32(r, p + 20));        // max_write
        Assert.Equal(1u, U32(r, p + 24));                // time_gran
        Assert.Equal((ushort)32, U16(r, p + 28));        // max_pages
        var f = (InitFlags)flags;
        Assert.True(f.HasFlag(InitFlags.AsyncRead | InitFlags.BigWrites | InitFlags.MaxPages | InitFlags.InitExt | InitFlags.DoReaddirplus | InitFlags.ParallelDirops));
        Assert.False(f.HasFlag(InitFlags.WritebackCache), "writeback cache was not asked for");
        Assert.False(f.HasFlag(InitFlags.PosixLocks), "POSIX locks were not asked for");
        Assert.False(f.HasFlag(InitFlags.SpliceRead), "splice is never asked for");
        bool passthrough = f.HasFlag(InitFlags.Passthrough);
        Assert.Equal(Sys.GetEUid() == 0, passthrough); // passthrough needs CAP_SYS_ADMIN for BACKING_OPEN
        Assert.Equal(passthrough ? 1u : 0u, U32(r, p + 36)); // max_stack_depth
        Assert.NotNull(fs.Connection);
        Assert.Equal(45u, fs.Connection!.ProtocolMinor);
        Assert.Equal(f, fs.Connection.Flags);
        Assert.Equal(k.Session.Connection.Passthrough, passthrough);
    }

    [Fact]
    public void Init_from_a_newer_kernel_answers_our_minor_and_without_init_ext_ignores_flags2()
    {
        var fs = new RecordingFileSystem();
        using var k = new FakeKernel(fs);
        // An old-style kernel: no FUSE_INIT_EXT, but garbage in flags2 that must not be read.
        var offered = (InitFlags)0xffffffffUL & ~InitFlags.InitExt | InitFlags.Passthrough;
        var r = k.Start(minor: 99, offered: offered);
        AssertHeader(r, 1, 0, 64);
        Assert.Equal(45u, U32(r, 16 + 4));
        Assert.Equal(0u, U32(r, 16 + 32)); // flags2 stays empty without INIT_EXT
        Assert.False(k.Session.Connection.Passthrough);
        Assert.Equal(0u, U32(r, 16 + 12) & (uint)InitFlags.InitExt);
    }

    [Fact]
    public void Init_with_minor_30_is_EPROTO_and_Start_throws()
    {
        var fs = new RecordingFileSystem();
        using var k = new FakeKernel(fs);
        var init = new InitIn { Major = 7, Minor = 30, MaxReadahead = 65536 };
        k.Send(Opcode.Init, 77, 0, FakeKernel.Bytes(init));
        var ex = Assert.Throws<ErrnoException>(() => k.Session.Start());
        Assert.Equal(Errno.EPROTO, ex.Errno);
        Assert.Contains("7.30", ex.Message);
        AssertHeader(k.Receive(), 77, -(int)Errno.EPROTO, 0);
        Assert.Null(fs.Connection);
    }

    [Fact]
    public void A_request_before_INIT_is_EIO_and_INIT_still_works()
    {
        var fs = new RecordingFileSystem();
        using var k = new FakeKernel(fs);
        k.Send(Opcode.GetAttr, 5, RecordingFileSystem.FileNode, new byte[16]);
        var init = k.Start(unique: 6);
        AssertHeader(init, 5, -(int)Errno.EIO, 0);
        AssertHeader(k.Receive(), 6, 0, 64);
    }

    [Fact]
    public void Lookup_replies_fuse_entry_out_and_ENOENT_with_header_only()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.Lookup, 10, FuseConstants.RootId, Z("hello"), uid: 1234, gid: 5678, pid: 999);
        var r = k.Receive();
        AssertHeader(r, 10, 0, 128);
        Assert.Equal(RecordingFileSystem.FileNode, U64(r, 16 + 0));  // nodeid
        Assert.Equal(7UL, U64(r, 16 + 8));                          // generation
        Assert.Equal(1UL, U64(r, 16 + 16));                         // entry_valid
        Assert.Equal(2UL, U64(r, 16 + 24));                         // attr_valid
        Assert.Equal(250_000_000u, U32(r, 16 + 32));                // entry_valid_nsec
        Assert.Equal(0u, U32(r, 16 + 36));                          // attr_valid_nsec
        int a = 16 + 40;                                            // fuse_attr
        Assert.Equal(RecordingFileSystem.FileNode, U64(r, a + 0));
        Assert.Equal((ulong)RecordingFileSystem.FileData.Length, U64(r, a + 8));
        Assert.Equal(1_700_000_001UL, U64(r, a + 32));              // mtime
        Assert.Equal(3u, U32(r, a + 56));                           // ctimensec
        Assert.Equal(0x81a4u, U32(r, a + 60));                      // mode
        Assert.Equal(1u, U32(r, a + 64));                           // nlink
        Assert.Equal(4096u, U32(r, a + 80));                        // blksize
        Assert.Equal(1234u, fs.LastContext.Uid);
        Assert.Equal(5678u, fs.LastContext.Gid);
        Assert.Equal(999u, fs.LastContext.Pid);
        Assert.Equal(10UL, fs.LastContext.Unique);

        k.Send(Opcode.Lookup, 11, FuseConstants.RootId, Z("missing"));
        AssertHeader(k.Receive(), 11, -(int)Errno.ENOENT, 0);
    }

    [Fact]
    public void Lookup_with_a_groups_extension_passes_the_groups_and_a_name_without_the_extension()
    {
        var (k, fs) = Started();
        using var _ = k;
        // fuse_ext_header { size = 16, type = FUSE_EXT_GROUPS } + fuse_supp_groups { nr_groups = 1, groups[1] }.
        var ext = FakeKernel.Concat(Le32(16), Le32(FuseConstants.ExtGroups), Le32(1), Le32(4321));
        k.Send(Opcode.Lookup, 12, FuseConstants.RootId, FakeKernel.Concat(Z("hello"), new byte[2]), ext);
        AssertHeader(k.Receive(), 12, 0, 128);
        Assert.Equal("lookup 1 hello", fs.Calls.Last());
        Assert.Equal([4321u], fs.LastContext.SupplementaryGroups!);
    }

    [Fact]
    public void GetAttr_replies_fuse_attr_out_and_passes_the_fh_only_with_GETATTR_FH()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.GetAttr, 20, RecordingFileSystem.FileNode, FakeKernel.Concat(Le32(FuseConstants.GetAttrFh), Le32(0), Le64(0xABCDEF)));
        var r = k.Receive();
        AssertHeader(r, 20, 0, 104);
        Assert.Equal(3UL, U64(r, 16 + 0));                                 // attr_valid
        Assert.Equal(RecordingFileSystem.FileNode, U64(r, 16 + 16 + 0));   // attr.ino
        Assert.Equal(0x81a4u, U32(r, 16 + 16 + 60));                       // attr.mode
        Assert.Equal(0xABCDEFUL, fs.LastGetAttrFh);

        k.Send(Opcode.GetAttr, 21, RecordingFileSystem.FileNode, FakeKernel.Concat(Le32(0), Le32(0), Le64(0xABCDEF)));
        AssertHeader(k.Receive(), 21, 0, 104);
        Assert.Null(fs.LastGetAttrFh);
    }

    [Fact]
    public void Read_replies_the_data_itself_and_short_at_the_end()
    {
        var (k, _) = Started();
        using var __ = k;
        var read = new ReadIn { Fh = 3, Offset = 10, Size = 20 };
        k.Send(Opcode.Read, 30, RecordingFileSystem.FileNode, FakeKernel.Bytes(read));
        var r = k.Receive();
        AssertHeader(r, 30, 0, 20);
        Assert.Equal(RecordingFileSystem.FileData.AsSpan(10, 20).ToArray(), r[16..]);

        read.Offset = (ulong)RecordingFileSystem.FileData.Length - 4;
        read.Size = 4096;
        k.Send(Opcode.Read, 31, RecordingFileSystem.FileNode, FakeKernel.Bytes(read));
        r = k.Receive();
        AssertHeader(r, 31, 0, 4);
        Assert.Equal("WXYZ", Encoding.ASCII.GetString(r, 16, 4));
    }

    [Fact]
    public void Write_passes_exactly_the_data_and_replies_fuse_write_out()
    {
        var (k, fs) = Started();
        using var _ = k;
        var data = Encoding.ASCII.GetBytes("payload");
        var w = new WriteIn { Fh = 3, Offset = 4096, Size = (uint)data.Length };
        k.Send(Opcode.Write, 40, RecordingFileSystem.FileNode, FakeKernel.Concat(FakeKernel.Bytes(w), data));
        var r = k.Receive();
        AssertHeader(r, 40, 0, 8);
        Assert.Equal(7u, U32(r, 16));   // size
        Assert.Equal(0u, U32(r, 20));   // padding
        Assert.Equal(4096UL, fs.LastWrite!.Value.Offset);
        Assert.Equal(data, fs.LastWrite.Value.Data);
    }

    private static List<(ulong Ino, ulong Off, string Name, uint Type)> ParseDirents(byte[] r)
    {
        var list = new List<(ulong, ulong, string, uint)>();
        for (int pos = 16; pos < r.Length;)
        {
            uint len = U32(r, pos + 16);
            list.Add((U64(r, pos), U64(r, pos + 8), Encoding.ASCII.GetString(r, pos + 24, (int)len), U32(r, pos + 20)));
            pos += (24 + (int)len + 7) & ~7;
        }
        return list;
    }

    [Fact]
    public void ReadDir_fills_a_tiny_buffer_with_whole_aligned_entries_and_resumes_at_the_offset()
    {
        var (k, _) = Started();
        using var __ = k;
        var names = new List<string>();
        ulong offset = 0;
        for (int round = 0; round < 20; round++)
        {
            // 64 bytes: two entries of 24 + 2 bytes of name, padded to 32.
            var req = new ReadIn { Fh = 99, Offset = offset, Size = 64 };
            k.Send(Opcode.ReadDir, 50 + (ulong)round, FuseConstants.RootId, FakeKernel.Bytes(req));
            var r = k.Receive();
            Assert.Equal(50 + (ulong)round, U64(r, 8));
            Assert.Equal(0, I32(r, 4));
            if (r.Length == 16) break;
            Assert.Equal(16 + 64, r.Length);
            var entries = ParseDirents(r);
            Assert.Equal(2, entries.Count);
            Assert.True(r.AsSpan(16 + 26, 6).IndexOfAnyExcept((byte)0) < 0, "name padding must be zero");
            foreach (var e in entries) { names.Add(e.Name); Assert.Equal(8u, e.Type); Assert.Equal(100 + e.Off - 1, e.Ino); }
            offset = entries[^1].Off;
        }
        Assert.Equal(RecordingFileSystem.DirNames, names);

        // Smaller than one entry: an empty, successful reply (the kernel then sees the end).
        k.Send(Opcode.ReadDir, 80, FuseConstants.RootId, FakeKernel.Bytes(new ReadIn { Fh = 99, Size = 31 }));
        AssertHeader(k.Receive(), 80, 0, 0);
    }

    [Fact]
    public void ReadDirPlus_puts_a_fuse_entry_out_before_each_dirent()
    {
        var (k, _) = Started();
        using var __ = k;
        // 200 bytes: one entry_out (128) + dirent (24) + "e0" padded = 160; two would need 320.
        k.Send(Opcode.ReadDirPlus, 90, FuseConstants.RootId, FakeKernel.Bytes(new ReadIn { Fh = 99, Offset = 3, Size = 200 }));
        var r = k.Receive();
        AssertHeader(r, 90, 0, 160);
        Assert.Equal(103UL, U64(r, 16 + 0));            // entry_out.nodeid
        Assert.Equal(103UL, U64(r, 16 + 40));           // entry_out.attr.ino
        Assert.Equal(103UL, U64(r, 16 + 128 + 0));      // dirent.ino
        Assert.Equal(4UL, U64(r, 16 + 128 + 8));        // dirent.off: resumes after e3
        Assert.Equal(2u, U32(r, 16 + 128 + 16));        // namelen
        Assert.Equal("e3", Encoding.ASCII.GetString(r, 16 + 152, 2));
    }

    [Fact]
    public void OpenDir_never_replies_passthrough()
    {
        var (k, _) = Started();
        using var __ = k;
        k.Send(Opcode.OpenDir, 95, FuseConstants.RootId, new byte[8]);
        var r = k.Receive();
        AssertHeader(r, 95, 0, 16);
        Assert.Equal(99UL, U64(r, 16));
        Assert.Equal((uint)OpenReplyFlags.CacheDir, U32(r, 24));
    }

    [Fact]
    public void SetXattr_in_the_8_byte_form_passes_name_value_and_flags()
    {
        var (k, fs) = Started();
        using var _ = k;
        var value = new byte[] { 1, 0, 2, 0, 3 }; // binary, with NULs
        var body = FakeKernel.Concat(Le32((uint)value.Length), Le32(1 /* XATTR_CREATE */), Z("user.key"), value);
        k.Send(Opcode.SetXattr, 100, RecordingFileSystem.FileNode, body);
        AssertHeader(k.Receive(), 100, 0, 0);
        Assert.Equal("user.key", fs.LastSetXattr!.Value.Name);
        Assert.Equal(value, fs.LastSetXattr.Value.Value);
        Assert.Equal(1, fs.LastSetXattr.Value.Flags);
    }

    [Fact]
    public void Rename2_passes_the_flags_and_Rename_passes_none()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.Rename2, 110, 1, FakeKernel.Concat(Le64(7), Le32(2 /* RENAME_EXCHANGE */), Le32(0), Z("old"), Z("new")));
        AssertHeader(k.Receive(), 110, 0, 0);
        Assert.Equal((1UL, "old", 7UL, "new", 2u), fs.LastRename!.Value);

        k.Send(Opcode.Rename, 111, 3, FakeKernel.Concat(Le64(4), Z("a"), Z("b")));
        AssertHeader(k.Receive(), 111, 0, 0);
        Assert.Equal((3UL, "a", 4UL, "b", 0u), fs.LastRename!.Value);
    }

    [Fact]
    public void Forget_and_BatchForget_are_not_answered()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.Forget, 120, 9, Le64(3));
        k.Send(Opcode.BatchForget, 121, 0, FakeKernel.Concat(Le32(3), Le32(0), Le64(10), Le64(1), Le64(11), Le64(2), Le64(12), Le64(5)));
        k.Send(Opcode.GetAttr, 122, RecordingFileSystem.FileNode, new byte[16]);
        AssertHeader(k.Receive(), 122, 0, 104); // the next reply is GETATTR's: nothing for the forgets
        Assert.Equal([(9UL, 3UL), (10UL, 1UL), (11UL, 2UL), (12UL, 5UL)], fs.Forgotten.ToArray());
    }

    [Fact]
    public void Unimplemented_and_unknown_opcodes_are_ENOSYS()
    {
        var (k, _) = Started();
        using var __ = k;
        k.Send(Opcode.Bmap, 130, RecordingFileSystem.FileNode, new byte[16]);
        AssertHeader(k.Receive(), 130, -(int)Errno.ENOSYS, 0);
        k.Send((Opcode)9999, 131, RecordingFileSystem.FileNode, []);
        AssertHeader(k.Receive(), 131, -(int)Errno.ENOSYS, 0);
        k.Send(Opcode.Fallocate, 132, RecordingFileSystem.FileNode, new byte[32]); // interface default
        AssertHeader(k.Receive(), 132, -(int)Errno.ENOSYS, 0);
        k.Send(Opcode.Mkdir, 133, 1, FakeKernel.Concat(new byte[8], Z("d")));
        AssertHeader(k.Receive(), 133, -(int)Errno.ENOSYS, 0);
        k.Send(Opcode.Init, 134, 0, new byte[64]); // a second INIT
        AssertHeader(k.Receive(), 134, -(int)Errno.EPROTO, 0);
    }

    [Fact]
    public void A_throwing_filesystem_gets_EIO_and_the_session_goes_on()
    {
        var (k, _) = Started();
        using var __ = k;
        k.Send(Opcode.Lookup, 140, 1, Z("boom"));
        AssertHeader(k.Receive(), 140, -(int)Errno.EIO, 0);
        Assert.Contains(k.Log, l => l.Contains("a filesystem bug"));
        k.Send(Opcode.Lookup, 141, 1, Z("hello"));
        AssertHeader(k.Receive(), 141, 0, 128);
    }

    private static byte[] LkBody(ulong owner) =>
        FakeKernel.Bytes(new LkIn { Fh = 3, Owner = owner, Lk = new FileLock { Start = 0, End = ulong.MaxValue, Type = 1, Pid = 42 } });

    [Fact]
    public async Task SetLkW_frees_the_worker_and_is_answered_later_from_another_thread()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.SetLkW, 150, RecordingFileSystem.FileNode, LkBody(0x77));
        // The worker is free while the lock waits: a later request is answered first.
        k.Send(Opcode.GetAttr, 151, RecordingFileSystem.FileNode, new byte[16]);
        AssertHeader(k.Receive(), 151, 0, 104);
        Assert.True(fs.Waits.TryGetValue(150, out var wait), "SetLkWait was not called");
        Assert.Equal(0x77UL, wait.Request.Owner);
        Assert.Equal(ulong.MaxValue, wait.Request.Lk.End);
        Assert.Null(k.TryReceive(100));
        var t = new Thread(() => wait.Tcs.SetResult(Errno.None));
        t.Start();
        t.Join();
        AssertHeader(k.Receive(), 150, 0, 0);

        // A lock that fails later carries its errno.
        k.Send(Opcode.SetLkW, 152, RecordingFileSystem.FileNode, LkBody(0x78));
        k.Send(Opcode.GetAttr, 153, RecordingFileSystem.FileNode, new byte[16]);
        AssertHeader(k.Receive(), 153, 0, 104);
        await Task.Run(() => fs.Waits[152].Tcs.SetResult(Errno.EDEADLK));
        AssertHeader(k.Receive(), 152, -(int)Errno.EDEADLK, 0);
    }

    [Fact]
    public void Interrupt_cancels_a_waiting_SetLkW_which_answers_EINTR()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.SetLkW, 160, RecordingFileSystem.FileNode, LkBody(1));
        k.Send(Opcode.GetAttr, 161, RecordingFileSystem.FileNode, new byte[16]);
        AssertHeader(k.Receive(), 161, 0, 104);
        k.Send(Opcode.Interrupt, 163, 0, Le64(160)); // interrupt uniques are odd (FUSE_INT_REQ_BIT)
        AssertHeader(k.Receive(), 160, -(int)Errno.EINTR, 0);
        Assert.True(fs.Waits[160].Token.IsCancellationRequested);
        // The interrupt itself gets no reply; the session goes on.
        k.Send(Opcode.GetAttr, 164, RecordingFileSystem.FileNode, new byte[16]);
        AssertHeader(k.Receive(), 164, 0, 104);
    }

    [Fact]
    public void Interrupt_of_an_unknown_request_is_EAGAIN_so_the_kernel_retries()
    {
        var (k, _) = Started();
        using var __ = k;
        k.Send(Opcode.Interrupt, 171, 0, Le64(170));
        AssertHeader(k.Receive(), 171, -(int)Errno.EAGAIN, 0);
    }

    [Fact]
    public async Task Destroy_is_answered_calls_Destroy_and_completes_the_session()
    {
        var (k, fs) = Started();
        using var _ = k;
        k.Send(Opcode.Destroy, 180, 0, []);
        AssertHeader(k.Receive(), 180, 0, 0);
        await k.Session.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(fs.Destroyed);
    }

    [Fact]
    public async Task Notifications_carry_the_code_in_the_error_field_and_unique_zero()
    {
        var (k, _) = Started();
        using var __ = k;
        Assert.Equal(Errno.None, k.Session.Notifier.InvalidateEntry(1, "name"u8, expireOnly: true));
        var n = k.Receive();
        Assert.Equal(16 + 16 + 5, n.Length);
        Assert.Equal((uint)n.Length, U32(n, 0));
        Assert.Equal((int)NotifyCode.InvalEntry, I32(n, 4));
        Assert.Equal(0UL, U64(n, 8));
        Assert.Equal(1UL, U64(n, 16));           // parent
        Assert.Equal(4u, U32(n, 24));            // namelen
        Assert.Equal(FuseConstants.ExpireOnly, U32(n, 28));
        Assert.Equal("name\0", Encoding.ASCII.GetString(n, 32, 5));

        Assert.Equal(Errno.None, k.Session.Notifier.InvalidateInode(2, -1, 0));
        n = k.Receive();
        Assert.Equal(16 + 24, n.Length);
        Assert.Equal((int)NotifyCode.InvalInode, I32(n, 4));
        Assert.Equal(-1L, (long)U64(n, 24));

        // RETRIEVE: the kernel answers with a NOTIFY_REPLY whose unique is the notify_unique.
        var task = k.Session.Notifier.Retrieve(2, 4096, 8);
        n = k.Receive();
        Assert.Equal(16 + 32, n.Length);
        Assert.Equal((int)NotifyCode.Retrieve, I32(n, 4));
        ulong notifyUnique = U64(n, 16);
        Assert.Equal(2UL, U64(n, 24));
        Assert.Equal(4096UL, U64(n, 32));
        Assert.Equal(8u, U32(n, 40));
        var data = Encoding.ASCII.GetBytes("cached!!");
        k.Send(Opcode.NotifyReply, notifyUnique, 2,
            FakeKernel.Concat(FakeKernel.Bytes(new NotifyRetrieveIn { Offset = 4096, Size = 8 }), data));
        Assert.Equal(data, await task.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Null(k.TryReceive(50)); // NOTIFY_REPLY is not answered
    }

    [Fact]
    public void GetXattr_answers_a_size_query_with_fuse_getxattr_out_and_data_otherwise()
    {
        var (k, _) = Started();
        using var __ = k;
        k.Send(Opcode.GetXattr, 190, RecordingFileSystem.FileNode, FakeKernel.Concat(Le32(0), Le32(0), Z("user.k")));
        var r = k.Receive();
        AssertHeader(r, 190, 0, 8);
        Assert.Equal(5u, U32(r, 16));
        k.Send(Opcode.GetXattr, 191, RecordingFileSystem.FileNode, FakeKernel.Concat(Le32(64), Le32(0), Z("user.k")));
        r = k.Receive();
        AssertHeader(r, 191, 0, 5);
        Assert.Equal("value", Encoding.ASCII.GetString(r, 16, 5));
        k.Send(Opcode.GetXattr, 192, RecordingFileSystem.FileNode, FakeKernel.Concat(Le32(2), Le32(0), Z("user.k")));
        AssertHeader(k.Receive(), 192, -(int)Errno.ERANGE, 0);
        k.Send(Opcode.GetXattr, 193, RecordingFileSystem.FileNode, FakeKernel.Concat(Le32(64), Le32(0), Z("user.other")));
        AssertHeader(k.Receive(), 193, -(int)Errno.ENODATA, 0);
    }

    [Fact]
    public void ReadLink_replies_the_bare_target()
    {
        var (k, _) = Started();
        using var __ = k;
        k.Send(Opcode.ReadLink, 200, 5, []);
        var r = k.Receive();
        AssertHeader(r, 200, 0, "../some/target".Length);
        Assert.Equal("../some/target", Encoding.ASCII.GetString(r, 16, r.Length - 16));
    }

    [Fact]
    public void Create_replies_entry_then_open_and_strips_passthrough_when_it_is_off()
    {
        var (k, fs) = Started(new FuseSessionOptions { Passthrough = false });
        using var _ = k;
        var create = FakeKernel.Bytes(new CreateIn { Flags = 0x241, Mode = 0x81a4, Umask = 0x12 });
        k.Send(Opcode.Create, 210, 1, FakeKernel.Concat(create, Z("newfile")));
        var r = k.Receive();
        AssertHeader(r, 210, 0, 128 + 16);
        Assert.Equal(3UL, U64(r, 16));                                   // entry_out.nodeid
        Assert.Equal(0x55UL, U64(r, 16 + 128));                          // open_out.fh
        Assert.Equal((uint)OpenReplyFlags.KeepCache, U32(r, 16 + 136));  // open_flags without FOPEN_PASSTHROUGH
        Assert.Equal(0, I32(r, 16 + 140));                               // backing_id cleared
        Assert.Equal("create 1 newfile flags=241 mode=100644 umask=22", fs.Calls.Last());
    }

    [Fact]
    public void Extensions_longer_than_the_request_are_EINVAL()
    {
        var (k, fs) = Started();
        using var _ = k;
        // total_extlen claims 100 * 8 bytes of extensions in a 48-byte request.
        var h = new InHeader { Len = 48, Opcode = Opcode.Lookup, Unique = 220, NodeId = 1, TotalExtLen = 100 };
        k.SendRaw(FakeKernel.Concat(FakeKernel.Bytes(h), Z("hello"), new byte[2]));
        AssertHeader(k.Receive(), 220, -(int)Errno.EINVAL, 0);
        Assert.DoesNotContain(fs.Calls, c => c.StartsWith("lookup", StringComparison.Ordinal));
    }

    [Fact]
    public void Write_data_is_clipped_to_what_arrived()
    {
        var (k, fs) = Started();
        using var _ = k;
        // The header claims 1000 bytes, 10 arrive: the filesystem must see only those 10.
        var w = new WriteIn { Fh = 3, Offset = 0, Size = 1000 };
        var data = Encoding.ASCII.GetBytes("0123456789");
        k.Send(Opcode.Write, 230, RecordingFileSystem.FileNode, FakeKernel.Concat(FakeKernel.Bytes(w), data));
        var r = k.Receive();
        AssertHeader(r, 230, 0, 8);
        Assert.Equal(10u, U32(r, 16));
        Assert.Equal(data, fs.LastWrite!.Value.Data);
    }
}
