using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Admin;

/// <summary>
/// Admin routes of the <c>device</c> palette and the dashboard's fleet view: the registry read model (list, fleet),
/// the device's own actor (show, register) and its journal (history via <c>CurrentEventsByPersistenceId</c>).
/// </summary>
public static class DeviceQueryEndpoints
{
    /// <summary>Failed devices whose actors are asked for the failure reason in the fleet view.</summary>
    public const int FailureSample = 50;

    private static readonly TimeSpan RegistryTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Maps <c>/admin/v1/devices</c>, <c>/devices/{id}</c>, <c>/devices/{id}/history</c>, <c>/devices/{id}/register</c>, <c>/devices/register-batch</c>, <c>/fleet</c>.</summary>
    public static void MapDeviceAdmin(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1");
        g.MapGet("/devices", ListAsync);
        g.MapGet("/devices/{deviceId}", ShowAsync);
        g.MapGet("/devices/{deviceId}/history", HistoryAsync);
        g.MapPost("/devices/{deviceId}/register", RegisterAsync);
        g.MapPost("/devices/{deviceId}/product", SetProductAsync);
        g.MapPost("/devices/{deviceId}/decommission", DecommissionAsync);
        g.MapPost("/devices/{deviceId}/attributes", SetAttributesAsync);
        g.MapDeviceBatchRegistration();
        g.MapGet("/fleet", FleetAsync);
    }

