using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    public const byte DT_UNKNOWN = 0, DT_FIFO = 1, DT_CHR = 2, DT_DIR = 4, DT_BLK = 6, DT_REG = 8, DT_LNK = 10, DT_SOCK = 12;

    private const long SYS_getdents64 = 217;

    [LibraryImport(Libc, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall_getdents64(long number, int fd, byte* buf, nuint count);

    /// <summary>getdents64(2): fills <paramref name="buf"/> with linux_dirent64 records; 0 at the end.</summary>
    public static int GetDents64(int fd, Span<byte> buf)
    {
        fixed (byte* p = buf) return (int)syscall_getdents64(SYS_getdents64, fd, p, (nuint)buf.Length);
    }

    /// <summary>Reads every entry of an open directory (except . and ..) as (name, d_type, d_ino).</summary>
    public static List<(string Name, byte Type, ulong Ino)>? ReadDirectory(int dirfd)
    {
        var result = new List<(string, byte, ulong)>();
        var buf = new byte[64 * 1024];
        if (LSeek(dirfd, 0, SEEK_SET) < 0) return null;
        while (true)
        {
            int n = GetDents64(dirfd, buf);
            if (n < 0) return null;
            if (n == 0) return result;
            int pos = 0;
            while (pos < n)
            {
                ulong ino = BitConverter.ToUInt64(buf, pos);
                ushort reclen = BitConverter.ToUInt16(buf, pos + 16);
                byte type = buf[pos + 18];
                var nameSpan = buf.AsSpan(pos + 19, reclen - 19);
                int len = nameSpan.IndexOf((byte)0);
                if (len < 0) len = nameSpan.Length;
                nameSpan = nameSpan[..len];
                if (!(len == 1 && nameSpan[0] == '.') && !(len == 2 && nameSpan[0] == '.' && nameSpan[1] == '.'))
                    result.Add((System.Text.Encoding.UTF8.GetString(nameSpan), type, ino));
                pos += reclen;
            }
        }
    }
}
