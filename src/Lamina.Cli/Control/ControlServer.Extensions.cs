namespace Lamina.Cli.Control;

/// <summary>
/// The one implementation of <c>AnswerExtension</c>: each feature answers its own verbs in its own
/// file (ControlServer.Locks.cs, ControlServer.Watches.cs) and leaves the answer null otherwise.
/// </summary>
public sealed partial class ControlServer
{
    partial void AnswerExtension(string verb, string argument, ref string? answer)
    {
        AnswerLocks(verb, argument, ref answer);
        if (answer is null) AnswerWatches(verb, argument, ref answer);
    }

    partial void AnswerLocks(string verb, string argument, ref string? answer);

    partial void AnswerWatches(string verb, string argument, ref string? answer);
}