    private static IResult? InvalidId(string deviceId) => DeviceIdRules.IsValid(deviceId)
        ? null
        : HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_device_id",
            $"Device id '{deviceId}' is invalid: it must match {DeviceIdRules.Pattern} (1-128 characters of letters, digits, '.', '_', ':', '-', starting with a letter or digit).");

    /// <summary>The device actor's answer to an operator command: 200 accepted, 409 with its reason, 500 for anything else.</summary>
    private static IResult CommandResult(object answer) => answer switch
    {
        DeviceCommandAccepted ok => AdminResults.Ok(ok),
        DeviceCommandRejected no => HttpProblems.Problem(StatusCodes.Status409Conflict, no.Code, no.Message),
        _ => HttpProblems.Problem(StatusCodes.Status500InternalServerError, "unexpected_answer", $"The device actor answered {answer.GetType().Name}."),
    };

    private static IResult BadQuery(string name, string value, string expected) =>
        HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_query", $"Query parameter {name}='{value}' is invalid: {expected}.");

    private static async Task<IResult> ListAsync(HttpContext ctx, IRequiredActor<DeviceRegistryActor> registry)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        var q = ctx.Request.Query;
        DeviceStatus? status = null;
        if (q.TryGetValue("status", out var s) && !string.IsNullOrEmpty(s))
        {
            if (!Enum.TryParse<DeviceStatus>(s, ignoreCase: true, out var parsed) || int.TryParse(s, out _))
                return BadQuery("status", s!, $"use one of {string.Join(", ", DeviceStatusNames.All)}");
            status = parsed;
        }
        long? versionId = null;
        if (q.TryGetValue("versionId", out var v) && !string.IsNullOrEmpty(v))
        {
            if (!long.TryParse(v, out var parsed) || parsed < 0) return BadQuery("versionId", v!, "a whole number >= 0");
            versionId = parsed;
        }
        var limit = 100;
        if (q.TryGetValue("limit", out var l) && !string.IsNullOrEmpty(l))
        {
            if (!int.TryParse(l, out limit) || limit is < 1 or > 100_000) return BadQuery("limit", l!, "a whole number in 1..100000");
        }
        var tag = q.TryGetValue("tag", out var t) && !string.IsNullOrEmpty(t) ? t.ToString() : null;
        var rollout = q.TryGetValue("rollout", out var r) && !string.IsNullOrEmpty(r) ? r.ToString() : null;
        Dictionary<string, string>? attributes = null;
        foreach (var pair in q.TryGetValue("attribute", out var a) ? a.ToArray() : [])
        {
            if (pair is null || DeviceAttributeRules.ParsePair(pair) is not { } kv || DeviceAttributeRules.Problem("attribute", kv.Key, kv.Value) is not null)
                return BadQuery("attribute", pair ?? "", $"key=value with a key matching {DeviceAttributeRules.KeyPattern}, e.g. attribute=site=berlin");
            (attributes ??= new(StringComparer.Ordinal))[kv.Key] = kv.Value;
        }
        var list = await registry.ActorRef.Ask<DeviceList>(new QueryDevices(status, versionId, tag, rollout, limit, attributes), RegistryTimeout, ctx.RequestAborted)
            .ConfigureAwait(false);
        return AdminResults.Ok(list);
    }

    private static async Task<DeviceState> AskStateAsync(IRequiredActor<DeviceShardRegion> region, string deviceId, NodeSettings settings, CancellationToken ct) =>
        await region.ActorRef.Ask<DeviceState>(new GetDeviceState(deviceId), settings.Gateway.DeviceAskTimeout, ct).ConfigureAwait(false);

    private static async Task<IResult> ShowAsync(string deviceId, HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var state = await AskStateAsync(region, deviceId, settings, ctx.RequestAborted).ConfigureAwait(false);
        return state.EventCount == 0
            ? HttpProblems.Problem(StatusCodes.Status404NotFound, "device_not_found",
                $"Device '{deviceId}' has no recorded events: it never checked in and was never registered (orch device provision {deviceId} --product NAME).")
            : AdminResults.Ok(state);
    }

    private static async Task<IResult> HistoryAsync(string deviceId, HttpContext ctx, ActorSystem system)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        int? last = null;
        if (ctx.Request.Query.TryGetValue("last", out var l) && !string.IsNullOrEmpty(l))
        {
            if (!int.TryParse(l, out var n) || n < 1) return BadQuery("last", l!, "a whole number >= 1");
            last = n;
        }
        var journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(DeviceRegistry.ReadJournalPluginId);
        var envelopes = await journal.CurrentEventsByPersistenceId(DeviceActor.PersistenceIdPrefix + deviceId, 0, long.MaxValue)
            .RunWith(Sink.Seq<EventEnvelope>(), system.Materializer()).WaitAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (envelopes.Count == 0)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "device_not_found", $"Device '{deviceId}' has no recorded events.");
        var selected = last is null ? envelopes : envelopes.Skip(Math.Max(0, envelopes.Count - last.Value));
        var events = selected.Where(e => e.Event is IDeviceEvent).Select(e =>
        {
            var evt = (IDeviceEvent)e.Event;
            return new DeviceHistoryEntry(e.SequenceNr, evt.GetType().Name, evt.At, DeviceEventText.Describe(evt),
                JsonSerializer.SerializeToElement(evt, evt.GetType(), AdminJson.Options));
        }).ToList();
        return AdminResults.Ok(new DeviceHistoryView(deviceId, events));
    }

    private static async Task<IResult> RegisterAsync(string deviceId, HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings,
        TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceRegistrationRequest>(ctx.Request, 64 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        RegisterDevice command;
        try { command = new RegisterDevice(deviceId, body!.Product, body.Tags ?? [], clock.GetUtcNow()); }
        catch (ArgumentException ex)
        {
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_registration", $"Registration refused, nothing changed: {ex.Message}");
        }
        var answer = await region.ActorRef.Ask<object>(command, settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        return CommandResult(answer);
    }

    private static async Task<IResult> SetProductAsync(string deviceId, HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings,
        TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceProductRequest>(ctx.Request, 64 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (!Orchestrator.ChunkStore.Validation.StoreNames.IsValidProduct(body!.Product))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_product",
                $"product '{body.Product}' is not a valid product name (letters, digits, '.', '_', '-', at most 64); nothing changed.");
        var answer = await region.ActorRef.Ask<object>(new SetDeviceProduct(deviceId, body.Product, string.IsNullOrWhiteSpace(body.Operator) ? "admin-api" : body.Operator,
            clock.GetUtcNow()), settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        return CommandResult(answer);
    }

    private static async Task<IResult> SetAttributesAsync(string deviceId, HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings,
        TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceAttributesRequest>(ctx.Request, 64 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        var who = ctx.Items[Audit.AuditMiddleware.TokenItem] as string ?? "admin-api";
        SetDeviceAttributes command;
        try { command = new SetDeviceAttributes(deviceId, body!.Set ?? new Dictionary<string, string>(), body.Remove ?? [], who, clock.GetUtcNow()); }
        catch (ArgumentException ex)
        {
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_attributes", $"{ex.Message} Nothing changed.");
        }
        var state = await AskStateAsync(region, deviceId, settings, ctx.RequestAborted).ConfigureAwait(false);
        if (state.EventCount == 0)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "device_not_found",
                $"Device '{deviceId}' has no recorded events: register it first (orch device provision {deviceId} --product NAME); nothing changed.");
        var answer = await region.ActorRef.Ask<object>(command, settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        if (answer is not DeviceCommandAccepted) return CommandResult(answer);
        return AdminResults.Ok(await AskStateAsync(region, deviceId, settings, ctx.RequestAborted).ConfigureAwait(false));
    }

    // The credential goes first: once it is revoked (on every node, see DeviceCredentialStore) the device cannot act,
    // so a failure between the two steps leaves a device that is locked out, never one that is retired but still talks.
    private static async Task<IResult> DecommissionAsync(string deviceId, HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings,
        TimeProvider clock, Auth.DeviceCredentialStore credentials)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceDecommissionRequest>(ctx.Request, 64 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (string.IsNullOrWhiteSpace(body!.Reason) || body.Reason.Length > 1000)
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_reason",
                "reason is required (1-1000 characters): it is kept in the device's history; nothing changed.");
        var state = await AskStateAsync(region, deviceId, settings, ctx.RequestAborted).ConfigureAwait(false);
        if (state.EventCount == 0 && await credentials.GetAsync(deviceId, ctx.RequestAborted).ConfigureAwait(false) is null)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "device_not_found",
                $"Device '{deviceId}' has no credential and no recorded events; nothing to decommission.");
        await credentials.RevokeAsync(deviceId, ctx.RequestAborted).ConfigureAwait(false);
        var who = ctx.Items[Audit.AuditMiddleware.TokenItem] as string ?? "admin-api";
        var answer = await region.ActorRef.Ask<object>(new DecommissionDevice(deviceId, who, body.Reason.Trim(), clock.GetUtcNow()),
            settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        return CommandResult(answer);
    }

    /// <summary>State counts, version distribution and failure reasons for the dashboard.</summary>
    public static async Task<FleetView> BuildFleetAsync(IActorRef registry, IActorRef region, FileSystemStore store, NodeSettings settings,
        TimeProvider clock, CancellationToken ct)
    {
        var all = await RegistrySelection.AllAsync(registry, new QueryDevices(null, null, null, null, settings.Devices.RegistryQueryLimit), RegistryTimeout, ct)
            .ConfigureAwait(false);
        var byStatus = DeviceStatusNames.All.ToDictionary(n => n, _ => 0, StringComparer.Ordinal);
        foreach (var d in all.Devices) byStatus[d.Status.ToString()]++;
        var versionNames = new Dictionary<(string, long), string>();
        var versions = all.Devices
            .GroupBy(d => (d.Product, d.InstalledVersionId))
            .Select(g => new VersionShareView(g.Key.Product, g.Key.InstalledVersionId, VersionName(store, g.Key.Product, g.Key.InstalledVersionId, versionNames), g.Count()))
            .OrderByDescending(v => v.Devices).ThenBy(v => v.Product, StringComparer.Ordinal).ThenByDescending(v => v.VersionId)
            .ToList();
        var failed = all.Devices.Where(d => d.Status == DeviceStatus.Failed)
            .OrderByDescending(d => d.LastSeen).Take(FailureSample).ToList();
        var states = await Task.WhenAll(failed.Select(async d =>
        {
            try { return await region.Ask<DeviceState>(new GetDeviceState(d.DeviceId), settings.Gateway.DeviceAskTimeout, ct).ConfigureAwait(false); }
            catch (AskTimeoutException) { return null; }
        })).ConfigureAwait(false);
        var failures = states.Where(s => s?.LastFailure is not null)
            .Select(s => new FailureView(s!.DeviceId, s.LastFailure!.Stage.ToString(), s.LastFailure.Reason, s.FailedAttempts, s.LastFailure.At))
            .OrderByDescending(f => f.At).ToList();
        var reasons = failures.GroupBy(f => f.Reason, StringComparer.Ordinal)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        return new FleetView(clock.GetUtcNow(), all.Total, byStatus, versions, [.. failures.Take(20)], reasons, all.EventsApplied);
    }

    private static string? VersionName(FileSystemStore store, string? product, long versionId, Dictionary<(string, long), string> cache)
    {
        if (product is null || versionId == 0) return null;
        if (cache.TryGetValue((product, versionId), out var name)) return name;
        try
        {
            var bytes = store.ReadFile(StoreLayout.IndexPath(product));
            var found = bytes is null ? null : ReleaseIndex.Parse(bytes).FindById(versionId)?.Version;
            if (found is not null) cache[(product, versionId)] = found;
            return found;
        }
        catch (Exception ex) when (ex is Orchestrator.ChunkStore.Validation.InvalidInputException or IOException)
        {
            return null; // an unreadable index only costs the version's display name
        }
    }

    private static async Task<IResult> FleetAsync(HttpContext ctx, FleetViewCache fleet)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        try { return AdminResults.Ok(await fleet.GetAsync(ctx.RequestAborted).ConfigureAwait(false)); }
        catch (RegistryLimitExceededException ex) { return RegistryLimitProblem(ex); }
    }

    /// <summary>The answer when a whole-fleet selection exceeds <c>Devices:RegistryQueryLimit</c>.</summary>
    public static IResult RegistryLimitProblem(RegistryLimitExceededException ex) =>
        HttpProblems.Problem(StatusCodes.Status507InsufficientStorage, "registry_limit", ex.Message);
}

/// <summary>
/// The fleet view, rebuilt at most once per <see cref="MaxAge"/> however many dashboards poll: building it reads the
/// whole registry and asks up to <see cref="DeviceQueryEndpoints.FailureSample"/> device actors for their last
/// failure, which must not scale with the number of open browser tabs.
/// </summary>
public sealed class FleetViewCache(IRequiredActor<DeviceRegistryActor> registry, IRequiredActor<DeviceShardRegion> region, FileSystemStore store,
    NodeSettings settings, TimeProvider clock)
{
    /// <summary>How long one answer is reused.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private FleetView? _last;

    /// <summary>A fleet view no older than <see cref="MaxAge"/>.</summary>
    public async Task<FleetView> GetAsync(CancellationToken ct)
    {
        if (_last is { } fresh && clock.GetUtcNow() - fresh.GeneratedUtc < MaxAge) return fresh;
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_last is { } built && clock.GetUtcNow() - built.GeneratedUtc < MaxAge) return built;
            return _last = await DeviceQueryEndpoints.BuildFleetAsync(registry.ActorRef, region.ActorRef, store, settings, clock, ct).ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }
}

