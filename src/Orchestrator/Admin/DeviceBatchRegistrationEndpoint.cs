using Akka.Actor;
using Akka.Hosting;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.DeviceActors;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Admin;

/// <summary>
/// <c>POST /admin/v1/devices/register-batch</c>: registers many devices' product and tags in one request (a fleet of
/// 100k devices registered one request each took minutes). Validate everything first, then write: every entry is
/// checked (device id, product, tags, duplicates) and every device's actor is asked for its recorded product, and
/// only when all entries pass is any <see cref="RegisterDevice"/> sent. Registration is idempotent, so a request that
/// fails part-way through the writes (an actor timing out) can simply be sent again.
/// </summary>
public static class DeviceBatchRegistrationEndpoint
{
    /// <summary>Device actors asked at once: enough to fill the journal's write batches, few enough not to flood the node.</summary>
    public const int Parallelism = 256;

    private const long MaxBodyBytes = 4 * 1024 * 1024;

    /// <summary>Maps the route.</summary>
    /// <param name="g">The <c>/admin/v1</c> group.</param>
    public static void MapDeviceBatchRegistration(this RouteGroupBuilder g) => g.MapPost("/devices/register-batch", RegisterBatchAsync);

    private static async Task<IResult> RegisterBatchAsync(HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings, TimeProvider clock)
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

        // Second check, against recorded state: a device registered under another product is refused by its actor; find
        // that before anything is written. (A concurrent registration of the same device can still race this check.)
        DeviceState[] states;
        try { states = await ForEachAsync(commands, c => region.ActorRef.Ask<DeviceState>(new GetDeviceState(c.DeviceId), timeout, ct)).ConfigureAwait(false); }
        catch (AskTimeoutException)
        {
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "devices_timeout",
                $"A device actor did not answer within {timeout} while the batch was checked; nothing was registered. Retry, or send smaller batches.");
        }
        for (var i = 0; i < commands.Count; i++)
        {
            if (states[i].Product is { } recorded && recorded != commands[i].Product)
                return Invalid($"devices[{i}] ('{commands[i].DeviceId}') runs product '{recorded}', not '{commands[i].Product}'; " +
                               "register it under its own product or leave it out. Nothing was registered.");
        }
        var unchanged = commands.Where((c, i) => states[i].Product == c.Product && states[i].Tags.SequenceEqual(c.Tags)).Count();

        var answers = await ForEachAsync(commands, async c =>
        {
            try { return await region.ActorRef.Ask<object>(c, timeout, ct).ConfigureAwait(false); }
            catch (AskTimeoutException) { return null; }
        }).ConfigureAwait(false);
        var failed = commands.Select((c, i) => (c.DeviceId, Answer: answers[i])).Where(x => x.Answer is not DeviceCommandAccepted).ToList();
        if (failed.Count > 0)
        {
            var sample = string.Join("; ", failed.Take(5).Select(f => f.Answer is DeviceCommandRejected r ? $"{f.DeviceId}: {r.Message}" : $"{f.DeviceId}: no answer in {timeout}"));
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "batch_incomplete",
                $"{commands.Count - failed.Count} of {commands.Count} devices registered, {failed.Count} not ({sample}). " +
                "Registration is idempotent: send the same batch again.");
        }
        return AdminResults.Ok(new DeviceBatchRegistered(commands.Count, commands.Count - unchanged, unchanged));
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
