using Microsoft.Extensions.Configuration;
using Orchestrator.Node.Deltas;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Deltas;

public sealed class DeltaOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_bad_values_name_their_key()
    {
        Assert.Empty(new DeltaOptions().Validate());
        var problems = new DeltaOptions { MaxSources = 0, Coverage = 1.5, Level = 23, KeysDirectory = "" }.Validate().ToList();
        Assert.Equal(4, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("Deltas:MaxSources", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:Coverage", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:Level", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Deltas:KeysDirectory", StringComparison.Ordinal));
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
