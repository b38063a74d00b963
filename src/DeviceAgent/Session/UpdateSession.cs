using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Trust;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>Outcome of a successful session.</summary>
/// <param name="Action">What the server asked for.</param>
/// <param name="Installed">Version installed after the session.</param>
/// <param name="ChunksDownloaded">Chunks fetched from the network (or completed from part files an earlier attempt kept).</param>
/// <param name="ChunksReused">Chunks taken from local files.</param>
/// <param name="BytesDownloaded">Bytes received from the network for this install, over every attempt and agent restart.</param>
/// <param name="Attempts">Attempts it took.</param>
/// <param name="FilesPatched">Files rebuilt from a delta patch (0 when no delta was offered or usable).</param>
/// <param name="FilesFellBack">Files a delta listed that were fetched as chunks instead (local source differed, or the patch failed verification).</param>
public sealed record SessionResult(UpdateAction Action, InstalledVersion Installed, int ChunksDownloaded, int ChunksReused, long BytesDownloaded, int Attempts,
    int FilesPatched = 0, int FilesFellBack = 0);

/// <summary>
/// One update session, step by step as in the seed: check in with a fresh nonce and act only on the director-signed
/// directive of the answer (devices provisioned with a root document; <see cref="SessionTrust"/>), within the floors;
/// on upgrade or repair fetch and verify the signed manifest (release key of the trust root, product, the SHA-256 the
/// directive pins, and not expired — no freeze); find the chunks already present locally; download only the missing ones from the gateway or
/// mirrors; decrypt each chunk straight into its place in the changed files (<see cref="TreeBuild"/>), verify every
/// file hash, stage the new tree (unchanged files as hard links to the installed ones) and swap it in under a
/// journal; report. <see cref="RunUntilSuccessAsync"/> retries with capped, jittered exponential backoff.
/// </summary>
public sealed class UpdateSession
{
    private readonly AgentConfig _config;
    private readonly ZoneLayout _layout;
    private readonly HiddenZone _hidden;
    private readonly IGatewayClient _gateway;
    private readonly HttpClient _http;
    private readonly CrashPoints _crash;
    private readonly Action<string> _log;
    private readonly TimeProvider _time;
    private readonly TreeInstaller _installer;
    private readonly ChunkCache _cache;

    /// <summary>Creates a session.</summary>
    public UpdateSession(AgentConfig config, ZoneLayout layout, HiddenZone hidden, IGatewayClient gateway, HttpClient http,
        CrashPoints? crash = null, Action<string>? log = null, TimeProvider? time = null)
    {
        _config = config;
        _layout = layout;
        _hidden = hidden;
        _gateway = gateway;
        _http = http;
        _crash = crash ?? CrashPoints.None;
        _log = log ?? (_ => { });
        _time = time ?? TimeProvider.System;
        _installer = new TreeInstaller(layout, hidden, _crash);
        _cache = new ChunkCache(layout.ChunkCache, layout.PartialChunks);
    }

    /// <summary>
    /// Last check of a staged, verified tree before it is swapped in (the updater's self-test): returns null to accept,
    /// or the reason to refuse, which fails the attempt at the verify stage (reported, counted by a rollout) with the
    /// installed tree untouched.
    /// </summary>
    public Func<string, CancellationToken, Task<string?>>? AcceptStagedTree { get; init; }

    /// <summary>
    /// The client's health check, run on the new tree at the installed path after the swap (<see cref="TreeInstaller.CommitCheckedAsync"/>)
    /// when the release declares one (<see cref="ClientHealthCheck.IsDeclared"/>):
    /// returns null when healthy, or why not, which puts the previous version back and fails the attempt at the verify
    /// stage (reported with the check's output, counted by a rollout).
    /// </summary>
    public Func<string, CancellationToken, Task<string?>>? CheckInstalledTree { get; init; }

