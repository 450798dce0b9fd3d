using Lamina.Branches;
using Lamina.Cli.Control;

namespace Lamina.Cli.Commands;

/// <summary>`lamina diff MOUNTPOINT` asks the running daemon; `lamina diff -o lowerdir=...` reads branches that are not mounted.</summary>
public static class DiffCommand
{
    public static int Run(string[] args)
    {
        if (args.Length == 1 && !args[0].StartsWith('-'))
        {
            string? answer = ControlClient.Ask(Path.GetFullPath(args[0]), "diff");
            if (answer is null) return Program.Fail($"{Path.GetFullPath(args[0])}: no Lamina daemon answers for this mount point", 1);
            Console.Write(answer);
            return 0;
        }
        var a = MountArguments.Parse(args.Append("/nonexistent-mountpoint-for-diff").ToArray());
        try
        {
            using var union = UnionFileSystem.Mount(MountCommand.BuildOptions(a));
            foreach (var change in union.Diff()) Console.WriteLine(change);
            return 0;
        }
        catch (UnionConfigException ex)
        {
            return Program.Fail(ex.Message);
        }
    }
}
