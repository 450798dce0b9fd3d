using System.Runtime.InteropServices;
using Lamina.Cli.Control;
using Lamina.Cli.Fuse;
using Lamina.Fuse;
using Lamina.Fuse.Mounting;
using Lamina.Native;

namespace Lamina.Cli.Commands;

/// <summary>The serving side of a mount: the engine, the FUSE session, and the control socket.</summary>
public static class MountDaemon
{
    public static int Serve(MountArguments a, bool detached)
    {
        if (detached) Sys.SetSid();
        Sys.RaiseDescriptorLimit();
        var log = OpenLog(a);
        var options = MountCommand.BuildOptions(a);
        string mountPoint = Path.GetFullPath(a.MountPoint);
        UnionFileSystem union;
        try
        {
            union = UnionFileSystem.Mount(options);
        }
        catch (Exception ex) when (ex is Branches.UnionConfigException or IOException or UnauthorizedAccessException)
        {
            return Program.Fail(ex.Message);
        }

        // locks: the mount's lock table mirrors onto branch files unless locks=local.
        union.Locks.Mirroring = a.LockMode == "local" ? Locks.LockMirroring.Local : Locks.LockMirroring.Mirror;
        union.Locks.Mandatory = a.LockMode == "mandatory";
        union.Locks.Log = log;
        union.Locks.MaxWaiters = a.LockWaiters;
        // locks=mandatory: every write must reach the daemon to be checked, so no kernel passthrough.
        var passthrough = union.Locks.Mandatory ? PassthroughMode.Off : a.Passthrough;
        var adapter = new UnionFuse(union, a.EntryTimeout, a.AttrTimeout)
        {
            Passthrough = passthrough,
            Owners = a.Owners(),
            TrackedEntryTimeout = a.TrackedEntryTimeout,
            TrackedAttrTimeout = a.TrackedAttrTimeout,
        };
        FuseMount mount;
        try
        {
            mount = FuseMount.Mount(mountPoint, new FuseMountOptions
            {
                FsName = a.FsName ?? a.Source ?? "lamina",
                Subtype = "lamina",
                AllowOther = a.AllowOther || Sys.GetEUid() == 0,
                ReadOnly = a.ReadOnly,
                NoSuid = a.NoSuid, NoDev = a.NoDev, NoExec = a.NoExec, NoAtime = a.NoAtime,
            });
        }
        catch (FuseMountException ex)
        {
            union.Dispose();
            return Program.Fail(ex.Message);
        }

        var session = new FuseSession(mount, adapter, new FuseSessionOptions
        {
            Passthrough = passthrough != PassthroughMode.Off,
            Workers = a.Workers ?? new FuseSessionOptions().Workers,
            Log = log,
            PosixLocks = true, FlockLocks = true, // locks: served by the union's lock table
        });
        adapter.Session = session;
        try
        {
            session.Start();
        }
        catch (Exception ex)
        {
            try { mount.Unmount(lazy: true); } catch (FuseMountException) { }
            union.Dispose();
            return Program.Fail(ex.Message, 1);
        }

        // Changes made outside the mount are told to the kernel, so it may cache for long (see BranchTracker).
        var tracker = a.Tracking ? new Tracking.BranchTracker(union, adapter.CacheInvalidator) : null;
        if (tracker?.Unavailable is { } why) log?.Invoke($"branch tracking unavailable ({why}): short timeouts everywhere");
        tracker?.Start();
        adapter.Tracker = tracker;

        using var control = ControlServer.Start(mountPoint, a, union, adapter, session, log);
        // A signal stops the daemon (for a restart, say) and keeps the watches for the next one; an
        // unmount from outside ends the session without it, and ends the watches too.
        bool signalled = false;
        void Stop(PosixSignalContext ctx) { ctx.Cancel = true; Volatile.Write(ref signalled, true); _ = Task.Run(() => session.Stop()); }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, ctx => ctx.Cancel = true);

        log?.Invoke($"mounted {mountPoint} (passthrough={session.Connection.Passthrough}, protocol 7.{session.Connection.ProtocolMinor})");
        Console.WriteLine(MountCommand.ReadyMarker);
        Console.Out.Flush();
        if (detached) DetachStdio();
        try
        {
            session.Completion.GetAwaiter().GetResult();
        }
        catch (Exception ex)
        {
            log?.Invoke($"session ended: {ex.Message}");
        }
        bool restart = Volatile.Read(ref signalled);
        // Stopped by a signal, watches outlive the daemon: the table is saved and the watch streams
        // told to reconnect (W2b). Unmounted, they end as at any unmount.
        if (restart) control?.SuspendWatches();
        else control?.EndWatches();
        tracker?.Dispose();
        union.Dispose();
        if (!restart) control?.AwaitWatchStreams(TimeSpan.FromSeconds(2));
        session.Dispose();
        log?.Invoke($"unmounted {mountPoint}");
        return 0;
    }

    private static Action<string>? OpenLog(MountArguments a)
    {
        if (a.LogFile is { } path)
        {
            var writer = new StreamWriter(path, append: true) { AutoFlush = true };
            return line => { lock (writer) writer.WriteLine($"{DateTime.UtcNow:O} {line}"); };
        }
        return a.Debug ? line => Console.Error.WriteLine(line) : null;
    }

    /// <summary>The parent has gone once it read the ready line: point stdio at /dev/null so later writes cannot fail.</summary>
    private static void DetachStdio()
    {
        int devnull = Sys.Open("/dev/null", Sys.O_RDWR);
        if (devnull < 0) return;
        Sys.Dup2(devnull, 0);
        Sys.Dup2(devnull, 1);
        Sys.Dup2(devnull, 2);
        if (devnull > 2) Sys.Close(devnull);
    }
}
