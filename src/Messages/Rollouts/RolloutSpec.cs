using System.Text.RegularExpressions;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Messages.Rollouts;

/// <summary>
/// A named set of devices: those matching its rule (every one of <paramref name="Tags"/> and of <paramref name="Attributes"/>,
/// when any is given), plus the listed <paramref name="DeviceIds"/>.
/// </summary>
/// <param name="Name">Group name (saved over the admin API, or configured on the node).</param>
/// <param name="Tags">Devices carrying every one of these tags (empty: no tag condition).</param>
/// <param name="DeviceIds">Explicit members.</param>
/// <param name="Attributes">Devices having every one of these attributes (null or empty: no attribute condition).</param>
public sealed record DeviceGroup(string Name, IReadOnlyList<string> Tags, IReadOnlyList<string> DeviceIds,
    IReadOnlyDictionary<string, string>? Attributes = null)
{
    /// <summary>True when a device with these facts is a member.</summary>
    public bool Matches(DeviceSummary d) => DeviceSelector.RuleMatches(Tags, Attributes, null, d) || DeviceIds.Contains(d.DeviceId, StringComparer.Ordinal);

    /// <summary>True when the group names no device at all.</summary>
    public bool NamesNothing() => Tags.Count == 0 && DeviceIds.Count == 0 && (Attributes?.Count ?? 0) == 0;
}

/// <summary>
/// Which devices a rollout covers: the union of the devices matching its rule, the explicit <paramref name="DeviceIds"/> and
/// the members of each group. The rule is a conjunction of the conditions given: every one of <paramref name="Tags"/>,
/// every one of <paramref name="Attributes"/>, and an installed version among <paramref name="InstalledVersionIds"/>; it
/// matches nothing when no condition is given. Devices of another product never match (the coordinator checks that).
/// </summary>
/// <param name="Tags">Devices carrying every one of these tags (empty: no tag condition).</param>
/// <param name="DeviceIds">Explicit devices.</param>
/// <param name="Groups">Groups, resolved to their definition when the rollout is created.</param>
/// <param name="Attributes">Devices having every one of these attributes (null or empty: no attribute condition).</param>
/// <param name="InstalledVersionIds">Devices running one of these version IDs (null or empty: any installed version).</param>
public sealed record DeviceSelector(IReadOnlyList<string> Tags, IReadOnlyList<string> DeviceIds, IReadOnlyList<DeviceGroup> Groups,
    IReadOnlyDictionary<string, string>? Attributes = null, IReadOnlyList<long>? InstalledVersionIds = null)
{
    /// <summary>True when the selector names nothing at all (a method, not a property, so it is not serialized).</summary>
    public bool NamesNothing() => !HasRule(Tags, Attributes, InstalledVersionIds) && DeviceIds.Count == 0 && Groups.All(g => g.NamesNothing());

    /// <summary>True when a device with these facts matches.</summary>
    /// <param name="d">The device as the registry knows it.</param>
    public bool Matches(DeviceSummary d) =>
        RuleMatches(Tags, Attributes, InstalledVersionIds, d)
        || DeviceIds.Contains(d.DeviceId, StringComparer.Ordinal)
        || Groups.Any(g => g.Matches(d));

    /// <summary>Every explicitly named device id (selector and groups).</summary>
    public IEnumerable<string> ExplicitIds() => DeviceIds.Concat(Groups.SelectMany(g => g.DeviceIds)).Distinct(StringComparer.Ordinal);

    private static bool HasRule(IReadOnlyList<string> tags, IReadOnlyDictionary<string, string>? attributes, IReadOnlyList<long>? installed) =>
        tags.Count > 0 || (attributes?.Count ?? 0) > 0 || (installed?.Count ?? 0) > 0;

    /// <summary>The conjunction rule shared by selectors and groups: false when no condition is given.</summary>
    internal static bool RuleMatches(IReadOnlyList<string> tags, IReadOnlyDictionary<string, string>? attributes, IReadOnlyList<long>? installed, DeviceSummary d) =>
        HasRule(tags, attributes, installed)
        && tags.All(t => d.Tags.Contains(t, StringComparer.Ordinal))
        && (attributes is null || Protocol.DeviceAttributeRules.HasAll(d.Attributes, attributes))
        && (installed is null or { Count: 0 } || installed.Contains(d.InstalledVersionId));
}

/// <summary>How a wave's size is given.</summary>
public enum WaveSizeKind
{
    /// <summary>A number of devices.</summary>
    Count,
    /// <summary>A percentage (0-100] of the devices selected at creation.</summary>
    Percent,
}

/// <summary>One wave of a rollout; the last wave always takes every remaining device (and late joiners).</summary>
/// <param name="Kind">Count or percent.</param>
/// <param name="Size">Device count, or percentage of the devices selected at creation.</param>
public sealed record WaveSpec(WaveSizeKind Kind, double Size);

