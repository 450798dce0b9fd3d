using System.Runtime.InteropServices;
using Lamina.Fuse;
using Lamina.Fuse.Mounting;
using Lamina.Native;
using Lamina.Samples.Loopback;

// lamina-loopback: mirrors SOURCE at MOUNTPOINT through Lamina.Fuse. The transport's test bed.
var positional = new List<string>();
bool passthrough = true, allowOther = false, unprivileged = false, debug = false, writeback = false, splice = true;
double timeout = 1.0;
int workers = new FuseSessionOptions().Workers;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--no-passthrough": passthrough = false; break;
        case "--writeback": writeback = true; passthrough = false; break; // the kernel refuses passthrough with the writeback cache
        case "--no-splice": splice = false; break;
        case "--allow-other": allowOther = true; break;
        case "--unprivileged": unprivileged = true; break;
        case "--debug": debug = true; break;
        case "--timeout" when i + 1 < args.Length: timeout = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--workers" when i + 1 < args.Length: workers = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case var a when a.StartsWith('-'):
            Console.Error.WriteLine($"lamina-loopback: unknown option {a}");
            return 2;
        default: positional.Add(args[i]); break;
    }
}
if (positional.Count != 2)
{
    Console.Error.WriteLine("usage: lamina-loopback SOURCE MOUNTPOINT [--no-passthrough] [--writeback] [--no-splice] [--timeout SECONDS] [--workers N] [--allow-other] [--unprivileged]");
    return 2;
}
string source = Path.GetFullPath(positional[0]), mountPoint = Path.GetFullPath(positional[1]);
if (!Directory.Exists(source))
{
    Console.Error.WriteLine($"lamina-loopback: source {source} is not a directory");
    return 2;
}

ulong fdLimit = Sys.RaiseDescriptorLimit();
var fs = new LoopbackFileSystem(source, TimeSpan.FromSeconds(timeout), TimeSpan.FromSeconds(timeout))
{
    UsePassthrough = passthrough,
    WritebackCache = writeback,
    SpliceReads = splice,
    // Leave an eighth of the descriptors (at least 256) to open files, directories and the runtime.
    MaxNodes = fdLimit is 0 or > int.MaxValue ? int.MaxValue : (int)Math.Max(64L, (long)fdLimit - Math.Max(256L, (long)fdLimit / 8)),
};
FuseMount mount;
try
{
    mount = FuseMount.Mount(mountPoint, new FuseMountOptions
    {
        FsName = source, Subtype = "lamina-loopback", AllowOther = allowOther, ForceUnprivileged = unprivileged,
    });
}
catch (FuseMountException ex)
{
    Console.Error.WriteLine($"lamina-loopback: {ex.Message}");
    return 1;
}

using var session = new FuseSession(mount, fs, new FuseSessionOptions
{
    Passthrough = passthrough,
    WritebackCache = writeback,
    Workers = workers,
    Log = debug ? Console.Error.WriteLine : null,
});
fs.Session = session;
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; _ = Task.Run(() => session.Stop()); });
using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; _ = Task.Run(() => session.Stop()); });
// SIGUSR1 (10): one line of counters on standard output, for tests and the curious.
using var usr1 = PosixSignalRegistration.Create((PosixSignal)10, ctx =>
{
    ctx.Cancel = true;
    var (spliced, copied) = session.ReadReplies;
    Console.WriteLine($"stats reads-spliced={spliced} reads-copied={copied}");
    Console.Out.Flush();
});
try
{
    session.Start();
}
catch (Exception ex)
{
    Console.Error.WriteLine($"lamina-loopback: {ex.Message}");
    try { mount.Unmount(lazy: true); } catch (FuseMountException) { }
    return 1;
}
Console.WriteLine($"ready passthrough={session.Connection.Passthrough} protocol=7.{session.Connection.ProtocolMinor}"
    + ((session.Connection.Flags & Lamina.Fuse.Wire.InitFlags.WritebackCache) != 0 ? " writeback=True" : "")
    + (fs.UsesFileHandles ? " handles=True" : ""));
Console.Out.Flush();
session.Completion.GetAwaiter().GetResult();
return 0;
