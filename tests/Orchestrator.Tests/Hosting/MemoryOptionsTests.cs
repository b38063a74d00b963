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

    private const long MiB = 1024 * 1024;

    [Theory]
    // The last collection shows the surplus (committed beyond heap minus its free space): trim.
    [InlineData(700, 200, 0, 100, "Trim")]
    [InlineData(500, 450, 250, 400, "Trim")]
    // Young collections since a full one that left 100 MiB live count 500 MiB of gen2 as heap: a background full collection first.
    [InlineData(600, 500, 0, 100, "Probe")]
    // No full collection ran yet: everything committed could be garbage.
    [InlineData(300, 290, 0, 0, "Probe")]
    // Grown by less than the bound since the last full collection: nothing a full collection could show.
    [InlineData(600, 500, 0, 400, "None")]
    [InlineData(200, 150, 0, 0, "None")]
    public void A_quiet_check_trims_what_it_sees_and_collects_in_the_background_only_when_the_growth_since_the_last_full_collection_could_hide_it(
        long committed, long heap, long fragmented, long liveAtLastFull, string expected)
    {
        Assert.Equal(expected, MemoryTrim.Next(committed * MiB, heap * MiB, fragmented * MiB, liveAtLastFull * MiB, 256 * MiB).ToString());
    }
}