/// <summary>A daily UTC window in which a rollout may assign new devices (it may wrap midnight).</summary>
/// <param name="StartMinuteUtc">Minute of the day (0-1439) the window opens.</param>
/// <param name="EndMinuteUtc">Minute of the day (0-1439) the window closes; equal to start is invalid.</param>
public sealed record MaintenanceWindow(int StartMinuteUtc, int EndMinuteUtc)
{
    /// <summary>True when <paramref name="at"/> falls inside the window.</summary>
    public bool Contains(DateTimeOffset at)
    {
        var m = (int)at.UtcDateTime.TimeOfDay.TotalMinutes;
        return StartMinuteUtc < EndMinuteUtc ? m >= StartMinuteUtc && m < EndMinuteUtc : m >= StartMinuteUtc || m < EndMinuteUtc;
    }
}

/// <summary>The release a rollout installs, as resolved from the store's release index.</summary>
/// <param name="Product">Product.</param>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Version ID.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
public sealed record RolloutTarget(string Product, string Version, long VersionId, string ManifestPath);

/// <summary>A published release of the product (for rollback to each device's previous version).</summary>
/// <param name="VersionId">Version ID.</param>
/// <param name="Version">Version string.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
public sealed record RollbackVersion(long VersionId, string Version, string ManifestPath);

/// <summary>Everything an operator decides when creating a rollout. Check with <see cref="RolloutRules.Validate"/>.</summary>
/// <param name="RolloutId">Rollout id (see <see cref="RolloutRules.IdPattern"/>).</param>
/// <param name="Target">Release to install.</param>
/// <param name="Selector">Devices covered.</param>
/// <param name="Waves">Waves in order (at least one).</param>
/// <param name="RandomizeOrder">Shuffle the devices (with <paramref name="Seed"/>) before cutting waves; otherwise ordered by id.</param>
/// <param name="Seed">Shuffle seed (recorded, so the plan is reproducible).</param>
/// <param name="MaxConcurrent">At most this many devices hold an unfinished assignment of this rollout at once.</param>
/// <param name="BandwidthBytesPerSecond">Bandwidth cap for the rollout's chunk downloads, cluster-wide, shared by its devices (0 = none); kept by the rollout's budget entity.</param>
/// <param name="SuccessThreshold">Fraction (0-1] of a wave that must succeed before the next wave starts.</param>
/// <param name="ErrorThreshold">Fraction [0-1) of a wave that may fail; more pauses the rollout with the reason recorded.</param>
/// <param name="SoakSeconds">Wait this long after a wave reached its success threshold before the next starts.</param>
/// <param name="MaxAttemptsPerDevice">
/// Optional cap: a device that failed this many attempts counts as failed and its assignment is cancelled. 0 (the default)
/// means no cap: a rollout never gives a device up, the device keeps retrying with its capped backoff until it succeeds.
/// </param>
/// <param name="StartAt">Do not assign anything before this time (null: immediately).</param>
/// <param name="Window">Assign new devices only inside this daily window (null: any time).</param>
/// <param name="CreatedBy">Operator who created it.</param>
/// <param name="DeviceTimeoutSeconds">
/// A device that has not installed the target this long after it was assigned counts as failed and its assignment is
/// cancelled, so a device that never comes back does not hold a concurrency slot forever (0 = wait indefinitely).
/// </param>
/// <param name="Channel">
/// The channel the rollout moves: it selects only that channel's devices, and on completion the channel's current
/// release becomes the target (default <c>stable</c>, also for rollouts created before channels existed).
/// </param>
/// <param name="FailingAfterAttempts">
/// A device still working on its assignment counts as <em>failing</em> once it failed this many attempts: failing devices
/// count against <paramref name="ErrorThreshold"/> (with failed ones) while they keep retrying.
/// </param>
public sealed record RolloutSpec(
    string RolloutId,
    RolloutTarget Target,
    DeviceSelector Selector,
    IReadOnlyList<WaveSpec> Waves,
    bool RandomizeOrder,
    int Seed,
    int MaxConcurrent,
    long BandwidthBytesPerSecond,
    double SuccessThreshold,
    double ErrorThreshold,
    int SoakSeconds,
    int MaxAttemptsPerDevice,
    DateTimeOffset? StartAt,
    MaintenanceWindow? Window,
    string CreatedBy,
    int DeviceTimeoutSeconds = 0,
    string Channel = Channels.ChannelRules.DefaultChannel,
    int FailingAfterAttempts = RolloutRules.DefaultFailingAfterAttempts);

/// <summary>A rule a rollout request broke: the JSON field and what to do about it.</summary>
/// <param name="Field">Field name as in the admin API body (e.g. <c>errorThreshold</c>).</param>
/// <param name="Message">What is wrong and how to fix it.</param>
public sealed record RolloutValidationError(string Field, string Message);

/// <summary>Validation of rollout ids and specs, shared by the admin API (before anything is sent) and the coordinator.</summary>
public static partial class RolloutRules
{
    /// <summary>Failed attempts after which a device counts as failing when the spec does not say.</summary>
    public const int DefaultFailingAfterAttempts = 3;

    /// <summary>Rollout id grammar.</summary>
    public const string IdPattern = "^[a-z0-9][a-z0-9-]{0,62}$";

    [GeneratedRegex(IdPattern, RegexOptions.CultureInvariant)]
    private static partial Regex IdRegex();

