using System.Runtime.InteropServices;

namespace Lamina.Native;

public static unsafe partial class Sys
{
    [LibraryImport(Libc, EntryPoint = "truncate64", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Truncate(string path, long length);
}
