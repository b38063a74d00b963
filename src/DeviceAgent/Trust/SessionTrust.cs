using System.Net;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Trust;

/// <summary>
/// The trust steps of one session (docs/security.md): the trust anchor and its root chain, the check-in nonce, the
/// director-signed directive, the device's floor (its own sealed record and the director's), and the release-signed
/// product floor. Every refusal is a <see cref="SessionFailedException"/> at stage verify, raised before anything is
/// written to the installed tree or the hidden zone.
/// </summary>
public sealed class SessionTrust
{
    private readonly AgentConfig _config;
    private readonly ZoneLayout _layout;
    private readonly HiddenZone _hidden;
    private readonly HttpClient _http;
    private readonly Action<string> _log;
    private readonly TimeProvider _time;

    /// <summary>Loads the trust anchor sealed in the hidden zone.</summary>
    public SessionTrust(AgentConfig config, ZoneLayout layout, HiddenZone hidden, HttpClient http, Action<string> log, TimeProvider time)
    {
        _config = config;
        _layout = layout;
        _hidden = hidden;
        _http = http;
        _log = log;
        _time = time;
        try
        {
            Anchor = TrustAnchor.Load(hidden.ReadRequired(HiddenItem.TrustRoot), "hidden trust root");
        }
        catch (Exception e) when (e is InvalidInputException or IntegrityException)
        {
            throw new HiddenZoneException($"the sealed trust root does not verify ({e.Message}); {HiddenZone.RecoveryHint(HiddenItem.TrustRoot)}");
        }
    }

    /// <summary>The root (or legacy release key) this session trusts.</summary>
    public TrustAnchor Anchor { get; private set; }

    /// <summary>A fresh random check-in nonce (16 bytes, lower-case hex).</summary>
    public static string NewNonce() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>
    /// Follows the root chain from the sealed root: fetches <c>root/&lt;N+1&gt;.root.json</c> from the gateway, then each
    /// mirror, until none has the next version (at most <see cref="RootDocument.MaxChainLength"/> steps); every version
    /// must be signed by the previous root's threshold and its own, and is sealed in the hidden zone once verified. A
    /// source that serves a bad root is logged and skipped: the device keeps the root it has.
    /// </summary>
    public async Task FollowRootChainAsync(IReadOnlyList<StoreSource> sources, CancellationToken ct)
    {
        if (!Anchor.RequiresDirectives) return;
        for (var step = 0; step < RootDocument.MaxChainLength; step++)
        {
            var path = TrustFiles.StorePath(Anchor.Root!.Version + 1);
            TrustAnchor? next = null;
            foreach (var source in sources)
            {
                var bytes = await TryGetAsync(source, path, RootDocument.MaxBytes, ct);
                if (bytes is null) continue;
                try
                {
                    next = Anchor.Next(bytes);
                    break;
                }
                catch (Exception e) when (e is InvalidInputException or IntegrityException)
                {
                    _log($"{source.Name} serves '{path}' that does not verify: {e.Message}; keeping root version {Anchor.Root.Version}");
                }
            }
            if (next is null) return;
            _hidden.Write(HiddenItem.TrustRoot, next.Bytes);
            _log($"trust root updated to version {next.Root!.Version}");
            Anchor = next;
        }
    }

    /// <summary>
    /// The directive of a check-in answer, verified and bound to this device, product and nonce; null for a device
    /// provisioned with a bare release key (no director to verify). Records the time of a valid directive.
    /// </summary>
    public Directive? VerifyDirective(CheckInResponse response, string nonce)
    {
        if (!Anchor.RequiresDirectives) return null;
        var now = _time.GetUtcNow();
        Directive d;
        try
        {
            d = Directive.VerifyFor(response.Directive, Anchor, _config.DeviceId, _config.Product, nonce, now);
        }
        catch (DirectiveRejectedException e)
        {
            throw new SessionFailedException(FailureStage.Verify, e.Message, e);
        }
        var state = TrustState.Load(_layout, now);
        (state with { LastValidDirectiveUtc = now }).Save(_layout);
        return d;
    }

    /// <summary>The answer as the directive says it (the directive is authoritative; the unsigned fields are ignored).</summary>
    public static CheckInResponse Authoritative(CheckInResponse response, Directive? d) =>
        d is null ? response : response with
        {
            Action = d.Action, TargetVersion = d.TargetVersion, TargetVersionId = d.TargetVersionId, ManifestPath = d.ManifestPath,
            RepairFiles = d.RepairFiles,
        };

