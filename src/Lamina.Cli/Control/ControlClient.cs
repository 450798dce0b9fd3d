using System.Net.Sockets;
using System.Text;

namespace Lamina.Cli.Control;

public static class ControlClient
{
    /// <summary>Sends one request to the daemon of a mount; null when no daemon answers there.</summary>
    public static string? Ask(string mountPoint, string request)
    {
        string path = ControlPaths.SocketFor(mountPoint);
        if (!File.Exists(path)) return null;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            using var stream = new NetworkStream(socket);
            var bytes = Encoding.UTF8.GetBytes(request + "\n");
            stream.Write(bytes);
            socket.Shutdown(SocketShutdown.Send);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }
        catch (SocketException)
        {
            return null;
        }
    }
}
