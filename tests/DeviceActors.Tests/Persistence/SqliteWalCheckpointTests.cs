using Microsoft.Data.Sqlite;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.DeviceActors.Tests.Infrastructure;

namespace Orchestrator.DeviceActors.Tests.Persistence;

/// <summary>
/// SQLite's own checkpoints never restart the WAL while some reader is using it, and a node always has readers, so
/// the WAL grew by gigabytes in a 100k-device rollout. The journal writer truncates it past a limit, readers or not.
/// </summary>
public sealed class SqliteWalCheckpointTests : IAsyncLifetime
{
    private const long Limit = 64 * 1024;
    private TestDatabase _db = null!;

    public async Task InitializeAsync() => _db = await TestDatabase.Create(PersistenceBackend.Sqlite);

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task The_writer_truncates_a_large_wal_while_readers_keep_reading()
    {
        await using var store = new SqliteJournalStore(_db.Options.ConnectionString, walLimitBytes: Limit, walCheckInterval: TimeSpan.FromSeconds(1));
        await store.EnsureTables(CancellationToken.None);
        var writer = store.CreateWriter();
        await using var _ = writer;
        var walPath = new SqliteConnectionStringBuilder(_db.Options.ConnectionString).DataSource + "-wal";
        var payload = new byte[2048];
        var seq = 0L;
        async Task WriteBatch(int rows)
        {
            var batch = Enumerable.Range(0, rows)
                .Select(_ => (PendingWrite)new AwaitedWrite([new JournalRowToWrite("p-wal", ++seq, DateTime.UtcNow.Ticks, payload, "M.v1", 7131, "w", ["device"])]))
                .ToList();
            await writer.Write(batch, CancellationToken.None);
        }

        // A reader that never stops: short read transactions back to back, always one in flight.
        using var stop = new CancellationTokenSource();
        var reads = 0;
        var reader = Task.Run(async () =>
        {
            await using var c = new SqliteConnection(_db.Options.ConnectionString);
            await c.OpenAsync();
            while (!stop.IsCancellationRequested)
            {
                await using var cmd = c.CreateCommand();
                cmd.CommandText = "SELECT COUNT(*) FROM journal";
                await cmd.ExecuteScalarAsync();
                Interlocked.Increment(ref reads);
            }
        });

        await WriteBatch(1); // the first batch after start checks at once: the WAL is still small
        for (var i = 0; i < 20; i++) await WriteBatch(50); // ~2 MB of rows: far past the limit
        Assert.True(new FileInfo(walPath).Length > Limit, "the WAL should have grown past the limit before the next check");
        await Task.Delay(1100); // the writer looks at the WAL at most once per check interval (1 s here)
        await WriteBatch(1);
        var after = new FileInfo(walPath).Length;
        await stop.CancelAsync();
        await reader;

        Assert.True(reads > 0);
        Assert.True(after < Limit, $"WAL is {after} bytes after the checkpoint; expected it truncated below {Limit}");
        Assert.Equal(seq, await _db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'p-wal'"));
    }
}