    /// <summary>True when <paramref name="id"/> matches <see cref="IdPattern"/>.</summary>
    public static bool IsValidId(string? id) => id is not null && IdRegex().IsMatch(id);

    /// <summary>The first broken rule of <paramref name="spec"/>, or null when it is valid.</summary>
    public static RolloutValidationError? Validate(RolloutSpec spec)
    {
        if (!IsValidId(spec.RolloutId))
            return new("rolloutId", $"Rollout id '{spec.RolloutId}' must match {IdPattern} (lower-case letters, digits, '-').");
        if (spec.Target.VersionId <= 0 || string.IsNullOrWhiteSpace(spec.Target.Version) || string.IsNullOrWhiteSpace(spec.Target.Product))
            return new("version", "The target needs a product and a published version.");
        if (spec.Selector.NamesNothing())
            return new("selector", "The selector is empty: give at least one of tags, deviceIds or groups, so the rollout knows which devices to update.");
        foreach (var id in spec.Selector.ExplicitIds())
            if (!DeviceIdRules.IsValid(id))
                return new("selector.deviceIds", $"Device id '{id}' is invalid: it must match {DeviceIdRules.Pattern}.");
        if (Protocol.DeviceAttributeRules.Problem("selector.attributes", spec.Selector.Attributes) is { } badAttributes)
            return new("selector.attributes", badAttributes);
        foreach (var g in spec.Selector.Groups)
            if (Protocol.DeviceAttributeRules.Problem($"group '{g.Name}' attributes", g.Attributes) is { } badGroup)
                return new("selector.groups", badGroup);
        if (spec.Selector.InstalledVersionIds?.Any(v => v < 0) == true)
            return new("selector.installedVersions", "Installed version IDs are 0 (nothing installed) or positive.");
        if (spec.Waves.Count is 0 or > 100)
            return new("waves", "Give between 1 and 100 waves, e.g. [{\"percent\":5},{\"percent\":25},{\"percent\":100}].");
        for (var i = 0; i < spec.Waves.Count; i++)
        {
            var w = spec.Waves[i];
            if (w.Kind == WaveSizeKind.Percent && w.Size is not (> 0 and <= 100))
                return new($"waves[{i}].percent", $"Wave {i + 1} is {w.Size}%: a percentage must be greater than 0 and at most 100.");
            if (w.Kind == WaveSizeKind.Count && (w.Size < 1 || w.Size != Math.Floor(w.Size)))
                return new($"waves[{i}].count", $"Wave {i + 1} has count {w.Size}: a count must be a whole number of at least 1.");
        }
        if (spec.MaxConcurrent < 1)
            return new("maxConcurrent", $"maxConcurrent is {spec.MaxConcurrent}: at least 1 device must be allowed to download at a time.");
        if (spec.BandwidthBytesPerSecond < 0)
            return new("bandwidthBytesPerSecond", "bandwidthBytesPerSecond must be 0 (no cap) or positive.");
        if (double.IsNaN(spec.SuccessThreshold) || spec.SuccessThreshold is <= 0 or > 1)
            return new("successThreshold", $"successThreshold is {spec.SuccessThreshold}: give a fraction greater than 0 and at most 1 (e.g. 0.95).");
        if (double.IsNaN(spec.ErrorThreshold) || spec.ErrorThreshold is < 0 or >= 1)
            return new("errorThreshold", $"errorThreshold is {spec.ErrorThreshold}: give a fraction from 0 (pause on the first failure) up to but below 1.");
        if (spec.SoakSeconds is < 0 or > 7 * 24 * 3600)
            return new("soakSeconds", "soakSeconds must be between 0 and 604800 (one week).");
        if (spec.MaxAttemptsPerDevice is < 0 or > 1000)
            return new("maxAttemptsPerDevice", $"maxAttemptsPerDevice is {spec.MaxAttemptsPerDevice}: give 0 or leave it out (never give a device up) or a cap between 1 and 1000.");
        if (spec.FailingAfterAttempts is < 1 or > 1000)
            return new("failingAfterAttempts", $"failingAfterAttempts is {spec.FailingAfterAttempts}: give the number of failed attempts (1 to 1000) after which a device counts as failing.");
        if (spec.DeviceTimeoutSeconds is < 0 or > 30 * 86_400)
            return new("deviceTimeoutSeconds", $"deviceTimeoutSeconds is {spec.DeviceTimeoutSeconds}: give 0 (wait indefinitely) or at most 2592000 (30 days).");
        if (spec.Window is { } win && (win.StartMinuteUtc is < 0 or > 1439 || win.EndMinuteUtc is < 0 or > 1439 || win.StartMinuteUtc == win.EndMinuteUtc))
            return new("maintenanceWindow", "maintenanceWindow needs distinct start and end times of day (HH:mm, UTC).");
        if (Channels.ChannelRules.Problem("channel", spec.Channel) is { } badChannel)
            return new("channel", badChannel);
        if (string.IsNullOrWhiteSpace(spec.CreatedBy))
            return new("operator", "operator must not be blank.");
        return null;
    }
}
