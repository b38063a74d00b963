using Akka.Actor;
using Akka.Hosting;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Admin;

/// <summary>
/// <c>POST /admin/v1/devices/register-batch</c>: registers many devices' product and tags in one request (a fleet of
/// 100k devices registered one request each took minutes). Validate everything first, then write: every entry is
/// checked (device id, product, tags, duplicates) and every device that has a journal is asked for its recorded
/// product, and only when all entries pass is anything written. Registration is idempotent, so a request that fails
/// part-way through the writes (an actor timing out) can simply be sent again.
/// <para>
/// Two paths. A device with no journal and no live actor anywhere in the cluster (the bulk-provisioning case) gets its
/// <see cref="DeviceRegistered"/> written straight through the node's journal as its first event
/// (<see cref="FirstEvents"/>): no actor is started, recovered or asked, and the event is tagged and projected into
/// the registry as if its actor had written it. Every other device (one with events, or with a live actor) goes
/// through its actor as before: <see cref="GetDeviceState"/> for the product check, then <see cref="RegisterDevice"/>.
/// The journal's unique (persistence id, sequence number) key guards the direct write: a device whose actor wrote its
/// first event since the lookup fails that write and takes the actor path instead. An actor started between the
/// liveness lookup and the write recovered without the event; after the writes the cluster's live actors are listed
/// again and each written device among them is told <see cref="RecoverDevice"/>, so a stale one passivates and the
/// next message recovers the event (an actor not listed then started after the write and recovered it).
/// </para>
/// </summary>
public static class DeviceBatchRegistrationEndpoint
{
    /// <summary>Device actors asked at once: enough to fill the journal's write batches, few enough not to flood the node.</summary>
    public const int Parallelism = 256;

    private const long MaxBodyBytes = 4 * 1024 * 1024;

    /// <summary>Maps the route.</summary>
    /// <param name="g">The <c>/admin/v1</c> group.</param>
    public static void MapDeviceBatchRegistration(this RouteGroupBuilder g) => g.MapPost("/devices/register-batch", RegisterBatchAsync);

    private static async Task<IResult> RegisterBatchAsync(HttpContext ctx, IRequiredActor<DeviceShardRegion> region, ActorSystem system,
        NodeSettings settings, TimeProvider clock, ILoggerFactory logs)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceBatchRegistrationRequest>(ctx.Request, MaxBodyBytes, ctx.RequestAborted)
            .ConfigureAwait(false);
        if (error is not null) return error;
        if (Problem(body!) is { } problem) return Invalid(problem);
        var now = clock.GetUtcNow();
        var commands = body!.Devices!.Select(d => new RegisterDevice(d.DeviceId, d.Product, d.Tags ?? [], now)).ToList();
        var ct = ctx.RequestAborted;
        var timeout = settings.Gateway.DeviceAskTimeout;
        var devices = region.ActorRef;
        var log = logs.CreateLogger(typeof(DeviceBatchRegistrationEndpoint));

        // Which devices may be written without their actors: no events in the journal, no live actor. When either
        // lookup fails, every device takes the actor path (slower, same outcome).
        var direct = new List<RegisterDevice>();
        var viaActors = new List<RegisterDevice>();
        try
        {
            var journaled = await FirstEvents.JournaledAsync(system, commands.Select(c => PersistenceId(c.DeviceId)).ToList(), timeout, ct).ConfigureAwait(false);
            var live = await DeviceSharding.LiveDeviceIdsAsync(system, devices, timeout, ct).ConfigureAwait(false);
            foreach (var c in commands)
                (journaled.Contains(PersistenceId(c.DeviceId)) || live.Contains(c.DeviceId) ? viaActors : direct).Add(c);
        }
        catch (Exception e) when (e is AskTimeoutException or InvalidOperationException)
        {
            log.LogWarning(e, "Batch registration could not tell which devices have journals or live actors; registering all {Count} through their actors", commands.Count);
            direct.Clear();
            viaActors = commands;
        }

