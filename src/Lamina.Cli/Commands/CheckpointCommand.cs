using Lamina.Cli.Control;

namespace Lamina.Cli.Commands;

/// <summary>`lamina checkpoint MOUNTPOINT FILE` and `lamina restore MOUNTPOINT FILE`: the daemon's watch tables (W2b).</summary>
public static class CheckpointCommand
{
    public static int Checkpoint(string[] args) => Ask(args, "checkpoint", "watch-checkpoint");

    public static int Restore(string[] args) => Ask(args, "restore", "watch-restore");

    private static int Ask(string[] args, string command, string verb)
    {
        if (args.Length != 2) throw new CommandLineException($"usage: lamina {command} MOUNTPOINT FILE");
        string mountPoint = Path.GetFullPath(args[0]);
        string? answer = ControlClient.Ask(mountPoint, $"{verb} {Path.GetFullPath(args[1])}");
        if (answer is null) return Program.Fail($"{mountPoint}: no Lamina daemon answers for this mount point", 1);
        Console.Write(answer);
        return answer.StartsWith("error", StringComparison.Ordinal) ? 1 : 0;
    }
}
