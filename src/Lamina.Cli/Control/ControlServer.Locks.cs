using Lamina.Cli.Commands;

namespace Lamina.Cli.Control;

/// <summary>The <c>locks</c> request: every lock of the mount, one tab-separated line each (see <see cref="LocksCommand"/>).</summary>
public sealed partial class ControlServer
{
    partial void AnswerLocks(string verb, string argument, ref string? answer)
    {
        if (verb != "locks") return;
        answer = LocksCommand.Encode(_union.Locks.Snapshot());
    }
}
