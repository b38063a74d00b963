using Orchestrator.ChunkStore.Codec;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>The zstd level and the patches in flight a delta build runs with, and the memory they need.</summary>
/// <param name="Level">zstd level.</param>
/// <param name="Parallelism">Patches or frames coded at once.</param>
/// <param name="Bytes">Memory the build needs with them (<see cref="DeltaMemory"/>).</param>
public sealed record DeltaMemoryPlan(int Level, int Parallelism, long Bytes);

/// <summary>
/// What a delta build holds in memory, and the level and parallelism that fit a budget. A build holds the bytes it
/// codes (a whole-release build: the source release and the changed files in one buffer; per-file: one source and one
/// target per patch in flight) and, per patch or frame in flight, one zstd compression context
/// (<see cref="PatchCodec.CompressionContextBytes"/>, sized by level and window: about 0.09-0.15 GiB at level 19 and
/// 0.63-0.69 GiB at 22 for windows of 2^23..2^30) and its output (compressed bound, then the encrypted copy). The
/// finished patches are kept until they are written, and are small next to the bytes they code.
/// </summary>
public static class DeltaMemory
{
    /// <summary>Default budget (2 GiB): a level-22 context at the largest window plus a release of up to 1.2 GiB in the buffer.</summary>
    public const long DefaultBudget = 2L << 30;

    /// <summary>Bytes of one patch or frame in flight coding <paramref name="input"/> bytes at <paramref name="level"/> with a 2^<paramref name="windowLog"/> window.</summary>
    public static long TaskBytes(int level, int windowLog, long input) =>
        PatchCodec.CompressionContextBytes(level, windowLog) + 2 * (long)ZstdEncoder.Bound((int)Math.Min(input, int.MaxValue / 2));

    /// <summary>
    /// The highest level (or exactly <paramref name="level"/> when set) whose build fits <paramref name="budget"/>:
    /// <paramref name="held"/> bytes held for the whole build plus at least one task of <paramref name="taskInput"/>
    /// bytes at a 2^<paramref name="windowLog"/> window; parallelism is as many tasks as fit, at most
    /// <paramref name="maxParallelism"/>. Null when not even one task fits.
    /// </summary>
    public static DeltaMemoryPlan? Plan(long budget, int? level, int windowLog, long held, long taskInput, int maxParallelism)
    {
        for (var l = level ?? PatchCodec.MaxLevel; l >= (level ?? 1); l--)
        {
            var task = TaskBytes(l, windowLog, taskInput);
            var room = budget - held;
            if (room < task) continue;
            var parallelism = (int)Math.Min(Math.Max(1, maxParallelism), room / task);
            return new DeltaMemoryPlan(l, parallelism, held + parallelism * task);
        }
        return null;
    }

    /// <summary>
    /// Bytes the smallest build at <paramref name="level"/> needs whatever the release: one task at the largest
    /// window (<see cref="PatchCodec.MaxWindowLog"/>) coding one maximal frame, nothing else held. A budget below
    /// it cannot promise that level for every delta.
    /// </summary>
    public static long LevelFloor(int level) => TaskBytes(level, PatchCodec.MaxWindowLog, ReleaseStream.MaxFrameContent);

    /// <summary>The highest level whose <see cref="LevelFloor"/> fits <paramref name="budget"/>, or null when none does.</summary>
    public static int? HighestLevel(long budget)
    {
        for (var l = PatchCodec.MaxLevel; l >= 1; l--)
            if (LevelFloor(l) <= budget) return l;
        return null;
    }
}
