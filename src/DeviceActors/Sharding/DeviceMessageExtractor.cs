using Akka.Cluster.Sharding;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Sharding;

/// <summary>
/// Routes <see cref="IWithDeviceId"/> messages: entity id = device id, shard = MurmurHash of the id modulo a fixed
/// shard count (stable across processes and .NET versions, unlike string.GetHashCode). The shard count must be
/// the same on every node and never change while the cluster holds data placement.
/// </summary>
public sealed class DeviceMessageExtractor : HashCodeMessageExtractor
{
    /// <summary>Default number of shards (about 10x the largest expected number of device nodes).</summary>
    public const int DefaultShardCount = 100;

    /// <summary>Creates the extractor.</summary>
    /// <param name="shardCount">Fixed shard count.</param>
    public DeviceMessageExtractor(int shardCount = DefaultShardCount) : base(shardCount) { }

    /// <inheritdoc />
    public override string? EntityId(object message) => (message as IWithDeviceId)?.DeviceId;
}
