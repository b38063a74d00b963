using Akka.Actor;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Registry;

/// <summary>
/// Whole-fleet selections from the <see cref="DeviceRegistry"/> (rollout creation, late joiners, the fleet view, devices
/// running a release): the answer must hold every matching device or none, never a silently truncated prefix.
/// </summary>
public static class RegistrySelection
{
    /// <summary>Default of the node's <c>Devices:RegistryQueryLimit</c>: ten times the largest fleet measured on one node.</summary>
    public const int DefaultLimit = 1_000_000;

    /// <summary>
    /// Asks for every device matching the filters of <paramref name="query"/> (its limit is the cap) and throws
    /// <see cref="RegistryLimitExceededException"/> when more match than the cap allows.
    /// </summary>
    /// <param name="registry">The registry actor.</param>
    /// <param name="query">Filters and the cap (<see cref="QueryDevices.Limit"/>).</param>
    /// <param name="timeout">Ask timeout.</param>
    /// <param name="ct">Cancellation.</param>
    public static async Task<DeviceList> AllAsync(IActorRef registry, QueryDevices query, TimeSpan timeout, CancellationToken ct = default)
    {
        var list = await registry.Ask<DeviceList>(query, timeout, ct).ConfigureAwait(false);
        if (list.Total > list.Devices.Count) throw new RegistryLimitExceededException(list.Total, query.Limit);
        return list;
    }
}

/// <summary>More devices match a whole-fleet selection than the registry query limit allows.</summary>
/// <param name="matching">Devices that match.</param>
/// <param name="limit">The configured cap.</param>
public sealed class RegistryLimitExceededException(int matching, int limit) : Exception(
    $"{matching} devices match, more than the device registry query limit of {limit}; the selection would be truncated, so nothing was done. " +
    $"Raise Devices:RegistryQueryLimit (at most {QueryDevices.MaxLimit}).")
{
    /// <summary>Devices that match.</summary>
    public int Matching { get; } = matching;

    /// <summary>The configured cap.</summary>
    public int Limit { get; } = limit;
}
