using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Rollouts;

namespace Orchestrator.Node.Admin;

/// <summary>
/// Selector of a create request: devices matching every tag, every attribute and one of the installed versions given,
/// plus the listed devices and the members of the named groups (saved over <c>/admin/v1/groups</c> or configured under
/// <c>Rollouts:Groups:&lt;name&gt;</c>).
/// </summary>
/// <param name="Tags">Devices carrying all these tags.</param>
/// <param name="DeviceIds">Explicit devices.</param>
/// <param name="Groups">Group names.</param>
/// <param name="Attributes">Devices having all these attributes.</param>
/// <param name="InstalledVersions">Devices running one of these versions of the product (version strings as published; "none" for devices with nothing installed).</param>
public sealed record SelectorRequest(List<string>? Tags, List<string>? DeviceIds, List<string>? Groups,
    Dictionary<string, string>? Attributes = null, List<string>? InstalledVersions = null);

/// <summary>One wave of a create request: exactly one of <paramref name="Count"/> and <paramref name="Percent"/>.</summary>
/// <param name="Count">Number of devices.</param>
/// <param name="Percent">Percentage of the devices selected at creation.</param>
public sealed record WaveRequest(int? Count, double? Percent);

/// <summary>Daily UTC window of a create request, times as <c>HH:mm</c>.</summary>
/// <param name="Start">Opens.</param>
/// <param name="End">Closes.</param>
public sealed record WindowRequest(string? Start, string? End);

/// <summary>Body of <c>POST /admin/v1/rollouts</c>; omitted fields take the documented defaults.</summary>
public sealed record CreateRolloutRequest(
    string? Id, string? Product, string? Version, SelectorRequest? Selector, List<WaveRequest>? Waves, bool? RandomizeOrder, int? Seed,
    int? MaxConcurrent, long? BandwidthBytesPerSecond, double? SuccessThreshold, double? ErrorThreshold, int? SoakSeconds,
    int? MaxAttemptsPerDevice, DateTimeOffset? StartAt, WindowRequest? MaintenanceWindow, string? Operator, int? DeviceTimeoutSeconds = null,
    string? Channel = null,
    int? FailingAfterAttempts = null);

/// <summary>Optional body of the operator commands.</summary>
/// <param name="Operator">Who (default: the admin token's user "operator").</param>
/// <param name="Reason">Why (recorded with pause, abort, rollback).</param>
public sealed record RolloutActionRequest(string? Operator, string? Reason);

