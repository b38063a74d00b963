using Orchestrator.TestSupport;

namespace Orchestrator.Node.Tests.Support;

/// <summary>
/// A fact needing PostgreSQL: skipped with a reason when ORCH_TEST_POSTGRES is unset, unless
/// ORCH_REQUIRE_POSTGRES=1 (CI), in which case it runs and fails on the missing connection string.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public static string? ConnectionString => PostgresGate.ConnectionString;

    public PostgresFactAttribute() => Skip = PostgresGate.SkipReason;
}

/// <summary>A clock the test moves by hand (throttle windows, rollout start times, maintenance windows, timeouts); thread-safe.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public DateTimeOffset Now
    {
        get => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
        set => Interlocked.Exchange(ref _ticks, value.UtcTicks);
    }

    public override DateTimeOffset GetUtcNow() => Now;

    public void Set(DateTimeOffset at) => Now = at;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
