using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.DeviceAgent.Tests.Support;

/// <summary>A real store folder written by the real Publisher, with its release keys.</summary>
public sealed class TestStore : IDisposable
{
    private readonly TempDir _dir = new();

    /// <summary>
    /// A store in a temp folder, or at <paramref name="root"/> (e.g. a node's store root), with fresh keys or those of
    /// <paramref name="keysDirectory"/> (an <c>orch keys init</c> folder).
    /// </summary>
    public TestStore(string? root = null, string? keysDirectory = null)
    {
        ContentKey = keysDirectory is null ? ContentKey.Generate() : KeyFiles.LoadContentKey(keysDirectory);
        SigningKey = keysDirectory is null ? ReleaseSigningKey.Generate() : KeyFiles.LoadSigningKey(keysDirectory);
        Root = root ?? _dir.Folder("store");
        Store = FileSystemStore.Open(Root, create: true);
        Publisher = new Publisher(Store, ContentKey, SigningKey) { Parallelism = 2 };
    }

    public string Root { get; }
    public FileSystemStore Store { get; }
    public ContentKey ContentKey { get; }
    public ReleaseSigningKey SigningKey { get; }
    public Publisher Publisher { get; }

    /// <summary>Writes a release tree from (path, content) pairs and publishes it.</summary>
    public PublishResult Publish(string version, IReadOnlyDictionary<string, byte[]> files, string product = "acme", TimeSpan? lifetime = null,
        IReadOnlyDictionary<string, UnixFileMode>? modes = null, long? versionId = null, bool packs = true, int smallFilesBelow = 0, string? channel = null)
    {
        var tree = _dir.Folder("trees/" + product + "-" + version);
        WriteTree(tree, files);
        foreach (var (path, mode) in modes ?? new Dictionary<string, UnixFileMode>())
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(Path.Combine(tree, path), mode);
        return Publisher.Publish(new PublishRequest(product, version, tree, versionId, channel, Lifetime: lifetime, Packs: packs) { SmallFilesBelow = smallFilesBelow });
    }

    /// <summary>Stored length of a chunk wherever the store at <paramref name="root"/> holds it (its own object or a pack range).</summary>
    public static long StoredLength(string root, Orchestrator.ChunkStore.Codec.ChunkId id) =>
        new Orchestrator.ChunkStore.Packs.ChunkLocator(FileSystemStore.Open(root, create: false)).StoredLength(id)
        ?? throw new InvalidOperationException($"Chunk {id} is not in the store {root}.");

    /// <summary>
    /// Makes this a store as the previous generation of orch published it: every chunk a pack lies in is also stored as
    /// its own chunk object.
    /// </summary>
    public void AddChunkObjectsForPackedChunks()
    {
        var locator = new Orchestrator.ChunkStore.Packs.ChunkLocator(Store);
        foreach (var product in Store.EnumerateProducts())
            foreach (var file in Store.EnumerateManifestFiles(product).Where(f => f.EndsWith(".json", StringComparison.Ordinal)))
                foreach (var id in Orchestrator.ChunkStore.Manifests.ManifestSerializer.Parse(Store.ReadFile(file)!).DistinctChunks())
                    if (!Store.ChunkExists(id)) Store.PutChunkIfAbsent(id, locator.Read(id)!);
        Store.Flush();
    }

    public static void WriteTree(string root, IReadOnlyDictionary<string, byte[]> files)
    {
        foreach (var (path, content) in files)
        {
            var full = Path.Combine(root, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllBytes(full, content);
        }
    }

    public byte[] ManifestBytes(PublishResult r) => File.ReadAllBytes(Path.Combine(Root, r.ManifestPath));

    public Manifest Manifest(PublishResult r) => ManifestSerializer.Parse(ManifestBytes(r));

    /// <summary>Writes a manifest (any bytes) and its signature by this store's release key at a new path; returns the path.</summary>
    public string WriteSigned(string product, string version, byte[] manifestBytes)
    {
        var rel = StoreLayout.ManifestPath(product, version);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(Root, rel))!);
        File.WriteAllBytes(Path.Combine(Root, rel), manifestBytes);
        File.WriteAllBytes(Path.Combine(Root, rel + ".sig"), ManifestSigner.Sign(manifestBytes, SigningKey));
        return rel;
    }

    public void Dispose()
    {
        SigningKey.Dispose();
        _dir.Dispose();
    }
}
