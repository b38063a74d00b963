namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>ORCH_TEST_POSTGRES / ORCH_REQUIRE_POSTGRES handling shared by all PostgreSQL tests.</summary>
public static class PostgresGate
{
    /// <summary>The test server's connection string, or null.</summary>
    public static string? ConnectionString =>
        Environment.GetEnvironmentVariable("ORCH_TEST_POSTGRES") is { Length: > 0 } cs ? cs : null;

    /// <summary>Why PostgreSQL tests are skipped, or null when they must run (server given, or required by CI).</summary>
    public static string? SkipReason =>
        ConnectionString is not null || Environment.GetEnvironmentVariable("ORCH_REQUIRE_POSTGRES") == "1"
            ? null
            : "PostgreSQL tests need ORCH_TEST_POSTGRES (e.g. `source deploy/local/postgres.sh && pg_start_private`, then " +
              "ORCH_TEST_POSTGRES=\"$PG_CONNECTION_STRING\"); set ORCH_REQUIRE_POSTGRES=1 to make this a failure.";
}
