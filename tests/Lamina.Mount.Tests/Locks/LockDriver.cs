using System.Diagnostics;

namespace Lamina.Mount.Tests.Locks;

/// <summary>
/// A separate process that owns locks (lockdrv.py): the test sends it one command at a time and
/// reads its answer, so every lock in these tests belongs to a real process with its own pid and
/// its own POSIX lock owner, as a lock through a real mount must.
/// </summary>
public sealed class LockDriver : IDisposable
{
    private static readonly string Script = Path.Combine(AppContext.BaseDirectory, "Locks", "lockdrv.py");
    private readonly Process _p;
    private Task<string?>? _pending;

    public LockDriver()
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-u");
        psi.ArgumentList.Add(Script);
        _p = Process.Start(psi)!;
        Pid = _p.Id;
    }

    public int Pid { get; }

    /// <summary>Sends a command and waits for its answer.</summary>
    public string Do(string command, int timeoutMs = 10_000)
    {
        var t = Start(command);
        if (!t.Wait(timeoutMs)) throw new TimeoutException($"lock driver {Pid}: no answer to '{command}'");
        return t.Result;
    }

    /// <summary>Sends a command whose answer may come later (a blocking lock).</summary>
    public Task<string> Start(string command)
    {
        if (_pending is { IsCompleted: false }) throw new InvalidOperationException("a command is still pending");
        _p.StandardInput.WriteLine(command);
        _p.StandardInput.Flush();
        var read = _p.StandardOutput.ReadLineAsync();
        _pending = read;
        return read.ContinueWith(r => r.Result ?? "eof", TaskScheduler.Default);
    }

    public void Kill()
    {
        try { _p.Kill(); } catch (InvalidOperationException) { }
        _p.WaitForExit(5000);
    }

    public void Dispose()
    {
        try
        {
            if (!_p.HasExited)
            {
                if (_pending is null or { IsCompleted: true })
                {
                    _p.StandardInput.WriteLine("exit");
                    _p.StandardInput.Flush();
                }
                if (!_p.WaitForExit(3000)) _p.Kill();
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException) { }
        _p.WaitForExit(5000);
        _p.Dispose();
    }
}
