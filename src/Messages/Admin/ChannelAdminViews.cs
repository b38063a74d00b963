using Orchestrator.Messages.Channels;

namespace Orchestrator.Messages.Admin;

/// <summary>Body of <c>POST /admin/v1/channels/{product}/{channel}</c>: point the channel at a published version.</summary>
/// <param name="Version">Version string as published (must be in the product's index.json).</param>
/// <param name="Operator">Who (default <c>operator</c>).</param>
/// <param name="Reason">Why (recorded in the channel's history).</param>
public sealed record ChannelSetRequest(string? Version, string? Operator, string? Reason);

/// <summary>Body of <c>POST /admin/v1/devices/{deviceId}/channel</c>: move a registered device to a channel.</summary>
/// <param name="Channel">Channel name (<c>stable</c> removes the channel tag).</param>
public sealed record DeviceChannelRequest(string? Channel);

/// <summary>Installed-version count of a channel's devices.</summary>
/// <param name="VersionId">Installed version ID (0: nothing).</param>
/// <param name="Devices">Devices running it.</param>
public sealed record ChannelVersionCount(long VersionId, int Devices);

/// <summary>Answer of <c>GET /admin/v1/channels/{product}/{channel}</c>: the channel and its devices (from the registry read model).</summary>
/// <param name="Channel">The channel as the directory holds it.</param>
/// <param name="Devices">Devices of the product in this channel.</param>
/// <param name="OnCurrent">Of those, devices whose installed version is the channel's current release.</param>
/// <param name="Versions">Installed versions of those devices, most common first.</param>
public sealed record ChannelDetailView(ChannelView Channel, int Devices, int OnCurrent, IReadOnlyList<ChannelVersionCount> Versions);
