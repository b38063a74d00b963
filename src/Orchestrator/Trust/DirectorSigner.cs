using System.Collections.Concurrent;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Trust;

/// <summary>Configuration section <c>Trust</c> (docs/security.md, docs/protocol.md "Directive").</summary>
public sealed class TrustOptions
{
    /// <summary>Section name.</summary>
    public const string Section = "Trust";

    /// <summary>
    /// Raw 32-byte Ed25519 private key of the director role (<c>director.key</c> written by <c>orch keys init</c>). When
    /// empty the node creates a development key <c>&lt;Node:DataDirectory&gt;/director.key</c> (mode 0600) on first start and
    /// logs its public key: devices trust it only if a root document names it.
    /// </summary>
    public string? DirectorKeyFile { get; set; }

    /// <summary>How long a directive is valid after it was signed, in minutes (more than 0, at most 1440; default 10; fractions allowed).</summary>
    public double DirectiveLifetimeMinutes { get; set; } = 10;

    /// <summary>
    /// Most directives one batch signature covers (1 to 65536; default 64), for agents that read batch-signed directives
    /// (docs/protocol.md "Directive"). Batches form only from directives that wait while a signature is being computed;
    /// a larger bound lets one signature answer more of a burst, and lengthens each answer's inclusion path by a hash per doubling.
    /// </summary>
    public int DirectiveBatchMaxSize { get; set; } = 64;

    /// <summary>Problems, each naming the setting and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (!(DirectiveLifetimeMinutes > 0 && DirectiveLifetimeMinutes <= 1440))
            yield return $"Trust:DirectiveLifetimeMinutes {DirectiveLifetimeMinutes} is out of range; use more than 0 and at most 1440 (default 10).";
        if (DirectiveBatchMaxSize is < 1 or > DirectiveBatch.MaxSize)
            yield return $"Trust:DirectiveBatchMaxSize {DirectiveBatchMaxSize} is out of range; use 1 to {DirectiveBatch.MaxSize} (default 64).";
        if (!string.IsNullOrEmpty(DirectorKeyFile) && !File.Exists(DirectorKeyFile))
            yield return $"Trust:DirectorKeyFile '{DirectorKeyFile}' does not exist; point it at the director.key written by 'orch keys init', or leave it empty for a development key.";
    }
}

/// <summary>
/// Signs the directive of every check-in with the node's director key (docs/protocol.md "Directive"): the device,
/// its product, the check-in's nonce, a short validity, the action, the target manifest pinned by SHA-256, the
/// device's floor and, for an operator's rollback, the downgrade authorization. A directive for an agent that reads
/// batch-signed directives is signed through the <see cref="DirectiveBatcher"/> (one signature over the Merkle root of
/// the directives ready together); any other is signed on its own.
/// </summary>
public sealed class DirectorSigner : IDisposable
{
    /// <summary>File name of the development key in the data directory.</summary>
    public const string DevelopmentKeyFile = "director.key";

    private readonly ReleaseSigningKey _key;
    private readonly string _keyId;
    private readonly TimeSpan _lifetime;
    private readonly FileSystemStore _store;
    private readonly TimeProvider _clock;
    private readonly ConcurrentDictionary<string, (DateTime WriteTime, long Length, string Sha256)> _manifestHashes = new(StringComparer.Ordinal);

    /// <summary>Loads the configured key, or the development key of <paramref name="dataDirectory"/> (created on first use).</summary>
    public DirectorSigner(TrustOptions options, string dataDirectory, FileSystemStore store, TimeProvider clock)
    {
        _lifetime = TimeSpan.FromMinutes(options.DirectiveLifetimeMinutes);
        _store = store;
        _clock = clock;
        var path = string.IsNullOrEmpty(options.DirectorKeyFile) ? Path.Combine(dataDirectory, DevelopmentKeyFile) : options.DirectorKeyFile;
        if (string.IsNullOrEmpty(options.DirectorKeyFile) && !File.Exists(path))
        {
            using var fresh = ReleaseSigningKey.Generate();
            AtomicFile.Write(path, fresh.ToBytes(), ownerOnly: true);
            GeneratedDevelopmentKey = true;
        }
        KeyFile = Path.GetFullPath(path);
        _key = ReleaseSigningKey.FromBytes(File.ReadAllBytes(path));
        _keyId = TrustKeyIds.Of(_key.PublicKey);
        _batcher = new DirectiveBatcher(_key, _keyId, options.DirectiveBatchMaxSize);
    }

