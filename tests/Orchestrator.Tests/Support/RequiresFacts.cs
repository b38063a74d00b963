namespace Orchestrator.Node.Tests.Support;

/// <summary>
/// A fact needing PostgreSQL: skipped with a reason when ORCH_TEST_POSTGRES is unset, unless
/// ORCH_REQUIRE_POSTGRES=1 (CI), in which case it runs and fails on the missing connection string.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public static string? ConnectionString => Environment.GetEnvironmentVariable("ORCH_TEST_POSTGRES");

    public PostgresFactAttribute()
    {
        if (string.IsNullOrEmpty(ConnectionString) && Environment.GetEnvironmentVariable("ORCH_REQUIRE_POSTGRES") != "1")
            Skip = "PostgreSQL not configured: set ORCH_TEST_POSTGRES (source deploy/local/postgres.sh && pg_start_private).";
    }
}

/// <summary>Manual clock for throttle tests.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;
    public override DateTimeOffset GetUtcNow() => Now;
    public void Advance(TimeSpan by) => Now += by;
}
