using System.Runtime.InteropServices;
using Lamina.Fuse.Wire;
using Lamina.Native;

namespace Lamina.Fuse;

internal sealed unsafe partial class Worker
{
    /// <summary>
    /// Starts a blocking lock request. When the filesystem answers at once the reply goes out
    /// now; otherwise the worker returns to reading and the reply is written from wherever the
    /// wait completes, on this worker's descriptor (the only one the kernel accepts it on).
    /// </summary>
    private void StartBlockingLock(RequestContext ctx, ulong node, LkIn request)
    {
        var cts = new CancellationTokenSource();
        _session.RegisterWaiter(ctx.Unique, cts);
        ValueTask<Errno> pending;
        try
        {
            pending = _fs.SetLkWait(ctx, node, request, cts.Token);
        }
        catch
        {
            _session.UnregisterWaiter(ctx.Unique);
            cts.Dispose();
            throw;
        }
        if (pending.IsCompleted)
        {
            _session.UnregisterWaiter(ctx.Unique);
            cts.Dispose();
            Reply(ctx.Unique, pending.Result);
            return;
        }
        _ = DeferredReplies.CompleteLater(_session, _fd, ctx.Unique, node, pending, cts);
    }

    /// <summary>Writes a reply that carries no payload from any thread.</summary>
    internal static void SendDetached(int fd, ulong unique, Errno result)
    {
        OutHeader header = new OutHeader { Len = 16, Error = -(int)result, Unique = unique };
        WriteReply(fd, (byte*)&header, sizeof(OutHeader));
    }

    /// <summary>
    /// An INTERRUPT for a request that is waiting cancels it. One for a request this session does
    /// not know (not arrived yet on another worker, or already answered) is answered EAGAIN after a
    /// short pause, so the kernel sends it again while the request is still pending.
    /// </summary>
    private void HandleInterrupt(ulong interruptUnique, ulong target)
    {
        if (_session.Interrupt(target)) return;
        int fd = _fd;
        _ = Task.Delay(10).ContinueWith(_ => SendDetached(fd, interruptUnique, Errno.EAGAIN), TaskScheduler.Default);
    }
}

/// <summary>Answers requests whose result comes later than the worker that read them.</summary>
internal static class DeferredReplies
{
    internal static async Task CompleteLater(FuseSession session, int fd, ulong unique, ulong node, ValueTask<Errno> pending, CancellationTokenSource cts)
    {
        Errno result;
        try { result = await pending.ConfigureAwait(false); }
        catch (OperationCanceledException) { result = Errno.EINTR; }
        catch (Exception ex)
        {
            session.Options.Log?.Invoke($"SETLKW on node {node} failed: {ex}");
            result = Errno.EIO;
        }
        finally
        {
            session.UnregisterWaiter(unique);
            cts.Dispose();
        }
        Worker.SendDetached(fd, unique, result);
    }

}
