using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Lamina.Cli.Control;

/// <summary>One event line of a watch stream.</summary>
public readonly record struct StreamedEvent(int Wd, uint Mask, uint Cookie, string? Name);

/// <summary>
/// The streaming side of the control socket: a watch instance in the mount daemon that lives as long
/// as this connection (see ControlServer.Watches.cs for the protocol).
/// </summary>
public sealed class WatchClient : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;

    private WatchClient(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(stream, Encoding.UTF8);
        _writer = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n" };
    }

    /// <summary>wd → union path of every watch established; errors per path as "errno path".</summary>
    public Dictionary<int, string> Watches { get; } = [];
    public List<string> Errors { get; } = [];
    public int InstanceId { get; private set; }

    /// <summary>Opens a watch instance with <paramref name="unionPaths"/>; null when no daemon answers.</summary>
    public static WatchClient? Open(string mountPoint, uint mask, IEnumerable<string> unionPaths) =>
        Connect(mountPoint, "watch " + mask.ToString("x", CultureInfo.InvariantCulture) + string.Concat(unionPaths.Select(p => "\t" + Uri.EscapeDataString(p))));

    /// <summary>Streams an existing instance (one rebuilt by restore).</summary>
    public static WatchClient? Attach(string mountPoint, int instance) =>
        Connect(mountPoint, "watch-attach " + instance.ToString(CultureInfo.InvariantCulture));

    private static WatchClient? Connect(string mountPoint, string request)
    {
        string path = ControlPaths.SocketFor(mountPoint);
        if (!File.Exists(path)) return null;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
        var c = new WatchClient(socket);
        c._writer.WriteLine(request);
        c._writer.Flush();
        string? line;
        while ((line = c._reader.ReadLine()) is not null)
        {
            var f = line.Split(' ', 3);
            if (f[0] == "ready") { c.InstanceId = int.Parse(f[1], CultureInfo.InvariantCulture); return c; }
            if (f[0] == "wd") c.Watches[int.Parse(f[1], CultureInfo.InvariantCulture)] = Uri.UnescapeDataString(f[2]);
            else if (f[0] == "error") c.Errors.Add(f.Length > 2 ? $"{f[1]} {Uri.UnescapeDataString(f[2])}" : line);
        }
        return c; // the daemon refused the request: Errors says why
    }

    /// <summary>The daemon stopped after saving the table ("suspend"): the next daemon of the mount point has the instance.</summary>
    public bool Suspended { get; private set; }

    /// <summary>
    /// Streams the same instance from the daemon of <paramref name="mountPoint"/> once there is one
    /// again (after a restart), trying until <paramref name="timeout"/> has passed; null when none
    /// came back in time or the instance is gone.
    /// </summary>
    public static WatchClient? Reattach(string mountPoint, int instance, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            WatchClient? c = null;
            try { c = Attach(mountPoint, instance); }
            catch (IOException) { }
            if (c is not null && c.InstanceId == instance) return c;
            bool gone = c is not null && c.Errors.Any(e => e.StartsWith("ENOENT", StringComparison.Ordinal));
            c?.Dispose();
            if (gone || DateTime.UtcNow >= deadline) return null;
            Thread.Sleep(200);
        }
    }

    /// <summary>The next event, or null at the end of the stream; other lines (command answers) go to <paramref name="other"/>.</summary>
    public StreamedEvent? Next(Action<string>? other = null)
    {
        string? line;
        while ((line = ReadLine()) is not null)
        {
            if (line == "suspend") { Suspended = true; return null; }
            var f = line.Split(' ');
            if (f[0] == "event" && f.Length == 5)
                return new StreamedEvent(int.Parse(f[1], CultureInfo.InvariantCulture), uint.Parse(f[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    uint.Parse(f[3], CultureInfo.InvariantCulture), f[4] == "-" ? null : Uri.UnescapeDataString(f[4]));
            other?.Invoke(line);
        }
        return null;
    }

    private string? ReadLine()
    {
        try { return _reader.ReadLine(); }
        catch (IOException) { return null; } // the daemon died (connection reset)
    }

    /// <summary>Sends a command on the stream ("rm WD", "add MASKHEX PATH", "setnextwd WD"); its answer comes back among the events.</summary>
    public void Send(string command)
    {
        _writer.WriteLine(command);
        _writer.Flush();
    }

    public void Dispose()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        _socket.Dispose();
    }
}
