using Lamina.Cli.Commands;

namespace Lamina.Cli;

public static class Program
{
    public const string Usage = """
        usage: lamina COMMAND [ARGS]

        commands:
          mount [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W[,OPTS] MOUNTPOINT
          mount [-f] [-d] BRANCHES MOUNTPOINT [-o OPTS]     BRANCHES like /a=RW:/b=RO
          umount [-l] MOUNTPOINT                            unmount (also clears a dead mount)
          status [MOUNTPOINT]                               mounts, branches, open files, copy-ups
          diff MOUNTPOINT | diff -o lowerdir=...,upperdir=...   what the writable branches change (docker diff)
          locks MOUNTPOINT                                  every lock held through the mount, as lslocks lists them
          watch [-m] [-r] [-e EVENTS] [--format FMT] [--json] PATH...   events as inotifywait prints them, branch changes included
          checkpoint MOUNTPOINT FILE | restore MOUNTPOINT FILE  save / rebuild the daemon's watch tables with the same wds
          demo                                              a narrated tour on a temporary union
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "mount" when args is [_, "--version" or "-V"] => Version(), // what containers/storage asks a mount_program
                "mount" => MountCommand.Run(args[1..]),
                "umount" or "unmount" => UmountCommand.Run(args[1..]),
                "status" => StatusCommand.Run(args[1..]),
                "diff" => DiffCommand.Run(args[1..]),
                "locks" => LocksCommand.Run(args[1..]),
                "watch" => WatchCommand.Run(args[1..]),
                "checkpoint" => CheckpointCommand.Checkpoint(args[1..]),
                "restore" => CheckpointCommand.Restore(args[1..]),
                "demo" => DemoCommand.Run(args[1..]),
                "--version" or "version" => Version(),
                _ => Fail($"unknown command '{args[0]}' (try lamina --help)"),
            };
        }
        catch (CommandLineException ex)
        {
            return Fail(ex.Message);
        }
    }

    private static int Version()
    {
        Console.WriteLine($"lamina {typeof(Program).Assembly.GetName().Version}");
        return 0;
    }

    public static int Fail(string message, int code = 2)
    {
        Console.Error.WriteLine($"lamina: {message}");
        return code;
    }
}

/// <summary>Bad command-line input: reported as one line, before anything is changed.</summary>
public sealed class CommandLineException(string message) : Exception(message);
