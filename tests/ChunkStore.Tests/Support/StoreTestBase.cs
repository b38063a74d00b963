using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.ChunkStore.Tests.Support;

/// <summary>
/// A scratch folder with a fresh product content key and release signing key, for tests that publish into a real
/// filesystem store. Small chunk sizes so a few KiB of test data spans many chunks.
/// </summary>
public abstract class StoreTestBase : IDisposable
{
    protected static readonly ChunkingOptions Small = new(1024, 4096, 16384);

    protected TempDir Dir { get; } = new();

    /// <summary>Like a patch release: a version stamp changes every few KiB, so nearly every chunk changes.</summary>
    protected static byte[] Stamped(byte[] content, int version)
    {
        var copy = (byte[])content.Clone();
        for (var at = 100; at + 8 < copy.Length; at += 3000)
            BitConverter.GetBytes(version * 1_000_003L + at).CopyTo(copy, at);
        return copy;
    }
    protected ContentKey ProductKey { get; } = ContentKey.Generate();
    protected ReleaseSigningKey SigningKey { get; } = ReleaseSigningKey.Generate();

    protected string StoreRoot => Dir.Sub("store");

    protected FileSystemStore OpenStore() => FileSystemStore.Open(StoreRoot, create: true);

    public void Dispose()
    {
        SigningKey.Dispose();
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }
}
