using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Hosting;

public sealed class MemoryOptionsTests
{
    [Fact]
    public void Defaults_and_off_are_valid_and_bad_values_name_their_key()
    {
        Assert.Empty(new MemoryOptions().Validate());
        Assert.Empty(new MemoryOptions { TrimSurplusBytes = 0 }.Validate());
        var problems = new MemoryOptions { TrimSurplusBytes = -1, TrimCheckSeconds = 0, TrimMinIntervalSeconds = 86_401, TrimQuietBelowBytesPerSecond = 0 }
            .Validate().ToList();
        Assert.Equal(4, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("Memory:TrimSurplusBytes -1 is negative; use 0 (no trimming)", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Memory:TrimCheckSeconds 0 is out of range; use 1..86400", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Memory:TrimMinIntervalSeconds 86401 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Memory:TrimQuietBelowBytesPerSecond 0 is out of range", StringComparison.Ordinal));
    }
}
