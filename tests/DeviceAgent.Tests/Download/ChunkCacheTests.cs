using System.Security.Cryptography;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.DeviceAgent.Tests.Download;

public sealed class ChunkCacheTests
{
    [Fact]
    public void Only_bytes_matching_the_id_enter_and_a_rotten_entry_is_dropped()
    {
        using var dir = new TempDir();
        var cache = new ChunkCache(dir.Folder("c"), dir.Folder("p"));
        var bytes = RandomNumberGenerator.GetBytes(1000);
        var id = Convert.ToHexStringLower(SHA256.HashData(bytes));

        var other = RandomNumberGenerator.GetBytes(1000);
        Assert.Throws<InvalidDataException>(() => cache.Put(id, other));
        Assert.False(cache.Contains(id));
        File.WriteAllBytes(cache.PartialPathOf(id), bytes[..500]);
        Assert.Equal(bytes[..500], cache.ReadPartial(id, 1040)); // kept for Range resume
        cache.Put(id, bytes);
        Assert.False(File.Exists(cache.PartialPathOf(id))); // a cached object needs no partial any more
        Assert.Equal(bytes, cache.TryRead(id));

        var onDisk = File.ReadAllBytes(cache.PathOf(id));
        onDisk[0] ^= 1;
        File.WriteAllBytes(cache.PathOf(id), onDisk);
        Assert.Null(cache.TryRead(id));
        Assert.False(cache.Contains(id));
    }

    [Fact]
    public void A_partial_longer_than_the_object_can_be_is_discarded()
    {
        using var dir = new TempDir();
        var cache = new ChunkCache(dir.Folder("c"), dir.Folder("p"));
        var id = Convert.ToHexStringLower(SHA256.HashData(new byte[] { 1 }));
        File.WriteAllBytes(cache.PartialPathOf(id), new byte[2000]);
        Assert.Empty(cache.ReadPartial(id, 1040));
        Assert.False(File.Exists(cache.PartialPathOf(id)));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789")]
    [InlineData("abc")]
    public void Ids_that_are_not_sha256_hex_never_become_paths(string id)
    {
        using var dir = new TempDir();
        var cache = new ChunkCache(dir.Folder("c"), dir.Folder("p"));
        Assert.Throws<InvalidDataException>(() => cache.PathOf(id));
        Assert.Throws<InvalidDataException>(() => cache.PartialPathOf(id));
    }
}
