using Orchestrator.DeviceActors.Persistence;
using Orchestrator.Node.Tests.Support;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests.Rollouts;

/// <summary>The rollout crash scenario on the PostgreSQL journal clusters use (a fresh schema per test).</summary>
public sealed class RolloutPostgresTests(ITestOutputHelper output)
{
    [PostgresFact]
    public async Task Counters_stay_exact_across_a_crash_of_the_rollout_actor_and_of_the_whole_node_on_postgresql()
    {
        await using var h = await RolloutHarness.StartAsync(output, backend: PersistenceBackend.PostgreSql);
        await RolloutActorTests.CrashScenario(h);
    }
}