    /// <summary>
    /// True when the device is stale: no valid directive for longer than <see cref="AgentConfig.StaleAfterMinutes"/>
    /// (only devices that require directives can be stale). Logs it.
    /// </summary>
    public bool CheckStale()
    {
        if (!Anchor.RequiresDirectives) return false;
        var now = _time.GetUtcNow();
        var state = TrustState.Load(_layout, now);
        var limit = TimeSpan.FromMinutes(_config.StaleAfterMinutes);
        if (!state.IsStale(now, limit)) return false;
        _log($"STALE: no valid director-signed directive for {state.WithoutDirective(now):g} (limit {limit:g}); reporting stale on this check-in");
        return true;
    }

    /// <summary>
    /// Checks the target against the floors before anything is fetched: the device's own sealed record, the
    /// director-signed floor, the downgrade authorization and, for a fresh device, a device with an unknown record,
    /// or a downgrade, the release-signed product floor.
    /// </summary>
    public async Task CheckFloorsAsync(CheckInResponse response, Directive? directive, VersionRecord? record, InstalledVersion reported,
        IReadOnlyList<StoreSource> sources, CancellationToken ct)
    {
        if (response.Action == UpdateAction.None || response.TargetVersionId is not { } target) return;
        if (record is null && directive is null)
            throw new SessionFailedException(FailureStage.Verify,
                $"the installed-version record '{HiddenZone.FileName(HiddenItem.InstalledVersion)}' is missing or damaged, so this device's rollback floor is unknown, " +
                "and it was provisioned with a bare release key (no director-signed floor to learn it from); nothing installed. Re-provision it with the root document (root.json of `orch keys init`).");
        var floor = Math.Max(record?.VersionId ?? 0, directive?.FloorVersionId ?? 0);
        var downgrade = directive?.Downgrade is { } auth && auth.ToVersionId == target && auth.FromVersionId == reported.VersionId ? auth : null;
        if (response.Action == UpdateAction.Upgrade)
        {
            var belowFloor = target < floor;
            var notNewer = record is not null && target <= record.VersionId;
            if ((belowFloor || notNewer) && downgrade is null)
                throw new SessionFailedException(FailureStage.Verify,
                    $"target version ID {target} is {(belowFloor ? $"below this device's floor {floor}" : $"not newer than the installed {record!.VersionId}")} " +
                    $"and the directive carries no downgrade authorization for {reported.VersionId} -> {target}; rollback refused, nothing installed");
        }
        // Devices provisioned with a bare release key keep the version-1 behaviour (no floor file is fetched).
        if (Anchor.RequiresDirectives && (downgrade is not null || record is null || reported.VersionId == 0))
        {
            var productFloor = await FetchProductFloorAsync(sources, required: downgrade is not null, ct);
            if (productFloor is not null && target < productFloor.MinVersionId)
                throw new SessionFailedException(FailureStage.Verify,
                    $"target version ID {target} is below the release-signed product floor of '{_config.Product}' ({productFloor.MinVersion}, version ID {productFloor.MinVersionId}); refused, nothing installed");
            if (downgrade is not null) _log($"authorized downgrade {downgrade.FromVersionId} -> {downgrade.ToVersionId} (rollout {downgrade.RolloutId}); product floor {productFloor!.MinVersionId}");
        }
    }

    /// <summary>
    /// The release-signed product floor from the first source that serves one that verifies; null when every source
    /// answers 404 (no floor published) and <paramref name="required"/> is false.
    /// </summary>
    private async Task<ProductFloor?> FetchProductFloorAsync(IReadOnlyList<StoreSource> sources, bool required, CancellationToken ct)
    {
        var path = ProductFloor.PathFor(_config.Product);
        foreach (var source in sources)
        {
            var bytes = await TryGetAsync(source, path, ProductFloor.MaxBytes, ct);
            if (bytes is null) continue;
            try
            {
                return ProductFloor.Verify(bytes, Anchor, _config.Product);
            }
            catch (Exception e) when (e is InvalidInputException or IntegrityException)
            {
                _log($"{source.Name} serves '{path}' that does not verify: {e.Message}");
            }
        }
        if (required)
            throw new SessionFailedException(FailureStage.Verify,
                $"a downgrade needs the release-signed product floor '{path}', and no source served one that verifies; nothing installed " +
                "(publish it with `orch release floor --product P --min VERSION --store S --keys K`)");
        return null;
    }

    /// <summary>One GET of a small signed document; null on 404, an error, or a body over <paramref name="maxBytes"/>.</summary>
    private async Task<byte[]?> TryGetAsync(StoreSource source, string path, int maxBytes, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(_config.Download.RequestTimeoutSeconds));
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, source.Resolve(path));
            source.Signer?.Sign(request, []);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (response.StatusCode != HttpStatusCode.OK) return null;
            if (response.Content.Headers.ContentLength > maxBytes) return null;
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int n;
            while ((n = await stream.ReadAsync(chunk, timeout.Token)) > 0)
            {
                buffer.Write(chunk, 0, n);
                if (buffer.Length > maxBytes) return null;
            }
            return buffer.ToArray();
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }
}
