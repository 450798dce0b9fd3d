namespace Lamina.Tests;

/// <summary>An engine observer that hands chosen calls to the test.</summary>
internal sealed class Recorder(Action<UnionNode>? afterPublish = null, Action<BranchChange>? branchChanged = null) : IUnionObserver
{
    public void AfterPublish(UnionNode node) => afterPublish?.Invoke(node);
    public void BranchChanged(BranchChange change) => branchChanged?.Invoke(change);
}
