using Orchestrator.ChunkStore.Codec;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.Messages.Chunks;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.ChunkStore;

public sealed class ChunkLruTests
{
    [Fact]
    public void Evicts_least_recently_used_by_bytes_and_skips_oversized()
    {
        var lru = new ChunkLru(300);
        lru.Add("a", new byte[100]);
        lru.Add("b", new byte[100]);
        lru.Add("c", new byte[100]);
        Assert.True(lru.TryGet("a", out _));
        lru.Add("d", new byte[100]);
        Assert.False(lru.TryGet("b", out _));
        Assert.True(lru.TryGet("a", out _));
        Assert.Equal(300, lru.SizeBytes);
        lru.Add("huge", new byte[301]);
        Assert.False(lru.TryGet("huge", out _));
        Assert.Equal(3, lru.Count);
    }
}

public sealed class BlobBackendTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "orch-blob-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { try { Directory.Delete(_root, true); } catch (IOException) { } }

    private static (string Id, byte[] Data) Chunk(int seed)
    {
        var d = new byte[1000 + seed];
        new Random(seed).NextBytes(d);
        return (Convert.ToHexStringLower(SHA256.HashData(d)), d);
    }

    private static async Task ExerciseAsync(IChunkBlobStore store)
    {
        var (id, data) = Chunk(Random.Shared.Next(1, 1000));
        Assert.Null(await store.ReadAsync(id));
        Assert.False(await store.ExistsAsync(id));
        Assert.True(await store.PutIfAbsentAsync(id, data));
        Assert.False(await store.PutIfAbsentAsync(id, data));
        Assert.Equal(data, await store.ReadAsync(id));
        Assert.True(await store.ExistsAsync(id));
        var ids = new List<string>();
        await foreach (var x in store.ListAsync()) ids.Add(x);
        Assert.Contains(id, ids);
        Assert.True(await store.DeleteAsync(id));
        Assert.False(await store.DeleteAsync(id));
        Assert.Null(await store.ReadAsync(id));
    }

    [Fact]
    public async Task Filesystem_backend_uses_the_store_layout_dedups_and_leaves_no_temp_files()
    {
        var store = new FileSystemChunkBlobStore(_root);
        await ExerciseAsync(store);
        var (id, data) = Chunk(7);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => store.PutIfAbsentAsync(id, data)));
        Assert.Equal(Path.Combine(Path.GetFullPath(_root), "chunks", id[..2], id), store.PathOf(id));
        Assert.Equal(data, await File.ReadAllBytesAsync(store.PathOf(id)));
        Assert.Single(Directory.GetFiles(Path.Combine(_root, "chunks", id[..2])));
    }

    [PostgresFact]
    public async Task Postgres_backend_round_trips_and_dedups()
    {
        var table = "orch_chunks_test_" + Guid.NewGuid().ToString("N")[..8];
        await using var store = new PostgresChunkBlobStore(PostgresFactAttribute.ConnectionString!, table);
        await ExerciseAsync(store);
        var (id, data) = Chunk(8);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => store.PutIfAbsentAsync(id, data)));
        Assert.Equal(1, results.Count(r => r));
    }

    [Fact]
    public void Postgres_backend_refuses_an_unsafe_table_name()
    {
        var ex = Assert.Throws<ArgumentException>(() => new PostgresChunkBlobStore("Host=127.0.0.1", "x; DROP TABLE y"));
        Assert.Contains("plain lower-case SQL identifier", ex.Message);
    }
}

public sealed class ChunkShardActorTests : TestKit, IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "orch-actor-" + Guid.NewGuid().ToString("N"));

    void IDisposable.Dispose() { try { Directory.Delete(_root, true); } catch (IOException) { } }

    [Fact]
    public void Put_verifies_the_id_dedups_and_get_serves_from_backend_then_cache()
    {
        var backend = new FileSystemChunkBlobStore(_root);
        var actor = Sys.ActorOf(ChunkShardActor.Props(backend, 1 << 20));
        var data = new byte[5000];
        new Random(1).NextBytes(data);
        var id = ChunkId.Of(data).Hex;

        actor.Tell(new PutChunk(id, data));
        Assert.Equal(new ChunkStored(id, false), ExpectMsg<ChunkStored>());
        actor.Tell(new PutChunk(id, data));
        Assert.Equal(new ChunkStored(id, true), ExpectMsg<ChunkStored>());

        var other = new string('0', 64);
        actor.Tell(new PutChunk(other, data));
        Assert.Contains("not to the id", ExpectMsg<ChunkRejected>().Reason);
        Assert.False(File.Exists(backend.PathOf(other)));

        actor.Tell(new GetChunk(id));
        Assert.Equal(data, ExpectMsg<ChunkFound>().Data);
        // Served from the LRU now: deleting the file behind the actor's back does not matter.
        File.Delete(backend.PathOf(id));
        actor.Tell(new GetChunk(id));
        Assert.Equal(data, ExpectMsg<ChunkFound>().Data);

        actor.Tell(new GetChunk(new string('e', 64)));
        ExpectMsg<ChunkNotFound>();
    }

    [Fact]
    public void Serializer_round_trips_every_message()
    {
        var serializer = new ChunkMessageSerializer((ExtendedActorSystem)Sys);
        var id = new string('a', 64);
        object[] messages =
        [
            new GetChunk(id), new ChunkNotFound(id), new ChunkStored(id, true), new ChunkRejected(id, "why"),
            new ChunkStoreFailed(id, "disk"),
        ];
        foreach (var m in messages)
        {
            var back = serializer.FromBinary(serializer.ToBinary(m), serializer.Manifest(m));
            Assert.Equal(m, back);
        }
        var found = new ChunkFound(id, [1, 2, 3]);
        Assert.Equal(found.Data, ((ChunkFound)serializer.FromBinary(serializer.ToBinary(found), serializer.Manifest(found))).Data);
        var put = new PutChunk(id, [4, 5]);
        Assert.Equal(put.Data, ((PutChunk)serializer.FromBinary(serializer.ToBinary(put), serializer.Manifest(put))).Data);
    }
}
