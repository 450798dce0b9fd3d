using System.Globalization;
using System.Text;
using Lamina.Cli.Control;
using Lamina.Locks;

namespace Lamina.Cli.Commands;

/// <summary>
/// `lamina locks MOUNTPOINT`: every lock held through the mount, as lslocks(8) lists them (COMMAND,
/// PID, TYPE, MODE, START, END, PATH with the union path), plus the branch file each is mirrored onto.
/// END is 0 for "to the end of the file", as lslocks prints it.
/// </summary>
public static class LocksCommand
{
    private const string Usage = "usage: lamina locks MOUNTPOINT [--raw]";

    public static int Run(string[] args)
    {
        bool raw = args.Contains("--raw");
        var operands = args.Where(a => a != "--raw").ToArray();
        if (operands.Length != 1 || operands[0].StartsWith('-')) return Program.Fail(Usage);
        string mountPoint = Path.GetFullPath(operands[0]);
        string? answer = ControlClient.Ask(mountPoint, "locks");
        if (answer is null) return Program.Fail($"{mountPoint}: no Lamina daemon answers for this mount point", 1);
        if (answer.StartsWith("error:", StringComparison.Ordinal)) return Program.Fail(answer.Trim(), 1);
        if (raw) { Console.Write(answer); return 0; }
        Console.Write(Format(Decode(answer)));
        return 0;
    }

    public sealed record Row(string Command, int Pid, string Type, string Mode, long Start, long End, string Path, string? Mirror);

    /// <summary>The daemon's side: one tab-separated line per lock (command names are read there, in the daemon's pid namespace).</summary>
    public static string Encode(IEnumerable<LockInfo> locks)
    {
        var sb = new StringBuilder();
        foreach (var l in locks.OrderBy(l => l.Path, StringComparer.Ordinal).ThenBy(l => l.Start))
        {
            string type = l.Kind switch { LockKind.Flock => "FLOCK", LockKind.Ofd => "OFDLCK", _ => "POSIX" };
            long end = l.End == LockRequest.ToEnd ? 0 : l.End;
            sb.Append(CultureInfo.InvariantCulture, $"{CommandOf(l.Pid)}\t{l.Pid}\t{type}\t{LockType.Name(l.Type)}\t{l.Start}\t{end}\t{l.Path ?? "(deleted)"}\t{l.Mirror ?? "-"}\n");
        }
        return sb.ToString();
    }

    public static List<Row> Decode(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t'))
            .Where(f => f.Length >= 8)
            .Select(f => new Row(f[0], int.Parse(f[1], CultureInfo.InvariantCulture), f[2], f[3],
                long.Parse(f[4], CultureInfo.InvariantCulture), long.Parse(f[5], CultureInfo.InvariantCulture), f[6], f[7] == "-" ? null : f[7]))
            .ToList();

    public static string Format(IReadOnlyList<Row> rows)
    {
        string[] head = ["COMMAND", "PID", "TYPE", "MODE", "START", "END", "PATH", "MIRRORED ON"];
        var table = rows.Select(r => new[]
        {
            r.Command, r.Pid.ToString(CultureInfo.InvariantCulture), r.Type, r.Mode,
            r.Start.ToString(CultureInfo.InvariantCulture), r.End.ToString(CultureInfo.InvariantCulture), r.Path, r.Mirror ?? "(not mirrored)",
        }).Prepend(head).ToList();
        var widths = Enumerable.Range(0, head.Length).Select(i => table.Max(r => r[i].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var r in table)
        {
            for (int i = 0; i < r.Length; i++)
            {
                bool number = i is 1 or 4 or 5;
                string cell = i == r.Length - 1 ? r[i] : number ? r[i].PadLeft(widths[i]) : r[i].PadRight(widths[i]);
                sb.Append(cell);
                if (i < r.Length - 1) sb.Append(' ');
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static string CommandOf(int pid)
    {
        if (pid <= 0) return "-";
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }
}
