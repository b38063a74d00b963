using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.EndToEnd.Tests.Trust.Support;

/// <summary>
/// A key folder as <c>orch keys init</c> writes it (release + content key, root and director keys, root version 1),
/// the node settings that give the node its director key, and the root document devices are provisioned with.
/// </summary>
public sealed class TrustKeys : IDisposable
{
    private readonly TempDir _dir = new();

    public TrustKeys()
    {
        Directory = _dir.Folder("keys");
        KeyFiles.Generate(Directory);
        TrustFiles.Init(Directory, DateTimeOffset.UtcNow);
    }

    public string Directory { get; }

    /// <summary>The newest root envelope (what a device is provisioned with).</summary>
    public byte[] RootDocument => File.ReadAllBytes(Path.Combine(Directory, TrustFiles.RootDocumentFile));

    public string DirectorKeyFile => Path.Combine(Directory, TrustFiles.DirectorKeyFile);

    /// <summary>Node configuration: this folder's director key, and <paramref name="lifetimeMinutes"/> for directives.</summary>
    public Dictionary<string, string?> NodeSettings(double lifetimeMinutes = 10) => new()
    {
        ["Trust:DirectorKeyFile"] = DirectorKeyFile,
        ["Trust:DirectiveLifetimeMinutes"] = lifetimeMinutes.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Copies every root version into the store (root/N.root.json).</summary>
    public void PublishRoots(FileSystemStore store) => TrustFiles.PublishRoots(Directory, store);

    /// <summary>Signs and writes the product floor file into the store, as <c>orch release floor</c> does.</summary>
    public void WriteFloor(FileSystemStore store, string product, string minVersion, long minVersionId)
    {
        using var key = KeyFiles.LoadSigningKey(Directory);
        var path = ProductFloor.PathFor(product);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(store.FullPath(path))!);
        store.WriteFile(path, ProductFloor.Create(product, minVersion, minVersionId, key, DateTimeOffset.UtcNow).ToBytes());
    }

    public void Dispose() => _dir.Dispose();
}