    /// <summary>Version of this agent build, sent at check-in (at most 64 characters, as the protocol allows).</summary>
    public static string AgentVersion { get; } = Clip(
        typeof(UpdateSession).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0", 64);

    /// <summary>Most per-file entries a check-in carries (docs/protocol.md: Gateway:MaxInventoryFiles default).</summary>
    public const int MaxInventoryFiles = 100_000;

    private static string Clip(string s, int max) => s.Length <= max ? s : s[..max];

    /// <summary>
    /// Runs sessions until one succeeds (or <see cref="DownloadSettings.MaxSessionAttempts"/> is reached), reporting
    /// each failure and backing off between attempts; obeys a gateway's Retry-After.
    /// </summary>
    /// <exception cref="SessionFailedException">The attempt limit was reached; the last failure.</exception>
    public async Task<SessionResult> RunUntilSuccessAsync(CancellationToken ct)
    {
        var s = _config.Download;
        var backoff = new Backoff(TimeSpan.FromMilliseconds(s.BackoffBaseMilliseconds), TimeSpan.FromMilliseconds(s.BackoffCapMilliseconds));
        // Only failures count towards MaxSessionAttempts: a 429 at check-in or a used-up grant is the server pacing
        // this device, and a paced device keeps going (after the wait the server asked for) until it succeeds.
        var failures = 0;
        for (var attempt = 1; ; attempt++)
        {
            TimeSpan? serverWait = null;
            SessionFailedException failure;
            try
            {
                return await RunOnceAsync(attempt, ct);
            }
            catch (SessionFailedException e)
            {
                failure = e;
            }
            catch (GrantExhaustedException e)
            {
                // Not a failure: the server is pacing this device. Keep the cache, wait for the window, check in again.
                failure = new SessionFailedException(FailureStage.Download, e.Message, e);
                var untilRenewal = e.RenewsAt is { } at ? at - _time.GetUtcNow() : TimeSpan.Zero;
                serverWait = untilRenewal > TimeSpan.FromMilliseconds(s.BackoffCapMilliseconds) ? TimeSpan.FromMilliseconds(s.BackoffCapMilliseconds) : untilRenewal;
            }
            catch (GatewayException e)
            {
                failure = new SessionFailedException(FailureStage.Download, e.Message, e);
                serverWait = e.RetryAfter;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                failure = new SessionFailedException(FailureStage.Install, $"local file error: {e.Message}", e);
            }
            var paced = failure.InnerException is GrantExhaustedException or GatewayException { StatusCode: 429 };
            if (paced)
            {
                var pause = serverWait is { } w && w > TimeSpan.Zero ? CapServerWait(w) : backoff.Delay(0);
                _log($"session attempt {attempt} paced by the server ({failure.Message}); checking in again in {pause.TotalSeconds:0.###}s");
                await Task.Delay(pause, _time, ct);
                continue;
            }
            failures++;
            _log($"session attempt {attempt} failed at {failure.Stage}: {failure.Message}");
            if (failure.InnerException is not (GatewayException or GrantExhaustedException) && _lastTarget > 0)
            {
                try
                {
                    serverWait = await _gateway.ReportFailureAsync(new FailureReport(_lastTarget, failure.Stage, Truncate(failure.Message), attempt), ct);
                }
                catch (Exception e) when (e is GatewayException or HttpRequestException)
                {
                    _log($"failure report not delivered: {e.Message}");
                }
            }
            if (s.MaxSessionAttempts > 0 && failures >= s.MaxSessionAttempts) throw failure;
            var wait = backoff.Delay(failures - 1);
            if (serverWait is { } sw && sw > wait) wait = CapServerWait(sw);
            await Task.Delay(wait, _time, ct);
        }
    }

    // A wait the server asks for is honoured up to an hour, so a wrong or hostile Retry-After cannot park a device for days.
    private static TimeSpan CapServerWait(TimeSpan wait) => wait > TimeSpan.FromHours(1) ? TimeSpan.FromHours(1) : wait;

    private long _lastTarget;

    /// <summary>One attempt: check in, and upgrade or repair if told to.</summary>
    public async Task<SessionResult> RunOnceAsync(int attempt, CancellationToken ct)
    {
        var recovery = _installer.Recover();
        if (recovery != RecoveryOutcome.Clean) _log($"interrupted install found on start: {recovery}");

        _lastTarget = 0;
        var trust = new SessionTrust(_config, _layout, _hidden, _http, _log, _time);
        // A missing or damaged record is an unknown floor (reported as 0); the directive's floor then rules.
        var record = _hidden.ReadVersionRecord();
        var installed = record is null ? InstalledVersion.None : new InstalledVersion(record.VersionId, record.Version);
        if (record is null) _log($"installed-version record '{HiddenZone.FileName(HiddenItem.InstalledVersion)}' is missing or damaged: floor unknown, reporting version 0");
        var credential = Encoding.UTF8.GetString(_hidden.ReadRequired(HiddenItem.DeviceCredential));
        // The root chain is followed while the first check-in is under way (neither needs the other's answer); the
        // answer's directive is verified only once the chain is followed, against the newest root.
        var chain = trust.FollowRootChainAsync(Sources(null, credential), ct);
        var stale = trust.CheckStale();
        // The first check-in reports what the stat index says the tree holds (no file is read before it); the tree is
        // verified right after, and when it differs the device checks in again with what is really there, before
        // acting on any answer. So the node never acts on a claim for longer than one hashing of the changed files.
        var index = StatIndex.Open(_layout.ClientStatIndex, _hidden, "client", _time);
        var claimed = index.Claimed(_layout.Client);
        var (response, directive) = await CheckInAsync(trust, chain, installed, claimed, stale, ct);
        var inventory = TreeInventory.Scan(_layout.Client, index);
        if (index.Save() is { } notSaved) _log("warning: " + notSaved);
        _log($"installed tree checked: {inventory.Count} file(s), {index.Hashed} read, {index.Reused} unchanged since verified (stat index)");
        if (TreeInventory.Digest(inventory) != TreeInventory.Digest(claimed))
        {
            _log("installed tree differs from what the stat index claimed at check-in; checking in again with the tree as found");
            (response, directive) = await CheckInAsync(trust, chain, installed, inventory, stale, ct);
        }
        if (response.Action == UpdateAction.None)
            return new SessionResult(UpdateAction.None, installed, 0, 0, 0, attempt);

        if (response.TargetVersionId is not { } targetId || string.IsNullOrEmpty(response.ManifestPath))
            throw new SessionFailedException(FailureStage.Verify, $"gateway asked for {response.Action} without targetVersionId and manifestPath");
        _lastTarget = targetId;
        if (StoreLayout.ParseManifestPath(response.ManifestPath) is null)
            throw new SessionFailedException(FailureStage.Verify, $"manifest path '{response.ManifestPath}' from the gateway is not a store manifest path " +
                "(manifests/<product>/<version>.json with store names only: no '%', '?', '#', '..'); nothing was requested");

        var sources = Sources(response, credential);
        await trust.CheckFloorsAsync(response, directive, record, installed, sources, ct);
        var counter = InstallByteCounter.Open(InstallBytesPath, targetId);
        var downloader = new StoreDownloader(_http, sources, _config.Download, _cache,
            response.Grant is { } g ? GrantLimiter.For(g, _time, _config.Download.MinBytesPerSecond) : GrantLimiter.Unlimited, _log) { Counter = counter };
        try
        {
            return await InstallAsync(response, installed, inventory, downloader, counter, attempt, record, directive, trust.Anchor, ct);
        }
        finally
        {
            counter.Flush();
        }
    }

    /// <summary>
    /// Checks in with <paramref name="inventory"/> and a fresh nonce; the answer as the verified directive says, verified
    /// after <paramref name="rootChain"/> (<see cref="SessionTrust.FollowRootChainAsync"/>) is done.
    /// </summary>
    private async Task<(CheckInResponse Response, Directive? Directive)> CheckInAsync(SessionTrust trust, Task rootChain, InstalledVersion installed,
        IReadOnlyList<InventoryEntry> inventory, bool stale, CancellationToken ct)
    {
        // Per-file hashes let the server name a repair's files; past the protocol's cap the digest alone is sent
        // (the agent finds the differing files itself when it plans the repair).
        var files = inventory.Count <= MaxInventoryFiles ? inventory : null;
        var nonce = SessionTrust.NewNonce();
        var sent = _gateway.CheckInAsync(new CheckInRequest(_config.Product, installed.VersionId, TreeInventory.Digest(inventory), files,
            AgentVersion, nonce, stale ? true : null, _config.ReportedAttributes()), ct);
        await Task.WhenAll(rootChain, sent);
        var response = await sent;
        var directive = trust.VerifyDirective(response, nonce);
        return (SessionTrust.Authoritative(response, directive), directive);
    }

    // Above this a manifest's parse and plan garbage is worth a full collection (a few thousand chunks).
    private const long LargeManifestBytes = 1 << 20;

    /// <summary>
    /// After parsing or planning a large release: verifying and parsing its manifest, and planning its chunks, leave
    /// garbage and committed heap in proportion to its chunk count, which the collector would otherwise keep until
    /// much later; collected and returned here, the next step's peak starts from the live set.
    /// </summary>
    private static void ReturnMemory(long manifestBytes)
    {
        if (manifestBytes > LargeManifestBytes) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    /// <summary>Running byte count of the install in progress (see <see cref="InstallByteCounter"/>).</summary>
    private string InstallBytesPath => Path.Combine(_layout.Work, "install-bytes");

    private async Task<SessionResult> InstallAsync(CheckInResponse response, InstalledVersion installed, IReadOnlyList<InventoryEntry> inventory,
        StoreDownloader downloader, InstallByteCounter counter, int attempt, VersionRecord? record, Directive? directive, TrustAnchor anchor,
        CancellationToken ct)
    {

        var (manifest, manifestSha256, manifestBytes) = await FetchVerifiedManifestAsync(downloader, response, record, directive, anchor, ct);
        var delta = response.Action == UpdateAction.Upgrade && response.DeltaManifestPath is { } deltaPath
            ? await TryFetchDeltaAsync(downloader, deltaPath, manifest, manifestBytes, installed, anchor, ct)
            : null;
        var key = ContentKey.FromBytes(_hidden.ReadRequired(HiddenItem.ContentKey));
        var build = TreeBuild.Open(_layout, manifestSha256);
        ReturnMemory(manifestBytes);
        var plan = Plan(manifest, inventory, delta, build, key);
        ReturnMemory(manifestBytes);
        _log($"{response.Action} to {manifest.Version} (id {manifest.VersionId}): {plan.Missing.Count} chunk(s) to download, {plan.Patches.Count} file(s) by delta patch, {plan.ReleaseFiles.Count} file(s) by the whole-release delta, {plan.Local.Count} chunk(s) reused from local files, {plan.Resumed} already built by an earlier attempt");

        // Patches first: a file whose patch cannot be fetched or does not verify joins the chunk download instead,
        // so a damaged delta never blocks a device (nor installs anything unverified).
        await DownloadPatchesAsync(downloader, plan, ct);
        var fellBack = ApplyPatches(plan, build);
        if (delta?.Release is not null && plan.ReleaseFiles.Count > 0)
        {
            await DownloadReleaseFramesAsync(downloader, delta, plan, ct);
            fellBack.AddRange(ApplyRelease(delta, plan, inventory, build, key));
        }
        if (fellBack.Count > 0) plan = PlanFallback(manifest, inventory, plan, fellBack, key);
        PlaceLocalChunks(plan, build, key);
        await DownloadAsync(downloader, manifest, plan, build, key, ct);
        var (newDigest, staged) = Stage(manifest, plan, build, ct);
        if (AcceptStagedTree is not null && await AcceptStagedTree(_layout.Staging, ct) is { } refused)
            throw new SessionFailedException(FailureStage.Verify, $"{manifest.Version} (id {manifest.VersionId}) refused after staging: {refused}; the installed version is kept");
        build.Seal();
        var version = new InstalledVersion(manifest.VersionId, manifest.Version);
        // A release without a declared check is verified completely in staging, so its swap rolls forward after a kill.
        var unhealthy = CheckInstalledTree is null || !ClientHealthCheck.IsDeclared(_layout.Staging)
            ? Commit(version, newDigest, manifestSha256)
            : await _installer.CommitCheckedAsync(version, newDigest, manifestSha256, CheckInstalledTree, ct);
        build.Discard();
        if (unhealthy is not null)
            throw new SessionFailedException(FailureStage.Verify, $"{manifest.Version} (id {manifest.VersionId}) failed after install: {unhealthy}; the previous version is restored");
        // The next start reports the verified staged hashes at once, and hashes the swapped-in files right after.
        var index = StatIndex.Open(_layout.ClientStatIndex, _hidden, "client", _time);
        index.Claim(_layout.Client, staged);
        if (index.Save() is { } notSaved) _log("warning: " + notSaved);
        var patched = plan.Patches.Count + plan.ReleaseFiles.Count - fellBack.Count;
        var bytes = counter.Total;
        _log($"installed {manifest.Version} (id {manifest.VersionId}); {patched} file(s) from delta patches, {fellBack.Count} fell back to chunks, {bytes} bytes downloaded for this install ({downloader.BytesReceived} in this session, {downloader.BytesCheckpointed} kept in part files for resume)");
        await TryReportAsync(() => _gateway.ReportCompletionAsync(new CompletionReport(manifest.VersionId, newDigest,
            patched > 0 ? CompletionReport.MethodDelta : CompletionReport.MethodChunks, bytes), ct));
        counter.Delete();
        _cache.Prune(new HashSet<string>());
        return new SessionResult(response.Action, new InstalledVersion(manifest.VersionId, manifest.Version),
            plan.Missing.Count, plan.Local.Count, bytes, attempt, patched, fellBack.Count);
    }

    /// <summary>
    /// Fetches and verifies the offered delta manifest: signed by the trust root, for this product, from the installed
    /// version to exactly the verified target manifest. Any problem means no delta (chunks), never a failed session.
    /// </summary>
    private async Task<DeltaManifest?> TryFetchDeltaAsync(StoreDownloader downloader, string path, Manifest target, long targetManifestBytes,
        InstalledVersion installed, TrustAnchor anchor, CancellationToken ct)
    {
        if (!StoreLayout.IsDeltaManifestPath(path))
        {
            _log($"ignoring delta path '{path}' from the gateway: not deltas/<product>/<from>/<to>.json; downloading chunks");
            return null;
        }
        try
        {
            // A delta manifest has at most one entry per file of the target and no more parts than the target has chunks,
            // so it is bounded by the target manifest it describes (plus the fixed header), never by the global maximum.
            var cap = Math.Min(_config.Download.MaxManifestBytes, 2 * targetManifestBytes + 64 * 1024);
            return await downloader.FetchVerifiedAsync([(path, cap), (StoreLayout.SignaturePathFor(path), ManifestSigner.SignatureLength)], files =>
            {
                DeltaManifest delta;
                try
                {
                    delta = ByAnyReleaseKey(anchor, key => DeltaManifestSerializer.VerifyAndParse(files[0], files[1], key));
                }
                catch (Exception e) when (e is IntegrityException or InvalidInputException)
                {
                    throw new ContentRejectedException($"delta '{path}': {e.Message}", e);
                }
                if (delta.Product != _config.Product || delta.To.VersionId != target.VersionId || delta.To.Version != target.Version
                    || delta.To.InventoryDigest != target.InventoryDigest || delta.From.VersionId != installed.VersionId)
                    throw new ContentRejectedException($"delta '{path}' goes {delta.Product} {delta.From.VersionId} -> {delta.To.VersionId}, this upgrade is {_config.Product} {installed.VersionId} -> {target.VersionId}");
                return delta;
            }, ct);
        }
        catch (DownloadFailedException e)
        {
            _log($"delta '{path}' not usable ({e.Message}); downloading chunks");
            return null;
        }
    }

    private List<StoreSource> Sources(CheckInResponse? response, string credential)
    {
        var sources = new List<StoreSource>();
        foreach (var m in _config.Mirrors.Concat(response?.Mirrors ?? []).Distinct(StringComparer.Ordinal))
        {
            if (Uri.TryCreate(m, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps))
                sources.Add(StoreSource.Mirror(m));
            else
                _log($"ignoring mirror '{m}' from the gateway: not an absolute http(s) URL");
        }
        if (_config.Gateway is not null)
        {
            // Mirrors-first (the device's or the site's policy): a gateway whose store is down costs nothing while a
            // mirror serves; otherwise the gateway is asked first and mirrors are the fallback. Store requests change no
            // state, so the gateway checks their signature and timestamp but not their sequence (they run in parallel).
            var gateway = StoreSource.Gateway(_config.Gateway, DeviceCredential.Signer(_config.DeviceId, credential, RequestSequence.Shared));
            if ((_config.Download.MirrorsFirst || response?.MirrorsFirst == true) && sources.Count > 0) sources.Add(gateway);
            else sources.Insert(0, gateway);
        }
        return sources;
    }

    private async Task<(Manifest Manifest, string Sha256, long Length)> FetchVerifiedManifestAsync(StoreDownloader downloader, CheckInResponse response,
        VersionRecord? record, Directive? directive, TrustAnchor anchor, CancellationToken ct)
    {
        var path = response.ManifestPath!;
        // The directive pins the manifest's exact length with its hash: no source gets to send a byte more.
        var cap = _config.Download.MaxManifestBytes;
        if (directive?.ManifestBytes is { } pinned)
        {
            if (pinned > cap)
                throw new SessionFailedException(FailureStage.Verify,
                    $"the directive pins a manifest of {pinned} bytes for '{path}', more than download.maxManifestBytes ({cap}); raise download.maxManifestBytes in the agent's configuration if releases really are this large");
            cap = pinned;
        }
        try
        {
            return await downloader.FetchVerifiedAsync([(path, cap), (StoreLayout.SignaturePathFor(path), ManifestSigner.SignatureLength)], files =>
            {
                var (manifest, sha) = Verify(files[0], files[1], anchor, path, response, record, directive);
                return (manifest, sha, (long)files[0].Length);
            }, ct);
        }
        catch (DownloadFailedException e)
        {
            throw new SessionFailedException(e.ContentRejected ? FailureStage.Verify : FailureStage.Download, e.Message, e);
        }
    }

    /// <summary>Runs <paramref name="verify"/> with each release key of the trust anchor until one's signature verifies.</summary>
    private static T ByAnyReleaseKey<T>(TrustAnchor anchor, Func<ReleasePublicKey, T> verify)
    {
        IntegrityException? last = null;
        foreach (var key in anchor.ReleaseKeys)
        {
            try { return verify(key); }
            catch (IntegrityException e) { last = e; }
        }
        throw last ?? new IntegrityException("the trust root names no release key");
    }

    /// <summary>
    /// Signature by a release key of the trust root, then product, assigned version, the manifest's SHA-256 as the
    /// directive pins it (and, for a repair, as the sealed record pins the installed one), no freeze. The floors were
    /// checked before the download (<see cref="SessionTrust.CheckFloorsAsync"/>).
    /// </summary>
    private (Manifest, string) Verify(byte[] bytes, byte[] signature, TrustAnchor anchor, string path, CheckInResponse response, VersionRecord? record,
        Directive? directive)
    {
        var where = $"manifest '{path}'";
        var installed = record?.VersionId ?? 0;
        Manifest manifest;
        try
        {
            manifest = ByAnyReleaseKey(anchor, key => ManifestSigner.VerifyAndParse(bytes, signature, key));
        }
        catch (Exception e) when (e is IntegrityException or InvalidInputException)
        {
            throw new ContentRejectedException($"{where}: {e.Message}", e);
        }
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (manifest.Product != _config.Product)
            throw new ContentRejectedException($"{where} is for product '{manifest.Product}', this device runs '{_config.Product}'");
        // The path names the release the gateway offered; content of another release under that name is a substitution.
        if (StoreLayout.ParseManifestPath(path) is not { } named || named.Product != manifest.Product || named.Version != manifest.Version)
            throw new ContentRejectedException($"{where} holds {manifest.Product} {manifest.Version}, not the release its path names; refused");
        if (manifest.VersionId != response.TargetVersionId)
            throw new ContentRejectedException($"{where} has version ID {manifest.VersionId}, the gateway assigned {response.TargetVersionId}");
        if (directive is not null && directive.ManifestSha256 != sha)
            throw new ContentRejectedException($"{where} has SHA-256 {sha}, but the director-signed directive pins {directive.ManifestSha256} (same version, other content); refused, nothing installed");
        if (response.Action == UpdateAction.Repair && manifest.VersionId != installed)
            throw new ContentRejectedException($"{where} has version ID {manifest.VersionId}, but a repair must use the installed version {installed}");
        if (response.Action == UpdateAction.Repair && record?.ManifestSha256 is { } pinned && pinned != sha)
            throw new ContentRejectedException($"{where} has SHA-256 {sha}, but the installed manifest of version ID {installed} had {pinned}: a repair restores the installed release, not other content under its version ID; refused, nothing installed");
        if (manifest.ExpiresUtc <= _time.GetUtcNow())
            throw new ContentRejectedException($"{where} expired at {manifest.ExpiresUtc:O}; a stale release is refused (freeze protection)");
        return (manifest, sha);
    }

    private sealed record InstallPlan(
        Dictionary<string, string> ReuseFile,            // unchanged: manifest path -> local full path with the same content
        List<ManifestFile> ChunkFiles,                   // files assembled from chunks in the build
        Dictionary<ChunkId, List<ChunkPlace>> Places,    // chunks still to write into the build -> where each goes
        Dictionary<ChunkId, LocalChunk> Local,           // chunks readable from local files
        Dictionary<ChunkId, int> Missing,                // chunks to fetch -> plaintext length
        int Resumed,                                     // chunk places an earlier attempt wrote, verified by their tags
        List<(DeltaFile File, string SourcePath)> Patches, // files to rebuild from a patch and the local source
        List<ManifestFile> ReleaseFiles);                // files to rebuild from the whole-release stream

    private InstallPlan Plan(Manifest manifest, IReadOnlyList<InventoryEntry> inventory, DeltaManifest? delta, TreeBuild build, ContentKey key)
    {
        var localByHash = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in inventory) localByHash.TryAdd(e.Sha256, TreeInventory.ResolveInside(_layout.Client, e.Path));
        var localByPath = inventory.ToDictionary(e => e.Path, e => e.Sha256, StringComparer.Ordinal);
        var patchable = delta?.Files.Where(f => f.Method == DeltaMethod.Patch).ToDictionary(f => f.Path, StringComparer.Ordinal)
            ?? new Dictionary<string, DeltaFile>(StringComparer.Ordinal);
        var inRelease = delta is not null && ReleaseUsable(delta, localByPath)
            ? delta.ReleaseFiles.ToDictionary(f => f.Path, StringComparer.Ordinal)
            : new Dictionary<string, DeltaFile>(StringComparer.Ordinal);
        var reuse = new Dictionary<string, string>(StringComparer.Ordinal);
        var chunkFiles = new List<ManifestFile>();
        var places = new Dictionary<ChunkId, List<ChunkPlace>>();
        var patches = new List<(DeltaFile, string)>();
        var releaseFiles = new List<ManifestFile>();
        var resumed = 0;
        foreach (var f in manifest.Files)
        {
            if (localByHash.TryGetValue(f.Sha256, out var same)) { reuse[f.Path] = same; continue; }
            bool[] done;
            try
            {
                done = build.Verified(f, key);
            }
            catch (InvalidDataException e)
            {
                throw new SessionFailedException(FailureStage.Verify, e.Message, e);
            }
            var resumedHere = done.Count(d => d);
            resumed += resumedHere;
            if (resumedHere == 0 && inRelease.TryGetValue(f.Path, out var r) && r.Sha256 == f.Sha256 && r.Size == f.Size)
            {
                releaseFiles.Add(f);
                continue;
            }
            // A patch applies only to the exact source content it was made from (the repair case falls back to chunks).
            if (resumedHere == 0 && patchable.TryGetValue(f.Path, out var p) && p.Sha256 == f.Sha256 && p.Size == f.Size
                && localByPath.TryGetValue(p.SourcePath, out var localSha) && localSha == p.SourceSha256)
            {
                var source = TreeInventory.ResolveInside(_layout.Client, p.SourcePath);
                // A patch is applied in memory; above the limit the file comes from chunks, which stream.
                var memory = DeltaApplier.MemoryNeeded(p, new FileInfo(source).Length);
                if (memory <= _config.Download.MaxDeltaApplyBytes)
                {
                    patches.Add((p, source));
                    continue;
                }
                _log($"delta patch for '{f.Path}' needs {memory} bytes of memory, over download.maxDeltaApplyBytes {_config.Download.MaxDeltaApplyBytes}; fetching its chunks instead");
            }
            AddPlaces(f, done, chunkFiles, places);
        }
        var local = LocalChunkIndex.Build(_layout.Client, inventory, manifest, key, places.Keys.ToHashSet(), CancellationToken.None);
        var missing = places.Where(n => !local.ContainsKey(n.Key)).ToDictionary(n => n.Key, n => n.Value[0].Chunk.Length);
        return new InstallPlan(reuse, chunkFiles, places, local, missing, resumed, patches, releaseFiles);
    }

    /// <summary>
    /// Whether the whole-release stream is worth applying here: a frame's managed memory fits
    /// download.maxDeltaApplyBytes, and the local tree holds at least half of the reference (by bytes, per-file hashes);
    /// with less, most frames would decode wrong and their files be fetched twice.
    /// </summary>
    private bool ReleaseUsable(DeltaManifest delta, Dictionary<string, string> localByPath)
    {
        if (delta.Release is not { } stream) return false;
        var heap = ReleaseDeltaApplier.HeapNeeded(stream);
        if (heap > _config.Download.MaxDeltaApplyBytes)
        {
            _log($"whole-release delta needs {heap} bytes of memory per frame, over download.maxDeltaApplyBytes {_config.Download.MaxDeltaApplyBytes}; fetching chunks instead");
            return false;
        }
        var held = stream.Sources.Where(src => localByPath.TryGetValue(src.Path, out var sha) && sha == src.Sha256).Sum(src => src.Size);
        if (held * 2 < stream.SourceLength)
        {
            _log($"whole-release delta not used: the installed tree holds {held} of its {stream.SourceLength} reference bytes; fetching chunks instead");
            return false;
        }
        return true;
    }

    /// <summary>Fetches the frames holding the planned release files into the cache (resumable per object); one that no source serves intact is left out (its files fall back).</summary>
    private async Task DownloadReleaseFramesAsync(StoreDownloader downloader, DeltaManifest delta, InstallPlan plan, CancellationToken ct)
    {
        var wanted = plan.ReleaseFiles.Select(f => f.Path).ToHashSet(StringComparer.Ordinal);
        var frames = ReleaseDeltaApplier.FramesFor(delta, f => wanted.Contains(f.Path)).Select(i => delta.Release!.Frames[i]).DistinctBy(p => p.Id).ToList();
        await Parallel.ForEachAsync(frames, new ParallelOptions { MaxDegreeOfParallelism = _config.Download.Parallelism, CancellationToken = ct },
            async (part, token) =>
            {
                try
                {
                    await downloader.FetchChunkAsync(part.Id.Hex, StoreLayout.ChunkPath(part.Id), part.Stored, token);
                }
                catch (DownloadFailedException e)
                {
                    _log($"release delta frame {part.Id} not fetched ({e.Message}); its files fall back to chunks");
                }
            });
    }

    /// <summary>
    /// Rebuilds the planned release files: the reference from the installed files (zeros for any whose hash is not the
    /// source's), memory-mapped; frames decoded one by one into the build; then every file checked against the target
    /// manifest. Returns the paths that did not come out right (they fall back to chunks).
    /// </summary>
    private List<string> ApplyRelease(DeltaManifest delta, InstallPlan plan, IReadOnlyList<InventoryEntry> inventory, TreeBuild build, ContentKey key)
    {
        var stream = delta.Release!;
        var localByPath = inventory.ToDictionary(e => e.Path, e => e.Sha256, StringComparer.Ordinal);
        var wanted = plan.ReleaseFiles.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var reference = Path.Combine(_layout.Work, "release-reference");
        var failed = new List<string>();
        try
        {
            ReleaseDeltaApplier.WriteReference(stream,
                src => localByPath.TryGetValue(src.Path, out var sha) && sha == src.Sha256 ? TreeInventory.ResolveInside(_layout.Client, src.Path) : null,
                reference);
            foreach (var f in plan.ReleaseFiles) build.Allocate(f);
            var frames = ReleaseDeltaApplier.FramesFor(delta, f => wanted.ContainsKey(f.Path));
            ReleaseDeltaApplier.Apply(delta, reference, frames, id => _cache.TryRead(id.Hex), key,
                (file, offset, bytes) => { if (wanted.ContainsKey(file.Path)) build.WriteAt(file.Path, offset, bytes); },
                (index, why) => _log($"release delta frame {index} not used ({why}); its files fall back to chunks"));
        }
        catch (IOException e)
        {
            _log($"whole-release delta not applied ({e.Message}); fetching its files' chunks instead");
            return plan.ReleaseFiles.Select(f => f.Path).ToList();
        }
        finally
        {
            DurableFile.TryDelete(reference);
        }
        foreach (var f in plan.ReleaseFiles)
        {
            if (build.Finish(f) is not { } wrong) continue;
            _log($"whole-release delta: {wrong}; fetching its chunks instead");
            failed.Add(f.Path);
        }
        return failed;
    }

    /// <summary>Adds a file to the chunk build: every chunk not already <paramref name="done"/> gets its place.</summary>
    private static void AddPlaces(ManifestFile f, bool[]? done, List<ManifestFile> chunkFiles, Dictionary<ChunkId, List<ChunkPlace>> places)
    {
        chunkFiles.Add(f);
        long offset = 0;
        for (var i = 0; i < f.Chunks.Count; i++)
        {
            var c = f.Chunks[i];
            if (done is null || !done[i])
            {
                // Most chunks have one place; a list sized for one keeps a large file's plan small.
                if (!places.TryGetValue(c.Id, out var list)) places[c.Id] = list = new List<ChunkPlace>(1);
                list.Add(new ChunkPlace(f, offset, c));
            }
            offset += c.Length;
        }
    }

    /// <summary>
    /// Rebuilds every planned file from its patch and local source, verifying source and result hashes
    /// (<see cref="DeltaApplier"/>); a verified result is written into the build. Returns the target paths whose patch
    /// could not be used.
    /// </summary>
    private List<string> ApplyPatches(InstallPlan plan, TreeBuild build)
    {
        var failed = new List<string>();
        if (plan.Patches.Count == 0) return failed;
        var key = ContentKey.FromBytes(_hidden.ReadRequired(HiddenItem.ContentKey));
        foreach (var (file, sourcePath) in plan.Patches)
        {
            try
            {
                build.WriteWhole(file.Path, DeltaApplier.Apply(file, File.ReadAllBytes(sourcePath), id => _cache.TryRead(id.Hex), key));
            }
            catch (Exception e) when (e is IntegrityException or IOException)
            {
                _log($"delta patch for '{file.Path}' not used ({e.Message}); fetching its chunks instead");
                failed.Add(file.Path);
            }
        }
        return failed;
    }

    /// <summary>The chunks the files whose patch failed need, on top of what is already planned.</summary>
    private InstallPlan PlanFallback(Manifest manifest, IReadOnlyList<InventoryEntry> inventory, InstallPlan plan, IReadOnlyList<string> paths, ContentKey key)
    {
        var wanted = paths.ToHashSet(StringComparer.Ordinal);
        foreach (var f in manifest.Files.Where(f => wanted.Contains(f.Path))) AddPlaces(f, null, plan.ChunkFiles, plan.Places);
        var needed = plan.Places.Keys.Where(id => !plan.Local.ContainsKey(id) && !plan.Missing.ContainsKey(id)).ToHashSet();
        var local = LocalChunkIndex.Build(_layout.Client, inventory, manifest, key, needed, CancellationToken.None);
        foreach (var (id, chunk) in local) plan.Local.TryAdd(id, chunk);
        foreach (var id in needed.Where(id => !local.ContainsKey(id))) plan.Missing.TryAdd(id, plan.Places[id][0].Chunk.Length);
        return plan;
    }

    /// <summary>Fetches the patch objects into the cache; one that no source serves intact is left out (its file falls back).</summary>
    private async Task DownloadPatchesAsync(StoreDownloader downloader, InstallPlan plan, CancellationToken ct)
    {
        var parts = plan.Patches.SelectMany(p => p.File.Parts).DistinctBy(p => p.Id).ToList();
        await Parallel.ForEachAsync(parts, new ParallelOptions { MaxDegreeOfParallelism = _config.Download.Parallelism, CancellationToken = ct },
            async (part, token) =>
            {
                try
                {
                    await downloader.FetchChunkAsync(part.Id.Hex, StoreLayout.ChunkPath(part.Id), part.Stored, token);
                }
                catch (DownloadFailedException e)
                {
                    _log($"patch object {part.Id} not fetched ({e.Message}); its file falls back to chunks");
                }
            });
    }

    /// <summary>
    /// Sizes every file of the chunk build and writes the chunks found in local files into their places. A local piece
    /// whose tag no longer matches (the file changed since the plan) is downloaded instead.
    /// </summary>
    private void PlaceLocalChunks(InstallPlan plan, TreeBuild build, ContentKey key)
    {
        foreach (var f in plan.ChunkFiles) build.Allocate(f);
        byte[] buffer = [];
        foreach (var (id, places) in plan.Places)
        {
            if (plan.Missing.ContainsKey(id) || !plan.Local.TryGetValue(id, out var local)) continue;
            if (buffer.Length < local.Length) buffer = new byte[local.Length];
            var piece = buffer.AsSpan(0, local.Length);
            using (var fs = new FileStream(local.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1))
            {
                fs.Seek(local.Offset, SeekOrigin.Begin);
                if (fs.ReadAtLeast(piece, piece.Length, throwOnEndOfStream: false) != piece.Length
                    || ChunkCodec.ManifestTag(piece, key) != places[0].Chunk.Tag)
                {
                    _log($"chunk {id} changed in '{local.FullPath}' since the plan; downloading it");
                    plan.Missing[id] = places[0].Chunk.Length;
                    continue;
                }
            }
            build.Write(places, piece);
        }
    }

    private async Task DownloadAsync(StoreDownloader downloader, Manifest manifest, InstallPlan plan, TreeBuild build, ContentKey key, CancellationToken ct)
    {
        var total = plan.Missing.Count;
        if (total == 0) return;
        var bytesTotal = plan.Missing.Sum(m => (long)m.Value);
        var done = 0;
        long bytesDone = 0;
        var lastReport = _time.GetTimestamp();
        try
        {
            await Parallel.ForEachAsync(plan.Missing, new ParallelOptions { MaxDegreeOfParallelism = _config.Download.Parallelism, CancellationToken = ct },
                async (item, token) =>
                {
                    // Pooled stored and plaintext buffers: a chunk passes through and leaves no garbage of its size behind.
                    using (var stored = await downloader.FetchChunkRentedAsync(item.Key.Hex, StoreLayout.ChunkPath(item.Key),
                        item.Value + ChunkCodec.HeaderLength + ChunkCodec.TagLength, token))
                    using (var plain = RentedBytes.Rent(item.Value))
                    {
                        try
                        {
                            ChunkCodec.DecodeInto(stored.Span, key, item.Value, plain.Span, item.Key);
                        }
                        catch (IntegrityException e)
                        {
                            // Verified against its id, so the object is what the store holds; it does not decode as the manifest says.
                            _cache.DeletePartial(item.Key.Hex);
                            throw new SessionFailedException(FailureStage.Verify, $"chunk {item.Key} rejected: {e.Message}", e);
                        }
                        build.Write(plan.Places[item.Key], plain.Span);
                    }
                    _cache.DeletePartial(item.Key.Hex);
                    _crash.Reached(CrashPoints.ChunkPlaced);
                    var d = Interlocked.Increment(ref done);
                    var b = Interlocked.Add(ref bytesDone, item.Value);
                    var now = _time.GetTimestamp();
                    if (d == total || _time.GetElapsedTime(Interlocked.Read(ref lastReport), now) > TimeSpan.FromSeconds(2))
                    {
                        Interlocked.Exchange(ref lastReport, now);
                        await TryReportAsync(() => _gateway.ReportProgressAsync(new ProgressReport(manifest.VersionId, b, bytesTotal, d, total), token));
                    }
                });
        }
        catch (DownloadFailedException e)
        {
            throw new SessionFailedException(FailureStage.Download, e.Message, e);
        }
    }

    /// <summary>
    /// Assembles the new tree in staging: unchanged files as hard links to the installed ones, every other file as a hard
    /// link to its finished, verified copy in the build; then checks the tree digest. Returns it with the staged files' hashes.
    /// </summary>
    private (string Digest, IReadOnlyList<InventoryEntry> Files) Stage(Manifest manifest, InstallPlan plan, TreeBuild build, CancellationToken ct)
    {
        var staging = _installer.PrepareStaging();
        var linked = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in manifest.Files)
        {
            ct.ThrowIfCancellationRequested();
            string target;
            try
            {
                target = TreeInventory.ResolveInside(staging, f.Path);
            }
            catch (InvalidDataException e)
            {
                throw new SessionFailedException(FailureStage.Verify, e.Message, e);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (plan.ReuseFile.TryGetValue(f.Path, out var same))
            {
                if (!TryLinkUnchanged(same, target, f, linked)) CopyVerified(same, target, f);
            }
            else
            {
                if (build.Finish(f) is { } wrong)
                    throw new SessionFailedException(FailureStage.Verify, $"{wrong}; nothing installed, the next attempt builds it again");
                build.Stage(f, target);
            }
            _crash.Reached(CrashPoints.FileStaged);
        }
        foreach (var link in manifest.Symlinks)
        {
            var at = TreeInventory.ResolveInside(staging, link.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(at)!);
            File.CreateSymbolicLink(at, link.Target);
        }
        var staged = TreeInventory.Scan(staging);
        var digest = InventoryDigest.Compute(staged.Select(e => (e.Path, e.Sha256)));
        if (digest != manifest.InventoryDigest)
            throw new SessionFailedException(FailureStage.Verify, $"staged tree digest {digest} differs from the manifest's {manifest.InventoryDigest}; nothing installed");
        return (digest, staged);
    }

    /// <summary>Copies an unchanged file that cannot be linked (see <see cref="TryLinkUnchanged"/>) into staging, verifying it.</summary>
    private static void CopyVerified(string source, string target, ManifestFile f)
    {
        using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
        using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            var buffer = new byte[1 << 16];
            int n;
            while ((n = input.Read(buffer)) > 0) { hash.AppendData(buffer, 0, n); output.Write(buffer, 0, n); }
            output.Flush(flushToDisk: true);
            var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (output.Length != f.Size || actual != f.Sha256)
                throw new SessionFailedException(FailureStage.Verify,
                    $"copied '{f.Path}' is {output.Length} bytes with SHA-256 {actual}; the manifest says {f.Size} bytes, {f.Sha256}; nothing installed");
        }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(target, (UnixFileMode)f.Mode);
    }

