namespace Orchestrator.TestSupport;

/// <summary>
/// The one PostgreSQL gate of the test projects: ORCH_TEST_POSTGRES names the server, ORCH_REQUIRE_POSTGRES=1 (CI)
/// turns a missing server from a skip into a failure. Each project's fact attribute asks <see cref="SkipReason"/>.
/// </summary>
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

    /// <summary>The connection string of a test that runs (not skipped); fails it, naming the fix, when none is set.</summary>
    public static string RequiredConnectionString() => ConnectionString ?? throw new InvalidOperationException(
        "ORCH_REQUIRE_POSTGRES=1 but ORCH_TEST_POSTGRES is not set: start a server (`source deploy/local/postgres.sh && " +
        "pg_start_private`) and export ORCH_TEST_POSTGRES=\"$PG_CONNECTION_STRING\", or unset ORCH_REQUIRE_POSTGRES to skip.");
}
