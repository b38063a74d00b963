namespace Orchestrator.EndToEnd.Tests.Cluster.Support;

/// <summary>
/// A cluster test needing PostgreSQL (every node shares one journal): skipped with the reason when
/// ORCH_TEST_POSTGRES is unset, unless ORCH_REQUIRE_POSTGRES=1 (CI), in which case it runs and fails.
/// </summary>
public sealed class PostgresClusterFactAttribute : FactAttribute
{
    public PostgresClusterFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ORCH_TEST_POSTGRES")) && Environment.GetEnvironmentVariable("ORCH_REQUIRE_POSTGRES") != "1")
            Skip = "The 3-node cluster test needs PostgreSQL: set ORCH_TEST_POSTGRES (source deploy/local/postgres.sh && pg_start_private; " +
                   "export ORCH_TEST_POSTGRES=\"$PG_CONNECTION_STRING\"), or ORCH_REQUIRE_POSTGRES=1 to make its absence a failure.";
    }

    /// <summary>The server's connection string; fails the test when missing (only reached with ORCH_REQUIRE_POSTGRES=1).</summary>
    public static string RequiredConnectionString() =>
        Environment.GetEnvironmentVariable("ORCH_TEST_POSTGRES") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException("ORCH_REQUIRE_POSTGRES=1 but ORCH_TEST_POSTGRES is unset: start PostgreSQL (deploy/local/postgres.sh) and export its connection string.");
}
