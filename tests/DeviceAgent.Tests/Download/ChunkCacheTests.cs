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
        var cache = new ChunkCache(dir.Sub("c"), dir.Sub("p"));
        var bytes = RandomNumberGenerator.GetBytes(1000);
        var id = Convert.ToHexStringLower(SHA256.HashData(bytes));

        File.WriteAllBytes(cache.PartialPathOf(id), bytes[..500]);
        Assert.False(cache.CommitPartial(id, discardOnMismatch: false));
        Assert.True(File.Exists(cache.PartialPathOf(id))); // kept for Range resume
        File.WriteAllBytes(cache.PartialPathOf(id), bytes);
        Assert.True(cache.CommitPartial(id));
        Assert.Equal(bytes, cache.TryRead(id));

        var onDisk = File.ReadAllBytes(cache.PathOf(id));
        onDisk[0] ^= 1;
        File.WriteAllBytes(cache.PathOf(id), onDisk);
        Assert.Null(cache.TryRead(id));
        Assert.False(cache.Contains(id));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789")]
    [InlineData("abc")]
    public void Ids_that_are_not_sha256_hex_never_become_paths(string id)
    {
        using var dir = new TempDir();
        var cache = new ChunkCache(dir.Sub("c"), dir.Sub("p"));
        Assert.Throws<InvalidDataException>(() => cache.PathOf(id));
        Assert.Throws<InvalidDataException>(() => cache.PartialPathOf(id));
    }
}
