using Microsoft.Extensions.Configuration;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.Node.Deltas;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Deltas;

public sealed class DeltaOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_bad_values_name_their_key()
    {
        Assert.Empty(new DeltaOptions().Validate());
        Assert.Empty(new DeltaOptions { Level = 22 }.Validate());
        var problems = new DeltaOptions { MaxSources = 0, Coverage = 1.5, Level = 23, KeysDirectory = "", Parallelism = 0 }.Validate().ToList();
        Assert.Equal(5, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("Deltas:Parallelism", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:MaxSources", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:Coverage", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:Level", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:KeysDirectory", StringComparison.Ordinal));
    }

    [Fact]
    public void A_level_the_memory_budget_cannot_hold_names_both_keys_and_the_fixes()
    {
        var problems = new DeltaOptions { Level = 22, MemoryBudgetBytes = 300_000_000 }.Validate().ToList();
        var problem = Assert.Single(problems);
        Assert.StartsWith($"Deltas:Level 22 needs {DeltaMemory.LevelFloor(22)} bytes", problem);
        Assert.Contains("over Deltas:MemoryBudgetBytes 300000000", problem);
        Assert.Contains($"raise Deltas:MemoryBudgetBytes to at least {DeltaMemory.LevelFloor(22)}", problem);
        Assert.Contains("set Deltas:Level to 20 or lower", problem);
        Assert.Contains("or remove Deltas:Level", problem);
        // Unset, the same budget is fine: the build takes the highest level that fits.
        Assert.Empty(new DeltaOptions { MemoryBudgetBytes = 300_000_000 }.Validate());
        var tiny = Assert.Single(new DeltaOptions { MemoryBudgetBytes = 1000 }.Validate());
        Assert.StartsWith("Deltas:MemoryBudgetBytes is 1000; a delta build needs at least", tiny);
    }

    [Fact]
    public void A_node_with_bad_delta_settings_refuses_to_start()
    {
        var root = Path.Combine(Path.GetTempPath(), "orch-delta-cfg-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ex = Assert.Throws<InvalidOperationException>(() => NodeApp.Build([], c => c.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Node:DataDirectory"] = Path.Combine(root, "data"),
                ["Node:StoreRoot"] = Path.Combine(root, "store"),
                ["Deltas:Level"] = "40",
            })));
            Assert.Contains("Deltas:Level is 40", ex.Message);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }
}