    /// <summary>
    /// Stages an unchanged file of the installed tree as a hard link to it, so it is not written again. The installed
    /// tree must stay exactly the old version until the swap, and a hard link shares the mode with its source, so a
    /// file is linked only when its mode is already the target's, and each source at most once (two manifest paths
    /// with equal content but different modes get a copy). Content is not re-read here: the staged tree is hashed as a
    /// whole before the swap.
    /// </summary>
    private static bool TryLinkUnchanged(string source, string target, ManifestFile f, HashSet<string> linked)
    {
        if (OperatingSystem.IsWindows() || linked.Contains(source)) return false;
        var info = new FileInfo(source);
        if (!info.Exists || info.LinkTarget is not null || info.Length != f.Size) return false;
        if (info.UnixFileMode != (UnixFileMode)f.Mode) return false;
        if (!HardLink.TryCreate(source, target)) return false;
        linked.Add(source);
        return true;
    }

    // The plain swap in the shape of the checked one (null: installed).
    private string? Commit(InstalledVersion version, string digest, string? manifestSha256)
    {
        _installer.Commit(version, digest, manifestSha256);
        return null;
    }

    private async Task TryReportAsync(Func<Task> report)
    {
        try { await report(); }
        catch (Exception e) when (e is GatewayException or HttpRequestException or OperationCanceledException)
        {
            _log($"report not delivered (will be superseded by the next check-in): {e.Message}");
        }
    }

    private static string Truncate(string s) => s.Length <= 1000 ? s : s[..1000];
}
