using System.Reflection;
using System.Text;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
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
    private readonly ReleaseVerification _verification;
    private readonly KeptManifest _kept;
    private readonly InstallPlanner _planner;
    private readonly InstallContent _content;
    private readonly TreeStager _stager;

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
        _kept = new KeptManifest(layout.KeptManifests, config.Download.MaxManifestBytes, _log);
        _verification = new ReleaseVerification(config, _time, _log, _kept);
        _planner = new InstallPlanner(layout, config.Download, _log);
        _content = new InstallContent(layout, config.Download, _cache, _crash, _time, _log,
            (progress, ct) => TryReportAsync(() => _gateway.ReportProgressAsync(progress, ct)));
        _stager = new TreeStager(_installer, _crash);
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
            // The server pacing the device is not a failed attempt: a 429, or a check-in the gateway's admission refused
            // before recording anything (503 node_busy); both are waited out for the server's Retry-After.
            var paced = failure.InnerException is GrantExhaustedException or GatewayException { StatusCode: 429 }
                or GatewayException { StatusCode: 503, Error: "node_busy" };
            if (paced)
            {
                // A server's wait gets up to a second more at random: Retry-After is whole seconds, so devices the node
                // refused within the same millisecond would otherwise all come back within the same millisecond.
                var pause = serverWait is { } w && w > TimeSpan.Zero
                    ? CapServerWait(w) + TimeSpan.FromMilliseconds(Random.Shared.Next(RetryAfterJitterMilliseconds))
                    : backoff.Delay(0);
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

    /// <summary>
    /// A wait the server asks for (429, 503 <c>node_busy</c>, a used-up grant) is honoured plus a random 0 to this many
    /// milliseconds (uniform, exclusive), so refusals sent together do not come back together (docs/protocol.md).
    /// </summary>
    public const int RetryAfterJitterMilliseconds = 1000;

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
            AgentVersion, nonce, stale ? true : null, _config.ReportedAttributes(), trust.Anchor.RequiresDirectives ? true : null), ct);
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

        var (manifest, manifestSha256, manifestBytes) = await _verification.FetchManifestAsync(downloader, response, record, directive, anchor, ct);
        var delta = response.Action == UpdateAction.Upgrade && response.DeltaManifestPath is { } deltaPath
            ? await _verification.TryFetchDeltaAsync(downloader, deltaPath, manifest, manifestBytes, installed, anchor, ct)
            : null;
        var key = ContentKey.FromBytes(_hidden.ReadRequired(HiddenItem.ContentKey));
        var build = TreeBuild.Open(_layout, manifestSha256);
        ReturnMemory(manifestBytes);
        var plan = _planner.Plan(manifest, inventory, delta, build, key);
        ReturnMemory(manifestBytes);
        _log($"{response.Action} to {manifest.Version} (id {manifest.VersionId}): {plan.Missing.Count} chunk(s) to download, {plan.Patches.Count} file(s) by delta patch, {plan.ReleaseFiles.Count} file(s) by the whole-release delta, {plan.Local.Count} chunk(s) reused from local files, {plan.Resumed} already built by an earlier attempt");

        // Patches first: a file whose patch cannot be fetched or does not verify joins the chunk download instead,
        // so a damaged delta never blocks a device (nor installs anything unverified).
        await _content.DownloadPatchesAsync(downloader, plan, ct);
        var fellBack = _content.ApplyPatches(plan, build, key);
        if (delta?.Release is not null && plan.ReleaseFiles.Count > 0)
        {
            await _content.DownloadReleaseFramesAsync(downloader, delta, plan, ct);
            fellBack.AddRange(_content.ApplyRelease(delta, plan, inventory, build, key));
        }
        if (fellBack.Count > 0) plan = _planner.PlanFallback(manifest, inventory, plan, fellBack, key);
        _content.PlaceLocalChunks(plan, build, key);
        // Chunk patches are coded against the previous release's files: an upgrade of an installed tree may hold them; a
        // first install (no file) or a repair (its tree is the target release but for the damaged files) does not, so
        // neither asks for the index.
        var chunkPatches = plan.Missing.Count > 0 && response.Action == UpdateAction.Upgrade && inventory.Count > 0
            ? await _verification.TryFetchChunkPatchesAsync(downloader, response.ManifestPath!, manifest, manifestSha256, anchor, ct)
            : null;
        if (chunkPatches is not null) await _content.ApplyChunkPatchesAsync(downloader, plan, build, key, chunkPatches, inventory, ct);
        var packs = plan.Missing.Count > 0
            ? await _verification.TryFetchPackIndexAsync(downloader, response.ManifestPath!, manifest, manifestSha256, anchor, ct)
            : null;
        await _content.DownloadAsync(downloader, manifest, plan, build, key, packs, ct);
        var (newDigest, staged) = _stager.Stage(manifest, plan, build, ct);
        if (AcceptStagedTree is not null && await AcceptStagedTree(_layout.Staging, ct) is { } refused)
            throw new SessionFailedException(FailureStage.Verify, $"{manifest.Version} (id {manifest.VersionId}) refused after staging: {refused}; the installed version is kept");
        build.Seal();
        var version = new InstalledVersion(manifest.VersionId, manifest.Version);
        // A release without a declared check is verified completely in staging, so its swap rolls forward after a kill.
        var unhealthy = CheckInstalledTree is null || !ClientHealthCheck.IsDeclared(_layout.Staging)
            ? Commit(version, newDigest, manifestSha256)
            : await _installer.CommitCheckedAsync(version, newDigest, manifestSha256, CheckInstalledTree, ct);
        build.Discard();
        // The installed manifest's copy is the next upgrade's patch reference; copies of other releases are of no use.
        _kept.KeepOnly(unhealthy is null ? manifestSha256 : record?.ManifestSha256);
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
