using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Lamina.Cli.Commands;
using Lamina.Cli.Fuse;
using Lamina.Fuse;

namespace Lamina.Cli.Control;

/// <summary>
/// A mount daemon's local socket: `lamina status` and `lamina diff` ask it what only the
/// running engine knows. One request line in, text out, then the connection closes.
/// </summary>
public sealed partial class ControlServer : IDisposable
{
    private readonly Socket _socket;
    private readonly string _path;
    private readonly string _mountPoint;
    private readonly MountArguments _arguments;
    private readonly UnionFileSystem _union;
    private readonly UnionFuse _adapter;
    private readonly FuseSession _session;
    private readonly DateTime _started = DateTime.UtcNow;

    private ControlServer(Socket socket, string path, string mountPoint, MountArguments a, UnionFileSystem union, UnionFuse adapter, FuseSession session)
    {
        _socket = socket; _path = path; _mountPoint = mountPoint; _arguments = a; _union = union; _adapter = adapter; _session = session;
    }

    /// <summary>Listens for requests; first rebuilds the watch table a previous daemon of this mount point saved.</summary>
    public static ControlServer? Start(string mountPoint, MountArguments a, UnionFileSystem union, UnionFuse adapter, FuseSession session, Action<string>? log = null)
    {
        try
        {
            string path = ControlPaths.SocketFor(mountPoint);
            System.IO.Directory.CreateDirectory(ControlPaths.Directory);
            if (OperatingSystem.IsLinux()) File.SetUnixFileMode(ControlPaths.Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (File.Exists(path)) File.Delete(path);
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(8);
            var server = new ControlServer(socket, path, mountPoint, a, union, adapter, session);
            server.RestoreWatchState(log);
            server.StartWatchStateSaver();
            _ = Task.Run(server.AcceptLoop);
            return server;
        }
        catch (Exception ex) when (ex is IOException or SocketException or UnauthorizedAccessException)
        {
            return null; // status and diff then say the daemon cannot be reached
        }
    }

    private async Task AcceptLoop()
    {
        while (true)
        {
            Socket client;
            try { client = await _socket.AcceptAsync().ConfigureAwait(false); }
            catch (Exception) { return; }
            _ = Task.Run(() => Answer(client));
        }
    }

    private void Answer(Socket client)
    {
        using (client)
        using (var stream = new NetworkStream(client))
        using (var reader = new StreamReader(stream, Encoding.UTF8))
        using (var writer = new StreamWriter(stream, new UTF8Encoding(false)))
        {
            try
            {
                // Tabs are kept: a "watch" request ends in one when its last path is the root ("").
                string request = reader.ReadLine()?.Trim(' ', '\r') ?? "";
                string verb = request.Split(' ', 2)[0];
                string argument = request.Length > verb.Length ? request[(verb.Length + 1)..] : "";
                if (TryAnswerStreaming(verb, argument, reader, writer)) return;
                writer.Write(verb switch
                {
                    "status" => Status(),
                    "diff" => string.Concat(_union.Diff().Select(c => c + "\n")),
                    _ => AnswerOther(verb, argument) ?? $"error: unknown request '{request}'\n",
                });
            }
            catch (Exception ex) when (ex is IOException or SocketException)
            {
            }
        }
    }

    /// <summary>Requests answered by other parts of the daemon (locks, watches); null when unknown.</summary>
    private string? AnswerOther(string verb, string argument)
    {
        string? answer = null;
        AnswerExtension(verb, argument, ref answer);
        return answer;
    }

    partial void AnswerExtension(string verb, string argument, ref string? answer);

    /// <summary>Requests that keep the connection open and stream (watch); true when handled.</summary>
    private bool TryAnswerStreaming(string verb, string argument, StreamReader reader, StreamWriter writer)
    {
        bool handled = false;
        StreamExtension(verb, argument, reader, writer, ref handled);
        return handled;
    }

    partial void StreamExtension(string verb, string argument, StreamReader reader, StreamWriter writer, ref bool handled);

    private string Status()
    {
        var sb = new StringBuilder();
        sb.Append("mountpoint: ").Append(_mountPoint).Append('\n');
        sb.Append("pid: ").Append(Environment.ProcessId).Append('\n');
        sb.Append("since: ").Append(_started.ToString("O")).Append('\n');
        sb.Append("passthrough: ").Append(_session.Connection.Passthrough ? "on" : "off").Append('\n');
        sb.Append("protocol: 7.").Append(_session.Connection.ProtocolMinor).Append('\n');
        sb.Append("open files: ").Append(_adapter.OpenFiles).Append('\n');
        sb.Append("open directories: ").Append(_adapter.OpenDirectories).Append('\n');
        sb.Append("copy-ups: ").Append(_adapter.CopyUps).Append('\n');
        // READs the daemon answered (passthrough reads never reach it): spliced from the branch file, or copied.
        var (spliced, copied) = _session.ReadReplies;
        sb.Append(CultureInfo.InvariantCulture, $"reads served: {spliced} spliced, {copied} copied\n");
        sb.Append("nodes: ").Append(_union.NodeCount).Append('\n');
        // What reached the daemon though the kernel could have cached it: with tracking, repeats stay in the kernel.
        sb.Append(CultureInfo.InvariantCulture, $"lookups served: {_adapter.Lookups}, getattrs served: {_adapter.GetAttrs}\n");
        if (_adapter.Tracker is not { } tracker) sb.Append("tracking: off (short timeouts everywhere)\n");
        else if (tracker.Unavailable is { } why) sb.Append(CultureInfo.InvariantCulture, $"tracking: unavailable ({why}): short timeouts everywhere\n");
        else
        {
            tracker.Drain(TimeSpan.FromSeconds(2));
            var r = tracker.Report();
            sb.Append(CultureInfo.InvariantCulture, $"tracking: {r.Tracked} directories tracked, {r.Marks} branch directories marked; {r.Events} branch events ({r.Echoes} the daemon's own), {r.Overflows} overflows\n");
            foreach (var (reason, count) in r.Untracked.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                sb.Append(CultureInfo.InvariantCulture, $"  untracked: {count} directories ({reason}): short timeouts there\n");
        }
        // Where the daemon's memory is: the managed heap (live objects after the last collection) against the whole process.
        var gc = GC.GetGCMemoryInfo();
        sb.Append(CultureInfo.InvariantCulture, $"memory: {Environment.WorkingSet >> 20} MiB resident, managed heap {gc.HeapSizeBytes >> 20} MiB ({GC.GetTotalMemory(false) >> 20} MiB in use)\n");
        sb.Append("branches:\n");
        foreach (var b in _union.Branches) sb.Append("  ").Append(b.Path).Append(" (").Append(b.Mode).Append(")\n");
        return sb.ToString();
    }

    public void Dispose()
    {
        _socket.Dispose();
        try { File.Delete(_path); } catch (IOException) { }
    }
}
