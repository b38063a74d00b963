using Orchestrator.ChunkStore.Deltas;

namespace Orchestrator.ChunkStore.Tests.Deltas;

/// <summary>The memory a delta build plans for: zstd's context per level and window, and the level and parallelism a budget holds.</summary>
public sealed class DeltaMemoryTests
{
    private const int Frame = ReleaseStream.MaxFrameContent;

    [Fact]
    public void A_compression_context_grows_with_the_level_and_the_window()
    {
        Assert.True(PatchCodec.CompressionContextBytes(22, 27) > PatchCodec.CompressionContextBytes(19, 27));
        Assert.True(PatchCodec.CompressionContextBytes(19, 27) > PatchCodec.CompressionContextBytes(3, 27));
        Assert.True(PatchCodec.CompressionContextBytes(19, 30) > PatchCodec.CompressionContextBytes(19, 23));
        // Level 22's match finder alone is over half a GiB; level 19's is under a quarter.
        Assert.InRange(PatchCodec.CompressionContextBytes(22, 27), 512L << 20, 1L << 30);
        Assert.InRange(PatchCodec.CompressionContextBytes(19, 27), 32L << 20, 256L << 20);
        Assert.InRange(PatchCodec.DecompressionContextBytes, 1, 1L << 20);
        Assert.Throws<ArgumentOutOfRangeException>(() => PatchCodec.CompressionContextBytes(23, 27));
        Assert.Throws<ArgumentOutOfRangeException>(() => PatchCodec.CompressionContextBytes(19, 31));
    }

    [Fact]
    public void The_plan_takes_the_highest_level_that_fits_then_as_many_tasks_as_fit()
    {
        var held = 300L << 20;
        var task22 = DeltaMemory.TaskBytes(22, 29, Frame);
        var roomy = DeltaMemory.Plan(held + 3 * task22 + 1, null, 29, held, Frame, maxParallelism: 2)!;
        Assert.Equal((22, 2, held + 2 * task22), (roomy.Level, roomy.Parallelism, roomy.Bytes));
        Assert.Equal(3, DeltaMemory.Plan(held + 3 * task22 + 1, null, 29, held, Frame, maxParallelism: 8)!.Parallelism);

        // One byte short of a level-22 task: the highest lower level that fits, never over the budget.
        var budget = held + task22 - 1;
        var lower = DeltaMemory.Plan(budget, null, 29, held, Frame, maxParallelism: 2)!;
        Assert.InRange(lower.Level, 1, 21);
        Assert.True(lower.Bytes <= budget);
        for (var above = lower.Level + 1; above <= 22; above++)
            Assert.True(DeltaMemory.TaskBytes(above, 29, Frame) > budget - held, $"level {above} fits but {lower.Level} was chosen");

        // A set level is kept or refused, never lowered.
        Assert.Null(DeltaMemory.Plan(budget, 22, 29, held, Frame, maxParallelism: 2));
        Assert.Equal(19, DeltaMemory.Plan(budget, 19, 29, held, Frame, maxParallelism: 1)!.Level);
        Assert.Null(DeltaMemory.Plan(held, null, 29, held, Frame, maxParallelism: 1));
    }

    [Fact]
    public void The_default_budget_holds_level_22_at_the_largest_window_and_a_tiny_one_holds_nothing()
    {
        Assert.Equal(22, DeltaMemory.HighestLevel(DeltaMemory.DefaultBudget));
        Assert.True(DeltaMemory.LevelFloor(22) <= DeltaMemory.DefaultBudget);
        Assert.Null(DeltaMemory.HighestLevel(DeltaMemory.LevelFloor(1) - 1));
        Assert.NotNull(DeltaMemory.HighestLevel(DeltaMemory.LevelFloor(1)));
    }
}