    private readonly DirectiveBatcher _batcher;

    /// <summary>The key file in use.</summary>
    public string KeyFile { get; }

    /// <summary>True when this start created a development key.</summary>
    public bool GeneratedDevelopmentKey { get; }

    /// <summary>Public key (hex) and key id, for the start-up log.</summary>
    public string Describe() => $"{_key.PublicKey} (key id {TrustKeyIds.Of(_key.PublicKey)})";

    /// <summary>
    /// The signed directive answering <paramref name="nonce"/> (its envelope: <see cref="SignedDirective.ToBytes"/>, the
    /// bytes <see cref="SignedEnvelope.ToBytes"/> writes): batch-signed when <paramref name="batch"/> (the agent said it
    /// reads batch-signed directives), else signed on its own.
    /// </summary>
    public ValueTask<SignedDirective> SignAsync(string deviceId, string nonce, CheckInDecision decision, string product, long installedVersionId, bool batch)
    {
        // The batcher's wait is returned as is: no async frame of this method per answer.
        var payload = Payload(deviceId, nonce, decision, product, installedVersionId);
        return batch ? _batcher.SignAsync(payload) : new ValueTask<SignedDirective>(new SignedDirective(payload, _keyId, _key.Sign(payload)));
    }

    private byte[] Payload(string deviceId, string nonce, CheckInDecision decision, string product, long installedVersionId)
    {
        var now = _clock.GetUtcNow();
        // The idle answer (most check-ins): the same bytes as the record below, written without it.
        if (decision.Action == UpdateAction.None && !decision.AuthorizedDowngrade)
            return IdleDirectivePayload.Write(deviceId, decision.Product ?? product, nonce, now, now + _lifetime, decision.FloorVersionId);
        var pinned = decision.Action == UpdateAction.None || decision.ManifestPath is null ? null : PinManifest(decision.ManifestPath);
        var downgrade = decision.AuthorizedDowngrade && decision.TargetVersionId is { } to && decision.RolloutId is { } rollout
            ? new DowngradeAuthorization(installedVersionId, to, rollout)
            : null;
        var directive = new Directive(1, "directive", deviceId, decision.Product ?? product, nonce, now, now + _lifetime, decision.Action,
            decision.Action == UpdateAction.None ? null : decision.TargetVersion,
            decision.Action == UpdateAction.None ? null : decision.TargetVersionId,
            decision.Action == UpdateAction.None ? null : decision.ManifestPath, pinned?.Sha256,
            decision.Action == UpdateAction.Repair ? decision.RepairFiles : null, decision.FloorVersionId, downgrade, pinned?.Length);
        return directive.ToPayload();
    }

    // A manifest file is replaced only by rename (publish), so (write time, length) identifies its bytes. A target that
    // is no manifest of this store (a tampered or stale assignment) gets no hash: the directive then pins nothing, and an
    // agent that requires directives refuses it, while the check-in itself still answers.
    // The length is pinned with the hash so that the agent can refuse a longer answer at its exact size instead of
    // reading up to its configured maximum from a hostile source.
    private (string Sha256, long Length)? PinManifest(string manifestPath)
    {
        if (StoreLayout.ParseManifestPath(manifestPath) is null) return null;
        var info = new FileInfo(_store.FullPath(manifestPath));
        if (!info.Exists) return null;
        if (_manifestHashes.TryGetValue(manifestPath, out var c) && c.WriteTime == info.LastWriteTimeUtc && c.Length == info.Length) return (c.Sha256, c.Length);
        var bytes = File.ReadAllBytes(info.FullName);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (_manifestHashes.Count > 1024) _manifestHashes.Clear();
        _manifestHashes[manifestPath] = (info.LastWriteTimeUtc, bytes.Length, sha);
        return (sha, bytes.Length);
    }

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();
}
