namespace Orchestrator.Messages.Admin;

/// <summary>Body of <c>PUT /admin/v1/groups/{name}</c>: the group's members are devices matching every tag and attribute given, plus the listed ids.</summary>
/// <param name="Tags">Devices carrying every one of these tags.</param>
/// <param name="DeviceIds">Explicit members.</param>
/// <param name="Attributes">Devices having every one of these attributes (<c>key=value</c>).</param>
public sealed record DeviceGroupRequest(IReadOnlyList<string>? Tags, IReadOnlyList<string>? DeviceIds, IReadOnlyDictionary<string, string>? Attributes);

/// <summary>One group and the devices it matches now (by the rollout selector's rule, across products).</summary>
/// <param name="Name">Group name.</param>
/// <param name="Source"><c>saved</c> (admin API) or <c>configured</c> (node configuration, read-only).</param>
/// <param name="Tags">Tag condition.</param>
/// <param name="DeviceIds">Explicit members.</param>
/// <param name="Attributes">Attribute condition.</param>
/// <param name="SavedBy">Who saved it (saved groups).</param>
/// <param name="SavedAt">When it was saved (saved groups).</param>
/// <param name="Devices">Registered devices matching now.</param>
/// <param name="Sample">Up to 20 of them, by id.</param>
public sealed record DeviceGroupView(string Name, string Source, IReadOnlyList<string> Tags, IReadOnlyList<string> DeviceIds,
    IReadOnlyDictionary<string, string>? Attributes, string? SavedBy, DateTimeOffset? SavedAt, int Devices, IReadOnlyList<string> Sample);

/// <summary>Answer of <c>GET /admin/v1/groups</c>.</summary>
/// <param name="Groups">Configured groups first, then saved ones, each by name.</param>
public sealed record DeviceGroupList(IReadOnlyList<DeviceGroupView> Groups);

/// <summary>Body of <c>POST /admin/v1/devices/{id}/attributes</c>.</summary>
/// <param name="Set">Operator attributes to set (they override what the device reports for the same key).</param>
/// <param name="Remove">Operator attribute keys to remove.</param>
public sealed record DeviceAttributesRequest(IReadOnlyDictionary<string, string>? Set, IReadOnlyList<string>? Remove);
