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

    /// <param name="inNewPidNamespace">Run the driver as pid 1 of a new pid namespace (unshare -p -f).</param>
    public LockDriver(bool inNewPidNamespace = false)
    {
        var psi = new ProcessStartInfo(inNewPidNamespace ? "unshare" : "python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (inNewPidNamespace)
            foreach (var a in new[] { "-p", "-f", "--mount-proc", "python3" }) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("-u");
        psi.ArgumentList.Add(Script);
        _p = Process.Start(psi)!;
        Pid = _p.Id;
        if (inNewPidNamespace)
        {
            // The driver is unshare's child; this is its pid as the test's namespace sees it.
            var sw = Stopwatch.StartNew();
            string children = "";
            while (sw.ElapsedMilliseconds < 5000 && (children = ReadChildren(_p.Id)).Length == 0) Thread.Sleep(10);
            Pid = int.Parse(children.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private static string ReadChildren(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim(); }
        catch (IOException) { return ""; }
    }

    /// <summary>The driver's pid as the test's pid namespace sees it.</summary>
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
