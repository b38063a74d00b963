using Orchestrator.TestSupport;

namespace Orchestrator.EndToEnd.Tests.Cluster.Support;

/// <summary>
/// A cluster test needing PostgreSQL (every node shares one journal): skipped with the reason when
/// ORCH_TEST_POSTGRES is unset, unless ORCH_REQUIRE_POSTGRES=1 (CI), in which case it runs and fails.
/// </summary>
public sealed class PostgresClusterFactAttribute : FactAttribute
{
    public PostgresClusterFactAttribute() => Skip = PostgresGate.SkipReason;

    /// <summary>The server's connection string; fails the test when missing (only reached with ORCH_REQUIRE_POSTGRES=1).</summary>
    public static string RequiredConnectionString() => PostgresGate.RequiredConnectionString();
}
