namespace Lamina.Fuse.Tests.Infrastructure;

/// <summary>One loopback server shared by the tests of a class, started on first use (so skipped classes start nothing).</summary>
public abstract class ServerFixture : IDisposable
{
    private readonly Lazy<LoopbackServer> _server;

    protected ServerFixture(bool passthrough, params string[] extraArgs) =>
        _server = new Lazy<LoopbackServer>(() => LoopbackServer.Start(passthrough, extraArgs: extraArgs), LazyThreadSafetyMode.ExecutionAndPublication);

    public LoopbackServer Server => _server.Value;

    public void Dispose()
    {
        if (_server.IsValueCreated) _server.Value.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class PassthroughServer() : ServerFixture(passthrough: true);

public sealed class NoPassthroughServer() : ServerFixture(passthrough: false);

/// <summary>No passthrough, and the kernel's writeback cache: writes are cached and sent later, in large batches.</summary>
public sealed class WritebackServer() : ServerFixture(passthrough: false, "--writeback");
