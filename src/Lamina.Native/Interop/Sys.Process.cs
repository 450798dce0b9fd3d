using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    [LibraryImport(Libc, EntryPoint = "setsid", SetLastError = true)]
    public static partial int SetSid();

    [LibraryImport(Libc, EntryPoint = "dup2", SetLastError = true)]
    public static partial int Dup2(int oldFd, int newFd);

    public const int SIGKILL = 9, SIGTERM = 15;
}
