using System.Diagnostics;
using Lamina.Branches;

namespace Lamina.Cli.Commands;

/// <summary>
/// `lamina mount`: checks everything it can, then (unless -f) starts itself again as a daemon in
/// its own session and returns once the daemon says the mount is ready, or with the daemon's
/// error — so a wrong option or branch is one line and a non-zero exit, with nothing mounted.
/// </summary>
public static class MountCommand
{
    internal const string ReadyMarker = "LAMINA-READY";
    internal const string DaemonVariable = "LAMINA_DAEMON";

    public static int Run(string[] args)
    {
        var arguments = MountArguments.Parse(args);
        // Validate options and branches before anything is mounted or started.
        try
        {
            BuildOptions(arguments);
        }
        catch (UnionConfigException ex)
        {
            return Program.Fail(ex.Message);
        }

        if (arguments.Foreground || Environment.GetEnvironmentVariable(DaemonVariable) == "1")
            return MountDaemon.Serve(arguments, detached: Environment.GetEnvironmentVariable(DaemonVariable) == "1");
        return StartDaemon(args);
    }

    internal static UnionOptions BuildOptions(MountArguments a)
    {
        string engine = string.Join(',', a.EngineOptions);
        var options = a.BranchListSource
            ? OptionParser.ParseBranchList(a.Source!, engine.Length == 0 ? null : engine)
            : OptionParser.ParseOverlay(engine);
        // The kernel trusts its entries for entry_timeout; the daemon trusts its directory stacks as long.
        options.TrustDirectoriesFor = a.Revalidate ?? a.EntryTimeout;
        return options;
    }

    private const string Gen0Variable = "DOTNET_GCgen0size";

    private static int StartDaemon(string[] args)
    {
        var psi = SelfStartInfo();
        psi.ArgumentList.Add("mount");
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment[DaemonVariable] = "1";
        // The runtime sizes its youngest generation from the CPU cache (tens of MiB here), and a daemon
        // that allocates a little per request keeps that much garbage around. A 4 MiB budget keeps
        // the daemon about 40 MiB smaller after a walk of 200,000 files, at no measurable cost. Only
        // the environment sets it (runtimeconfig.json does not), so only the background daemon gets it.
        if (Environment.GetEnvironmentVariable(Gen0Variable) is null) psi.Environment[Gen0Variable] = "0x400000";
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        using var child = Process.Start(psi) ?? throw new CommandLineException("could not start the mount daemon");
        child.StandardInput.Close();
        var errors = child.StandardError.ReadToEndAsync();
        string? line;
        while ((line = child.StandardOutput.ReadLine()) is not null)
        {
            if (line == ReadyMarker) return 0;
            Console.WriteLine(line);
        }
        child.WaitForExit();
        string err = errors.Result.Trim();
        if (err.Length > 0) Console.Error.WriteLine(err);
        return child.ExitCode == 0 ? 1 : child.ExitCode;
    }

    /// <summary>How to run this program again: the apphost, or dotnet with the entry assembly.</summary>
    internal static ProcessStartInfo SelfStartInfo()
    {
        string process = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(process) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
            psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        return psi;
    }
}
