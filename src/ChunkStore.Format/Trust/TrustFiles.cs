using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>
/// The role keys and root documents in a key directory (docs/store-format.md "Key files"), next to the release key
/// and content key of <see cref="KeyFiles"/>: <c>root.key</c> (offline), <c>director.key</c> (for the nodes),
/// <c>root.json</c> (the newest root envelope, what devices are provisioned with) and <c>root-N.json</c> (every version).
/// </summary>
public static class TrustFiles
{
    /// <summary>Root private key (keep offline).</summary>
    public const string RootKeyFile = "root.key";
    /// <summary>Director private key (give to the nodes: <c>Trust:DirectorKeyFile</c>).</summary>
    public const string DirectorKeyFile = "director.key";
    /// <summary>The newest root envelope: provision devices with it (<c>trust-root.pub</c> in the virtual zone).</summary>
    public const string RootDocumentFile = "root.json";
    /// <summary>Lifetime of a root document.</summary>
    public static readonly TimeSpan RootLifetime = TimeSpan.FromDays(3650);

    /// <summary>Store folder of root versions: <c>root/&lt;N&gt;.root.json</c>.</summary>
    public const string StoreDirectory = "root";

    /// <summary>Store path of root version <paramref name="version"/>.</summary>
    public static string StorePath(long version) => $"{StoreDirectory}/{version}.root.json";

    /// <summary>File of root version <paramref name="version"/> in a key directory.</summary>
    public static string VersionFile(long version) => $"root-{version}.json";

    /// <summary>
    /// Creates the root and director keys and root version 1 naming them and the release key already in
    /// <paramref name="directory"/>. Refuses (nothing written) if a root key exists.
    /// </summary>
    public static TrustAnchor Init(string directory, DateTimeOffset now)
    {
        var full = Path.GetFullPath(directory);
        foreach (var name in new[] { RootKeyFile, DirectorKeyFile, RootDocumentFile })
            if (File.Exists(Path.Combine(full, name)))
                throw new InvalidInputException($"Key file '{Path.Combine(full, name)}' already exists: keys are never overwritten. Use 'orch keys rotate ROLE' to replace a key.");
        using var release = KeyFiles.LoadSigningKey(full);
        using var root = ReleaseSigningKey.Generate();
        using var director = ReleaseSigningKey.Generate();
        var envelope = RootDocument.Create(1, [root.PublicKey], [release.PublicKey], [director.PublicKey], [root], now, RootLifetime);
        AtomicFile.Write(Path.Combine(full, RootKeyFile), root.ToBytes(), ownerOnly: true);
        AtomicFile.Write(Path.Combine(full, DirectorKeyFile), director.ToBytes(), ownerOnly: true);
        WriteRoot(full, 1, envelope.ToBytes());
        return TrustAnchor.Load(envelope.ToBytes(), RootDocumentFile);
    }

    /// <summary>The newest root in a key directory.</summary>
    public static TrustAnchor LoadRoot(string directory)
    {
        var path = Path.Combine(Path.GetFullPath(directory), RootDocumentFile);
        if (!File.Exists(path))
            throw new InvalidInputException($"'{path}' does not exist: create the trust set with 'orch keys init --dir DIR'.");
        return TrustAnchor.Load(File.ReadAllBytes(path), path);
    }

    /// <summary>
    /// Replaces the key of <paramref name="role"/> with a new one and writes root version N+1, signed by the current
    /// root key (and, for the root role, by the new root key as well). The old private key is kept as
    /// <c>&lt;file&gt;.v&lt;N&gt;</c> so an operator can still read what it signed. Returns the new root.
    /// </summary>
    public static TrustAnchor Rotate(string directory, string role, DateTimeOffset now)
    {
        if (!TrustRoles.All.Contains(role))
            throw new InvalidInputException($"Unknown role '{role}': rotate one of {string.Join(", ", TrustRoles.All)}.");
        var full = Path.GetFullPath(directory);
        var current = LoadRoot(full);
        var doc = current.Root!;
        using var oldRoot = ReleaseSigningKey.FromBytes(ReadKey(full, RootKeyFile));
        if (!doc.KeysOf(TrustRoles.Root).ContainsKey(TrustKeyIds.Of(oldRoot.PublicKey)))
            throw new InvalidInputException($"'{RootKeyFile}' in '{full}' is not a root key of root version {doc.Version}; nothing changed.");
        using var fresh = ReleaseSigningKey.Generate();
        ReleasePublicKey[] Keys(string r) => r == role ? [fresh.PublicKey] : doc.KeysOf(r).Values.ToArray();
        var version = doc.Version + 1;
        var signers = role == TrustRoles.Root ? new[] { oldRoot, fresh } : [oldRoot];
        var envelope = RootDocument.Create(version, Keys(TrustRoles.Root), Keys(TrustRoles.Release), Keys(TrustRoles.Director), signers, now, RootLifetime);
        var next = current.Next(envelope.ToBytes());
        var keyFile = role switch { TrustRoles.Root => RootKeyFile, TrustRoles.Director => DirectorKeyFile, _ => KeyFiles.SigningKeyFile };
        var keyPath = Path.Combine(full, keyFile);
        if (File.Exists(keyPath)) File.Copy(keyPath, keyPath + ".v" + doc.Version, overwrite: true);
        AtomicFile.Write(keyPath, fresh.ToBytes(), ownerOnly: true);
        if (role == TrustRoles.Release) AtomicFile.Write(Path.Combine(full, KeyFiles.PublicKeyFile), fresh.PublicKey.ToBytes(), ownerOnly: true);
        WriteRoot(full, version, envelope.ToBytes());
        return next;
    }

    /// <summary>Copies every root version of the key directory into the store (<c>root/N.root.json</c>); returns how many were new.</summary>
    public static int PublishRoots(string directory, FileSystemStore store)
    {
        var full = Path.GetFullPath(directory);
        var written = 0;
        for (long v = 1; File.Exists(Path.Combine(full, VersionFile(v))); v++)
        {
            var bytes = File.ReadAllBytes(Path.Combine(full, VersionFile(v)));
            if (store.ReadFile(StorePath(v)) is { } existing && existing.AsSpan().SequenceEqual(bytes)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(store.FullPath(StorePath(v)))!);
            store.WriteFile(StorePath(v), bytes);
            written++;
        }
        return written;
    }

    private static void WriteRoot(string full, long version, byte[] bytes)
    {
        AtomicFile.Write(Path.Combine(full, VersionFile(version)), bytes, ownerOnly: true);
        AtomicFile.Write(Path.Combine(full, RootDocumentFile), bytes, ownerOnly: true);
    }

    private static byte[] ReadKey(string directory, string name)
    {
        var path = Path.Combine(directory, name);
        if (!File.Exists(path)) throw new InvalidInputException($"Key file '{path}' does not exist: run 'orch keys init --dir DIR' first.");
        return File.ReadAllBytes(path);
    }
}
