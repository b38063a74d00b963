using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

/// <summary>
/// Which devices a rollout takes at creation, from the registry's devices: those of the target product matching the
/// selector, plus explicitly named ones (they may not have checked in yet), never a known device of another channel
/// (a rollout moves one channel). The coordinator and the admin API's preview use this one rule.
/// </summary>
public static class RolloutSelection
{
    /// <summary>The selected device ids, each once.</summary>
    public static List<string> Select(RolloutSpec spec, IReadOnlyList<DeviceSummary> known)
    {
        var otherChannel = known.Where(d => ChannelRules.ChannelOf(d.Tags) != spec.Channel).Select(d => d.DeviceId).ToHashSet(StringComparer.Ordinal);
        return known
            .Where(d => d.Product == spec.Target.Product && spec.Selector.Matches(d)).Select(d => d.DeviceId)
            .Concat(spec.Selector.ExplicitIds())
            .Where(d => !otherChannel.Contains(d))
            .Distinct(StringComparer.Ordinal).ToList();
    }
}
