using Lamina.Native;

namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>Small syscall helpers for driving a mount from the test process.</summary>
public static class Posix
{
    public const int SIGKILL = 9, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    public static Errno Errno => Sys.LastErrno;

    public static Statx LStat(string path)
    {
        if (Sys.LStatxAt(Sys.AT_FDCWD, path, out var st) != 0) throw new ErrnoException(Sys.LastErrno, "statx", path);
        return st;
    }

    /// <summary>The errno of an lstat of <paramref name="path"/> (None when it works).</summary>
    public static Errno LStatErrno(string path) => Sys.LStatxAt(Sys.AT_FDCWD, path, out _) == 0 ? Errno.None : Sys.LastErrno;

    public static SafeFd Open(string path, int flags, uint mode = 0x1a4)
    {
        int fd = Sys.Open(path, flags | Sys.O_CLOEXEC, mode);
        if (fd < 0) throw new ErrnoException(Sys.LastErrno, "open", path);
        return new SafeFd(fd);
    }

    public static void Check(int result, string what, string? path = null)
    {
        if (result < 0) throw new ErrnoException(Sys.LastErrno, what, path);
    }

    public static Errno Rename(string from, string to, uint flags) =>
        Sys.RenameAt2(Sys.AT_FDCWD, from, Sys.AT_FDCWD, to, flags) == 0 ? Errno.None : Sys.LastErrno;

    public static byte[]? GetXattr(string path, string name, out Errno errno)
    {
        var buf = new byte[65536];
        nint n = Sys.GetXattr(path, name, buf);
        errno = n < 0 ? Sys.LastErrno : Errno.None;
        return n < 0 ? null : buf[..(int)n];
    }

    public static string[] ListXattr(string path)
    {
        var buf = new byte[65536];
        nint n = Sys.ListXattr(path, buf);
        if (n < 0) throw new ErrnoException(Sys.LastErrno, "listxattr", path);
        return System.Text.Encoding.UTF8.GetString(buf, 0, (int)n).Split('\0', StringSplitOptions.RemoveEmptyEntries);
    }

    public static FLock Lock(short type, long start = 0, long len = 0) => new() { Type = type, Whence = 0, Start = start, Len = len };

    public static string Run(string file, out int exitCode, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 120 s"); }
        exitCode = p.ExitCode;
        return o + err.Result;
    }
}