/// <summary>One human line per device event (history output), in the operator's words rather than the event's fields.</summary>
public static class DeviceEventText
{
    /// <summary>Describes <paramref name="e"/>.</summary>
    public static string Describe(IDeviceEvent e) => e switch
    {
        DeviceRegistered r => $"registered for {r.Product}{(r.Tags.Count > 0 ? $" (tags {string.Join(", ", r.Tags)})" : "")}",
        DeviceCheckedIn c => $"checked in {Running(c.InstalledVersionId, c.Product)}: " + c.Decision switch
        {
            UpdateAction.Upgrade when c.Work is not null => $"told to upgrade to {c.Work.Version} (version ID {c.Work.VersionId})",
            UpdateAction.Repair when c.Work is not null =>
                $"told to repair {Count(c.Work.RepairFiles.Count, "damaged file")} of {c.Work.Version}",
            UpdateAction.None => "up to date",
            var other => $"told to {other.ToString().ToLowerInvariant()}",
        },
        TargetAssigned t => (t.Target.Downgrade ? "told to roll back to " : "assigned ") +
            $"{t.Target.Product} {t.Target.Version} (version ID {t.Target.VersionId}) by rollout {t.Target.RolloutId}",
        AssignmentCancelled a => $"assignment cancelled by {a.Operator}: {a.Reason}",
        ProgressRecorded p => $"{Doing(p.Progress.Phase)}: {Bytes(p.Progress.BytesDone)} of {Bytes(p.Progress.BytesTotal)}, " +
            $"{p.Progress.ChunksDone} of {Count(p.Progress.ChunksTotal, "chunk")}",
        AttemptFailed f => $"attempt {f.Failure.Attempt} failed while {Doing(f.Failure.Stage)}: {f.Failure.Reason}; " +
            $"retrying in {TimeSpan.FromMilliseconds(f.Failure.RetryAfterMs).TotalSeconds:0.#} s",
        WorkCompleted w => $"{w.Kind.ToString().ToLowerInvariant()} done: now running version ID {w.InstalledVersionId}",
        DeviceWentOffline => "went offline",
        DeviceCameBack => "came back online",
        DeviceProductChanged p => $"product changed from {p.PreviousProduct ?? "(none)"} to {p.Product} by {p.Operator}",
        DeviceStaleChanged s => s.Stale ? "reported STALE: no valid director-signed directive for too long" : "no longer stale",
        DeviceUpdaterLost u => $"reported NO WORKING UPDATER (client started without an update session): {u.Reason}",
        DeviceUpdaterRestored => "checked in with a working updater again",
        DeviceDecommissioned d => $"decommissioned by {d.Operator}: {d.Reason}",
        DeviceAttributesReported r => $"reported attributes {Pairs(r.Attributes)}",
        DeviceAttributesSet o => o.Attributes.Count == 0 ? $"operator attributes cleared by {o.Operator}" : $"operator attributes set to {Pairs(o.Attributes)} by {o.Operator}",
        _ => e.GetType().Name,
    };

    private static string Pairs(IReadOnlyDictionary<string, string> attributes) =>
        attributes.Count == 0 ? "(none)" : string.Join(", ", attributes.Select(kv => $"{kv.Key}={kv.Value}"));

    private static string Running(long versionId, string product) =>
        versionId == 0 ? $"with nothing of {product} installed" : $"running version ID {versionId} of {product}";

    private static string Doing(WorkPhase phase) => phase switch
    {
        WorkPhase.Download => "downloading",
        WorkPhase.Verify => "verifying",
        WorkPhase.Install => "installing",
        _ => phase.ToString().ToLowerInvariant(),
    };

    private static string Count(long n, string noun) => n == 1 ? $"1 {noun}" : $"{n} {noun}s";

    private static string Bytes(long n) => n switch
    {
        < 1024 => $"{n} B",
        < 1024 * 1024 => $"{n / 1024.0:0.#} KiB",
        _ => $"{n / (1024.0 * 1024):0.#} MiB",
    };
}