        // Second check, against recorded state: a device registered under another product is refused by its actor; find
        // that before anything is written. Devices without a journal have no product yet. (A concurrent registration of
        // the same device can still race this check; its actor then refuses it and the batch reports it.)
        DeviceState[] states;
        try { states = await ForEachAsync(viaActors, c => devices.Ask<DeviceState>(new GetDeviceState(c.DeviceId), timeout, ct)).ConfigureAwait(false); }
        catch (AskTimeoutException)
        {
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "devices_timeout",
                $"A device actor did not answer within {timeout} while the batch was checked; nothing was registered. Retry, or send smaller batches.");
        }
        for (var i = 0; i < viaActors.Count; i++)
        {
            if (states[i].Product is { } recorded && recorded != viaActors[i].Product)
                return Invalid($"devices[{commands.IndexOf(viaActors[i])}] ('{viaActors[i].DeviceId}') runs product '{recorded}', not '{viaActors[i].Product}'; " +
                               "register it under its own product or leave it out. Nothing was registered.");
        }
        var unchanged = viaActors.Where((c, i) => states[i].Product == c.Product && states[i].Tags.SequenceEqual(c.Tags)).Count();

        var written = await FirstEvents.WriteAsync(system, direct.Select(c => (PersistenceId(c.DeviceId), (object)new DeviceRegistered(c.Product, c.Tags, c.Timestamp))).ToList())
            .ConfigureAwait(false);
        var writtenIds = direct.Where((_, i) => written[i]).Select(c => c.DeviceId).ToList();
        await RecoverStaleActorsAsync(system, devices, writtenIds, timeout, log).ConfigureAwait(false);
        // A device whose first event was taken meanwhile (its actor wrote one) registers through its actor, which checks its product.
        var lateToActors = direct.Where((_, i) => !written[i]).ToList();

        var toActors = viaActors.Concat(lateToActors).ToList();
        var answers = await ForEachAsync(toActors, async c =>
        {
            try { return await devices.Ask<object>(c, timeout, ct).ConfigureAwait(false); }
            catch (AskTimeoutException) { return null; }
        }).ConfigureAwait(false);
        var failed = toActors.Select((c, i) => (c.DeviceId, Answer: answers[i])).Where(x => x.Answer is not DeviceCommandAccepted).ToList();
        if (failed.Count > 0)
        {
            var sample = string.Join("; ", failed.Take(5).Select(f => f.Answer is DeviceCommandRejected r ? $"{f.DeviceId}: {r.Message}" : $"{f.DeviceId}: no answer in {timeout}"));
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "batch_incomplete",
                $"{commands.Count - failed.Count} of {commands.Count} devices registered, {failed.Count} not ({sample}). " +
                "Registration is idempotent: send the same batch again.");
        }
        return AdminResults.Ok(new DeviceBatchRegistered(commands.Count, commands.Count - unchanged, unchanged));
    }

    private static string PersistenceId(string deviceId) => DeviceActor.PersistenceIdPrefix + deviceId;

    // Actors live now that recovered before the direct writes hold a state without them: tell each written device that
    // is live (one that recovered after the write ignores it). When the cluster cannot be listed, every written device
    // is told: that starts their actors (each then recovers the event and stops when unheard), slow but sound.
    private static async Task RecoverStaleActorsAsync(ActorSystem system, IActorRef devices, List<string> writtenIds, TimeSpan timeout, ILogger log)
    {
        if (writtenIds.Count == 0) return;
        IEnumerable<string> toTell;
        try
        {
            var live = await DeviceSharding.LiveDeviceIdsAsync(system, devices, timeout, CancellationToken.None).ConfigureAwait(false);
            toTell = writtenIds.Where(live.Contains);
        }
        catch (AskTimeoutException e)
        {
            log.LogWarning(e, "Batch registration could not list live device actors after writing {Count} registrations; telling each device to recover", writtenIds.Count);
            toTell = writtenIds;
        }
        foreach (var id in toTell) devices.Tell(new RecoverDevice(id, 1));
    }

    private static IResult Invalid(string message) =>
        HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_registration", $"Batch registration refused: {message}");

    /// <summary>What is wrong with the request, naming the first bad entry; null when every entry is valid.</summary>
    private static string? Problem(DeviceBatchRegistrationRequest body)
    {
        if (body.Devices is null || body.Devices.Count == 0)
            return "the body needs a non-empty \"devices\" array of {\"deviceId\", \"product\", \"tags\"}. Nothing was registered.";
        if (body.Devices.Count > DeviceBatchRegistrationRequest.MaxDevices)
            return $"{body.Devices.Count} devices in one request; the limit is {DeviceBatchRegistrationRequest.MaxDevices}: split the fleet into several requests. Nothing was registered.";
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < body.Devices.Count; i++)
        {
            var d = body.Devices[i];
            if (d is null) return $"devices[{i}] is null. Nothing was registered.";
            try { _ = new RegisterDevice(d.DeviceId, d.Product, d.Tags ?? [], default); }
            catch (ArgumentException ex)
            {
                return $"devices[{i}] ('{d.DeviceId}'): {ex.Message} Nothing was registered.";
            }
            if (!seen.TryAdd(d.DeviceId, i))
                return $"devices[{i}] repeats device '{d.DeviceId}' of devices[{seen[d.DeviceId]}]: list each device once. Nothing was registered.";
        }
        return null;
    }

    // Runs one ask per command, at most Parallelism at once, answers in command order.
    private static async Task<T[]> ForEachAsync<T>(IReadOnlyList<RegisterDevice> commands, Func<RegisterDevice, Task<T>> ask)
    {
        var results = new T[commands.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, commands.Count), new ParallelOptions { MaxDegreeOfParallelism = Parallelism },
            async (i, _) => results[i] = await ask(commands[i]).ConfigureAwait(false)).ConfigureAwait(false);
        return results;
    }
}
