using Orchestrator.DeviceActors.Persistence.Journal;

namespace Orchestrator.DeviceActors.Tests.Persistence;

/// <summary>A <see cref="PendingWrite"/> whose outcome a test awaits through <see cref="Done"/> (the journal's own
/// writes reply to their actor instead).</summary>
internal sealed class AwaitedWrite(JournalRowToWrite[] rows) : PendingWrite(rows)
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes after the commit, or fails with the error.</summary>
    public Task Done => _done.Task;

    /// <inheritdoc />
    public override void Settle(Exception? error)
    {
        if (error is null) _done.TrySetResult();
        else _done.TrySetException(error);
    }

    /// <summary>Queues <paramref name="rows"/> on <paramref name="writer"/>; the task completes after their commit.</summary>
    public static Task Enqueue(BatchingWriter writer, params JournalRowToWrite[] rows)
    {
        var write = new AwaitedWrite(rows);
        writer.Enqueue(write);
        return write.Done;
    }
}
