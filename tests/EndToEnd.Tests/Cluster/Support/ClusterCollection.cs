namespace Orchestrator.EndToEnd.Tests.Cluster.Support;

/// <summary>
/// The 3-node tests run alone (after the parallel tests of this assembly): three node processes plus PostgreSQL
/// already fill a 2-core machine, and failure-detector timing should not compete with agent tests.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "local-cluster";
}