/// <summary>Admin API v1 for rollouts: create, list, show, pause, resume, abort, rollback, retry-failed.</summary>
public static class RolloutEndpoints
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(15);

    /// <summary>JSON of the rollout routes: the device protocol's settings plus enums by name ("Running", "Percent").</summary>
    public static readonly JsonSerializerOptions Json = new(HttpProblems.Json) { Converters = { new JsonStringEnumConverter() } };

    /// <summary>Maps <c>/admin/v1/rollouts...</c>.</summary>
    public static void MapRolloutAdminApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1/rollouts");
        g.MapPost("", CreateAsync);
        // A read: the body only describes a rollout to evaluate, so no audit row.
        g.MapPost("/preview", PreviewAsync).WithMetadata(new Audit.NotAudited());
        g.MapGet("", ListAsync);
        g.MapGet("/{rolloutId}", ShowAsync);
        g.MapPost("/{rolloutId}/pause", (string rolloutId, HttpContext ctx) =>
            ActionAsync(rolloutId, ctx, (op, reason, _) => new PauseRollout(rolloutId, op, reason ?? "paused by operator")));
        g.MapPost("/{rolloutId}/resume", (string rolloutId, HttpContext ctx) =>
            ActionAsync(rolloutId, ctx, (op, _, _) => new ResumeRollout(rolloutId, op)));
        g.MapPost("/{rolloutId}/abort", (string rolloutId, HttpContext ctx) =>
            ActionAsync(rolloutId, ctx, (op, reason, _) => new AbortRollout(rolloutId, op, reason ?? "aborted by operator")));
        g.MapPost("/{rolloutId}/rollback", (string rolloutId, HttpContext ctx) =>
            ActionAsync(rolloutId, ctx, (op, reason, versions) => new RollbackRollout(rolloutId, op, reason ?? "rolled back by operator", versions)));
        g.MapPost("/{rolloutId}/retry-failed", (string rolloutId, HttpContext ctx) =>
            ActionAsync(rolloutId, ctx, (op, _, _) => new RetryFailedDevices(rolloutId, op)));
    }

    /// <summary>
    /// Refuses named devices that nothing backs: no provisioned credential and no registration (a typo would become a
    /// phantom device the rollout waits on forever), or a registration under another product. The device actors are
    /// asked themselves because the registry may not yet have read a registration made a moment ago.
    /// </summary>
    private static async Task<IResult?> UnknownNamedDevices(RolloutSpec spec, IActorRef devices, DeviceCredentialStore credentials, NodeSettings settings,
        CancellationToken ct)
    {
        var unknown = new List<string>();
        var other = new List<string>();
        var retired = new List<string>();
        foreach (var batch in spec.Selector.ExplicitIds().Chunk(100))
        {
            DeviceState[] states;
            try
            {
                states = await Task.WhenAll(batch.Select(id => devices.Ask<DeviceState>(new GetDeviceState(id), settings.Gateway.DeviceAskTimeout, ct))).ConfigureAwait(false);
            }
            catch (AskTimeoutException)
            {
                return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "devices_timeout",
                    "Named devices did not answer in time; nothing was created. Try again.");
            }
            foreach (var s in states)
            {
                if (s.Decommissioned is not null) retired.Add(s.DeviceId);
                else if (s.Product is { } product && product != spec.Target.Product) other.Add($"{s.DeviceId} ({product})");
                else if (s.Product is null && await credentials.GetAsync(s.DeviceId, ct).ConfigureAwait(false) is null) unknown.Add(s.DeviceId);
            }
        }
        if (unknown.Count > 0)
            return Bad("selector.deviceIds", $"{unknown.Count} named device(s) are neither provisioned nor registered: {string.Join(", ", unknown.Take(10))}. " +
                $"Provision them first (orch device provision ID --product {spec.Target.Product}) or remove them from the selector.");
        if (retired.Count > 0)
            return Bad("selector.deviceIds", $"{retired.Count} named device(s) are decommissioned: {string.Join(", ", retired.Take(10))}. Remove them from the selector.");
        if (other.Count > 0)
            return Bad("selector.deviceIds", $"{other.Count} named device(s) run another product than '{spec.Target.Product}': " +
                $"{string.Join(", ", other.Take(10))}. Remove them from the selector.");
        return null;
    }

    private static IResult Bad(string field, string message) =>
        HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_rollout", $"{field}: {message}");

    private static async Task<IResult> CreateAsync(HttpContext ctx, FileSystemStore store, Groups.DeviceGroupStore groups, Deltas.DeltaPrecomputer deltas,
        IRequiredActor<DeviceShardRegion> region, DeviceCredentialStore credentials, NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        var (body, error) = await HttpProblems.ReadJsonAsync<CreateRolloutRequest>(ctx.Request, 1024 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        var (spec, problem) = await BuildSpecAsync(body!, store, groups, ctx.RequestAborted).ConfigureAwait(false);
        if (spec is not null && problem is null)
            problem = await UnknownNamedDevices(spec, region.ActorRef, credentials, settings, ctx.RequestAborted).ConfigureAwait(false);
        if (problem is not null) return problem;
        var answer = await AskRawAsync(ctx, new CreateRollout(spec!)).ConfigureAwait(false);
        // Fleet-aware deltas for the devices this rollout targets, built in the background; the rollout never waits.
        if (answer is RolloutView) deltas.Request(spec!);
        return ToResult(answer, StatusCodes.Status201Created);
    }

    private static async Task<IResult> PreviewAsync(HttpContext ctx, FileSystemStore store, Groups.DeviceGroupStore groups, NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        var (body, error) = await HttpProblems.ReadJsonAsync<CreateRolloutRequest>(ctx.Request, 1024 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        var (spec, problem) = await BuildSpecAsync(body!, store, groups, ctx.RequestAborted).ConfigureAwait(false);
        if (problem is not null) return problem;
        if (ctx.RequestServices.GetService<IRequiredActor<DeviceRegistryActor>>() is not { } registry)
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "registry_unavailable", "This node has no 'gateway' role and so no device registry to preview against; ask a gateway node.");
        DeviceList known;
        try
        {
            known = await RegistrySelection.AllAsync(registry.ActorRef, new QueryDevices(null, null, null, null, settings.Devices.RegistryQueryLimit),
                TimeSpan.FromSeconds(10), ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (RegistryLimitExceededException ex)
        {
            return DeviceQueryEndpoints.RegistryLimitProblem(ex);
        }
        var selected = RolloutSelection.Select(spec!, known.Devices);
        var byId = known.Devices.ToDictionary(d => d.DeviceId, StringComparer.Ordinal);
        long? Installed(string id) => byId.TryGetValue(id, out var d) && d.Product == spec!.Target.Product ? d.InstalledVersionId : null;
        var installed = selected.GroupBy(Installed).OrderByDescending(g => g.Count()).ThenBy(g => g.Key)
            .Select(g => new InstalledVersionCount(g.Key, g.Count())).ToList();
        return AdminResults.Ok(new RolloutPreview(spec!.Target.Product, spec.Target.Version, spec.Target.VersionId, spec.Channel, selected.Count,
            [.. RolloutState.Plan(spec, selected).Select(w => w.DeviceIds.Count)], installed,
            selected.Count(id => Installed(id) == spec.Target.VersionId), [.. selected.Order(StringComparer.Ordinal).Take(20)]));
    }

    /// <summary>Turns a request into a spec: defaults, group expansion, the target resolved from the store's release index.</summary>
    internal static async Task<(RolloutSpec? Spec, IResult? Problem)> BuildSpecAsync(CreateRolloutRequest r, FileSystemStore store, Groups.DeviceGroupStore groupStore,
        CancellationToken ct)
    {
        var id = r.Id ?? "ro-" + DateTimeOffset.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) + "-" +
            Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        if (!RolloutRules.IsValidId(id)) return (null, Bad("id", $"'{id}' must match {RolloutRules.IdPattern}; omit it to have one generated."));
        if (!StoreNames.IsValidProduct(r.Product)) return (null, Bad("product", $"'{r.Product}' is not a valid product name; give the product the release was published under."));
        if (string.IsNullOrWhiteSpace(r.Version)) return (null, Bad("version", "give the version string to roll out (as published, e.g. \"2.1.0\")."));
        var index = ReadIndex(store, r.Product!);
        if (index is null)
            return (null, Bad("product", $"product '{r.Product}' has no published releases in this store; publish one with orch publish first."));
        var entry = index.FindByVersion(r.Version!);
        if (entry is null)
            return (null, Bad("version", $"version '{r.Version}' of '{r.Product}' is not in the release index; published versions: " +
                $"{string.Join(", ", index.Versions.TakeLast(10).Select(v => v.Version))}."));

        var sel = r.Selector ?? new SelectorRequest(null, null, null);
        var (groups, unknownGroup) = await groupStore.ResolveAsync(sel.Groups ?? [], ct).ConfigureAwait(false);
        if (unknownGroup is not null) return (null, Bad("selector.groups", unknownGroup));
        List<long>? installed = null;
        foreach (var v in sel.InstalledVersions ?? [])
        {
            var versionId = string.Equals(v, "none", StringComparison.Ordinal) ? 0 : index.FindByVersion(v)?.VersionId;
            if (versionId is null)
                return (null, Bad("selector.installedVersions", $"version '{v}' of '{r.Product}' is not in the release index; give published versions " +
                    $"({string.Join(", ", index.Versions.TakeLast(10).Select(x => x.Version))}) or \"none\" for devices with nothing installed."));
            (installed ??= []).Add(versionId.Value);
        }
        var waves = new List<WaveSpec>();
        var waveRequests = r.Waves ?? [new WaveRequest(null, 100)];
        for (var i = 0; i < waveRequests.Count; i++)
        {
            var w = waveRequests[i];
            if ((w.Count is null) == (w.Percent is null))
                return (null, Bad($"waves[{i}]", "give exactly one of count or percent, e.g. {\"count\": 10} or {\"percent\": 25}."));
            waves.Add(w.Count is { } c ? new WaveSpec(WaveSizeKind.Count, c) : new WaveSpec(WaveSizeKind.Percent, w.Percent!.Value));
        }
        MaintenanceWindow? window = null;
        if (r.MaintenanceWindow is { } mw)
        {
            if (!TryMinute(mw.Start, out var start)) return (null, Bad("maintenanceWindow.start", $"'{mw.Start}' is not a time of day; use HH:mm (UTC)."));
            if (!TryMinute(mw.End, out var end)) return (null, Bad("maintenanceWindow.end", $"'{mw.End}' is not a time of day; use HH:mm (UTC)."));
            window = new MaintenanceWindow(start, end);
        }
        var spec = new RolloutSpec(id,
            new RolloutTarget(r.Product!, entry.Version, entry.VersionId, entry.ManifestPath),
            new DeviceSelector(sel.Tags ?? [], sel.DeviceIds ?? [], groups, sel.Attributes is { Count: > 0 } a ? a : null, installed),
            waves, r.RandomizeOrder ?? false, r.Seed ?? RandomNumberGenerator.GetInt32(int.MaxValue),
            r.MaxConcurrent ?? 100, r.BandwidthBytesPerSecond ?? 0, r.SuccessThreshold ?? 0.95, r.ErrorThreshold ?? 0.05,
            r.SoakSeconds ?? 0, r.MaxAttemptsPerDevice ?? 0, r.StartAt, window, string.IsNullOrWhiteSpace(r.Operator) ? "operator" : r.Operator,
            r.DeviceTimeoutSeconds ?? 0, r.Channel ?? Messages.Channels.ChannelRules.DefaultChannel,
            r.FailingAfterAttempts ?? RolloutRules.DefaultFailingAfterAttempts);
        return RolloutRules.Validate(spec) is { } bad ? (null, Bad(bad.Field, bad.Message)) : (spec, null);
    }

    private static bool TryMinute(string? hhmm, out int minute)
    {
        minute = 0;
        if (!TimeOnly.TryParseExact(hhmm, "HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var t)) return false;
        minute = t.Hour * 60 + t.Minute;
        return true;
    }

    private static ReleaseIndex? ReadIndex(FileSystemStore store, string product)
    {
        var bytes = store.ReadFile(StoreLayout.IndexPath(product));
        if (bytes is null) return null;
        try { return ReleaseIndex.Parse(bytes); }
        catch (InvalidInputException) { return null; }
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, bool? all)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        return await AskAsync(ctx, new ListRollouts(all ?? true), StatusCodes.Status200OK).ConfigureAwait(false);
    }

    private static async Task<IResult> ShowAsync(string rolloutId, HttpContext ctx)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (!RolloutRules.IsValidId(rolloutId)) return Bad("rolloutId", $"'{rolloutId}' must match {RolloutRules.IdPattern}.");
        return await AskAsync(ctx, new GetRollout(rolloutId), StatusCodes.Status200OK).ConfigureAwait(false);
    }

    private static async Task<IResult> ActionAsync(string rolloutId, HttpContext ctx,
        Func<string, string?, IReadOnlyList<RollbackVersion>, IRolloutCommand> build)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (!RolloutRules.IsValidId(rolloutId)) return Bad("rolloutId", $"'{rolloutId}' must match {RolloutRules.IdPattern}.");
        var body = new RolloutActionRequest(null, null);
        if (ctx.Request.ContentLength is > 0 || (ctx.Request.ContentLength is null && ctx.Request.Headers.TransferEncoding.Count > 0))
        {
            var (read, error) = await HttpProblems.ReadJsonAsync<RolloutActionRequest>(ctx.Request, 16 * 1024, ctx.RequestAborted).ConfigureAwait(false);
            if (error is not null) return error;
            body = read!;
        }
        if (body.Operator is { } op && string.IsNullOrWhiteSpace(op)) return Bad("operator", "must not be blank; omit it to use \"operator\".");
        if (body.Reason is { Length: > 1000 }) return Bad("reason", "at most 1000 characters.");
        IReadOnlyList<RollbackVersion> versions = [];
        if (ctx.Request.Path.Value!.EndsWith("/rollback", StringComparison.Ordinal))
        {
            // The rollout's product is needed to read its index: ask for the rollout first (read-only).
            var shown = await AskRawAsync(ctx, new GetRollout(rolloutId)).ConfigureAwait(false);
            if (shown is not RolloutView view) return ToResult(shown, StatusCodes.Status200OK);
            var index = ReadIndex(ctx.RequestServices.GetRequiredService<FileSystemStore>(), view.Spec.Target.Product);
            versions = index?.Versions.Select(v => new RollbackVersion(v.VersionId, v.Version, v.ManifestPath)).ToList() ?? [];
        }
        return await AskAsync(ctx, build(body.Operator ?? "operator", body.Reason, versions), StatusCodes.Status200OK).ConfigureAwait(false);
    }

    private static async Task<object?> AskRawAsync(HttpContext ctx, IOrchestratorMessage command)
    {
        var proxy = await ctx.RequestServices.GetRequiredService<IRequiredActor<RolloutCoordinatorProxy>>().GetAsync(ctx.RequestAborted).ConfigureAwait(false);
        try { return await proxy.Ask<object>(command, AskTimeout, ctx.RequestAborted).ConfigureAwait(false); }
        catch (AskTimeoutException) { return null; }
    }

    private static async Task<IResult> AskAsync(HttpContext ctx, IOrchestratorMessage command, int okStatus) =>
        ToResult(await AskRawAsync(ctx, command).ConfigureAwait(false), okStatus);

    private static IResult ToResult(object? answer, int okStatus)
    {
        switch (answer)
        {
            case RolloutView v: return TypedResults.Json(v, Json, statusCode: okStatus);
            case RolloutList l: return TypedResults.Json(l, Json, statusCode: okStatus);
            case RolloutRejected r:
                var status = r.Code switch
                {
                    "invalid_request" => StatusCodes.Status400BadRequest,
                    "not_found" => StatusCodes.Status404NotFound,
                    "unavailable" => StatusCodes.Status503ServiceUnavailable,
                    _ => StatusCodes.Status409Conflict,
                };
                var code = r.Code == "invalid_request" ? "invalid_rollout" : r.Code;
                return HttpProblems.Problem(status, code, r.Field.Length > 0 ? $"{r.Field}: {r.Message}" : r.Message);
            case null:
                return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "rollouts_unavailable",
                    "The rollout coordinator did not answer in time (is a node with role 'rollouts' up?); nothing was changed. Try again.");
            default:
                return HttpProblems.Problem(StatusCodes.Status500InternalServerError, "unexpected_answer", $"Rollout coordinator answered {answer.GetType().Name}.");
        }
    }
}
