using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// The node's <see cref="IDeviceGateway"/>: does the I/O a check-in needs (installed manifest, per-file comparison),
/// then asks the device's sharded actor, and maps its answer 1:1 to the protocol DTOs. Commands are stamped with
/// the gateway's clock. A check-in with work also tells the device's cluster-wide budget (<see cref="DownloadThrottle"/>)
/// which capped rollout (if any) the device's downloads count against, and takes the session's grant from it, so the
/// grant and the chunk downloads on every gateway honour the rollout's cap.
/// With <see cref="GatewayOptions.AnswerIdleWithoutActor"/>, a check-in the node's registry row proves idle is answered
/// here without the actor (<see cref="DeviceRowTable.TryAnswer"/>): the same decision, the same signed directive, and a
/// sighting that offline detection reads (<see cref="SightingsCarry"/> carries it to the other nodes).
/// </summary>
public sealed class ShardedDeviceGateway(
    IRequiredActor<DeviceShardRegion> region, InstalledReleaseInspector inspector, NodeSettings settings, TimeProvider clock,
    DownloadThrottle throttle, ChannelCache channelCache, StoreChannelSeeder channelSeeder, Trust.DirectorSigner director, DeviceRowTable rows) : IDeviceGateway
{
    private TimeSpan Timeout => settings.Gateway.DeviceAskTimeout;

    // The fast path answers until the journaled last-seen is this old, then the actor journals it. Zero (the actors
    // journal every check-in) keeps every check-in the actor's.
    private TimeSpan IdleLastSeenPersistInterval => settings.Devices.LastSeenPersistInterval <= TimeSpan.Zero
        ? TimeSpan.Zero
        : settings.Gateway.IdleLastSeenPersistInterval > settings.Devices.LastSeenPersistInterval
            ? settings.Gateway.IdleLastSeenPersistInterval
            : settings.Devices.LastSeenPersistInterval;

    /// <inheritdoc />
    public async ValueTask<CheckInAnswer> CheckInAsync(string deviceId, CheckInRequest request, CancellationToken ct, long requestSequence = 0)
    {
        var facts = inspector.Inspect(request);
        var channels = await ChannelsAsync(request.Product, ct).ConfigureAwait(false);
        CheckIn command;
        // Commands validate themselves (see Build); built here without a closure, as the idle fast path builds one per check-in.
        try
        {
            command = new CheckIn(deviceId, request.Product, request.InstalledVersionId, request.InventoryDigest,
                facts.ExpectedDigest, facts.InstalledVersion, facts.InstalledManifestPath, facts.DifferingPaths, request.AgentVersion, clock.GetUtcNow(),
                requestSequence, channels, request.Stale == true, request.Attributes);
        }
        catch (ArgumentException ex) { throw new DeviceRequestRejectedException(400, "invalid_request", ex.Message); }
        if (settings.Gateway.AnswerIdleWithoutActor)
        {
            var (idle, refused) = rows.TryAnswer(command, IdleLastSeenPersistInterval);
            if (refused is not null) throw new DeviceRequestRejectedException(401, refused.Code, refused.Message);
            if (idle is not null)
            {
                GatewayMetrics.CheckInAnsweredWithoutActor();
                return Answer(request, idle, null, null, SignAsync(deviceId, request, idle));
            }
        }
        var answer = await AskAsync(command, ct).ConfigureAwait(false);
        if (answer is CheckInDeferred deferred)
            throw new DeviceRequestRejectedException(429, "retry_later",
                $"Device '{deviceId}' failed attempt {deferred.Attempt} and was told to retry in {deferred.RetryAfterMs} ms; check in again after Retry-After.")
            { RetryAfter = TimeSpan.FromMilliseconds(deferred.RetryAfterMs) };
        var decision = answer as CheckInDecision ?? throw Unexpected(answer);
        rows.AnsweredByActor(deviceId, command.Timestamp, command.RequestSequence);
        // Work to do: the device's cluster-wide budget records its capped rollout (if any) and gives the session's grant.
        DownloadGrant? grant = null;
        if (decision.Action != UpdateAction.None)
        {
            try
            {
                grant = await throttle.OpenAsync(deviceId, decision.Action == UpdateAction.Upgrade ? decision.RolloutId : null,
                    decision.BandwidthBytesPerSecond, ct).ConfigureAwait(false);
            }
            catch (BudgetUnavailableException ex)
            {
                throw new DeviceRequestRejectedException(503, "budgets_unavailable", ex.Message) { RetryAfter = TimeSpan.FromSeconds(5) };
            }
        }
        var delta = decision.Action == UpdateAction.Upgrade ? inspector.DeltaManifestPathFor(request.Product, facts.InstalledVersion, decision.TargetVersion) : null;
        return Answer(request, decision, grant, delta, SignAsync(deviceId, request, decision));
    }

    // The directive is what the agent acts on; the unsigned fields stay for agents provisioned without a root.
    private ValueTask<Trust.SignedDirective?> SignAsync(string deviceId, CheckInRequest request, CheckInDecision decision)
    {
        if (request.Nonce is null) return default;
        return director.SignAsync(deviceId, request.Nonce, decision, request.Product, request.InstalledVersionId, request.BatchDirectives == true)!;
    }

    // The signature is not awaited here: a batch-signed answer goes out with its signing under way (CheckInAnswer.Signing),
    // so this method and its callers finish without a state machine on the heap, and only the frame that writes the
    // answer waits.
    private CheckInAnswer Answer(CheckInRequest request, CheckInDecision decision, DownloadGrant? grant, string? delta, ValueTask<Trust.SignedDirective?> signing)
    {
        var mirrors = settings.Gateway.Mirrors.Count == 0 ? null : settings.Gateway.Mirrors;
        var done = signing.IsCompletedSuccessfully;
        return new CheckInAnswer(new CheckInResponse(decision.Action, decision.TargetVersion, decision.TargetVersionId, decision.ManifestPath,
            decision.Action == UpdateAction.Repair ? decision.RepairFiles : null, grant, settings.Gateway.NextCheckInSeconds, mirrors, delta,
            settings.Gateway.MirrorsFirst, null,
            decision.Action == UpdateAction.None ? null : NullIfEmpty(inspector.CompactManifestsFor(decision.ManifestPath, request.InstalledVersionId))),
            done ? signing.Result : null)
        {
            Signing = done ? null : signing.AsTask(),
        };
    }

    private static IReadOnlyList<string>? NullIfEmpty(IReadOnlyList<string> list) => list.Count == 0 ? null : list;

    /// <inheritdoc />
    public async Task ReportProgressAsync(string deviceId, ProgressReport report, CancellationToken ct, long requestSequence = 0)
    {
        // The protocol's progress report is about downloading; verify/install progress arrives as failures or completion.
        var answer = await AskAsync(Build(() => new ReportProgress(deviceId, report.TargetVersionId, WorkPhase.Download,
            report.BytesDone, report.BytesTotal, report.ChunksDone, report.ChunksTotal, clock.GetUtcNow(), requestSequence)), ct).ConfigureAwait(false);
        if (answer is not DeviceCommandAccepted) throw Unexpected(answer);
    }

    /// <inheritdoc />
    public async Task<TimeSpan?> ReportFailureAsync(string deviceId, FailureReport report, CancellationToken ct, long requestSequence = 0)
    {
        var stage = report.Stage switch { "download" => WorkPhase.Download, "verify" => WorkPhase.Verify, _ => WorkPhase.Install };
        var answer = await AskAsync(Build(() => new ReportFailure(deviceId, report.TargetVersionId, stage, report.Reason, report.Attempt, clock.GetUtcNow(), requestSequence)), ct)
            .ConfigureAwait(false);
        return answer is RetryAdvice advice ? TimeSpan.FromMilliseconds(advice.RetryAfterMs) : throw Unexpected(answer);
    }

    /// <inheritdoc />
    public async Task ReportCompletionAsync(string deviceId, CompletionReport report, CancellationToken ct, long requestSequence = 0)
    {
        var answer = await AskAsync(Build(() => new ReportCompletion(deviceId, report.InstalledVersionId, report.InventoryDigest, clock.GetUtcNow(), requestSequence)), ct)
            .ConfigureAwait(false);
        if (answer is not DeviceCommandAccepted) throw Unexpected(answer);
    }

    /// <inheritdoc />
    public async Task ReportUpdaterLostAsync(string deviceId, UpdaterLostReport report, CancellationToken ct, long requestSequence = 0)
    {
        var answer = await AskAsync(Build(() => new ReportUpdaterLost(deviceId, report.Reason, clock.GetUtcNow(), requestSequence)), ct).ConfigureAwait(false);
        if (answer is not DeviceCommandAccepted) throw Unexpected(answer);
    }

    // The product's channels from this node's cache (no round trip once it is loaded), seeded from store channel files.
    private async ValueTask<IReadOnlyList<Messages.Channels.ChannelTarget>> ChannelsAsync(string product, CancellationToken ct)
    {
        try
        {
            var known = await channelCache.ForProductAsync(product, ct).ConfigureAwait(false);
            return await channelSeeder.SeedMissingAsync(product, known, ct).ConfigureAwait(false);
        }
        catch (ChannelsUnavailableException ex)
        {
            throw new DeviceRequestRejectedException(503, "channels_unavailable", ex.Message);
        }
    }

    // Commands validate themselves; the HTTP layer validated first, so a throw here means a rule differs between the two.
    private static T Build<T>(Func<T> create)
    {
        try { return create(); }
        catch (ArgumentException ex) { throw new DeviceRequestRejectedException(400, "invalid_request", ex.Message); }
    }

    private async Task<object> AskAsync(IDeviceCommand command, CancellationToken ct)
    {
        var actor = await region.GetAsync(ct).ConfigureAwait(false);
        var answer = await actor.Ask<object>(command, Timeout, ct).ConfigureAwait(false);
        if (answer is DeviceCommandRejected rejected)
        {
            var status = rejected.Code switch
            {
                "wrong_device" => 403,
                DeviceRequestSequence.ReplayedCode => 401,
                _ => 409,
            };
            throw new DeviceRequestRejectedException(status, rejected.Code, rejected.Message);
        }
        return answer;
    }

    private static InvalidOperationException Unexpected(object answer) =>
        new($"Device actor answered {answer.GetType().Name}; this gateway does not understand that reply (version skew?).");
}
