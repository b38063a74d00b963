namespace Orchestrator.ChunkStore.Throttling;

/// <summary>Limits of "control the download size": per-device grants, the cluster's global egress budget and how gateways lease from them.</summary>
public sealed class DownloadThrottleOptions
{
    /// <summary>Bytes one device may download per <see cref="GrantWindow"/> (the grant's MaxBytes).</summary>
    public long DeviceMaxBytesPerWindow { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Length of one grant window; the grant expires at its end and the agent checks in again.</summary>
    public TimeSpan GrantWindow { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Sustained download rate of one device, bytes per second (the grant's BytesPerSecond).</summary>
    public long DeviceBytesPerSecond { get; set; } = 16L * 1024 * 1024;

    /// <summary>Burst a device may take at once, bytes.</summary>
    public long DeviceBurstBytes { get; set; } = 32L * 1024 * 1024;

    /// <summary>Egress of the whole cluster for chunk downloads (all gateways together), bytes per second.</summary>
    public long GlobalBytesPerSecond { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Burst of the whole cluster, bytes.</summary>
    public long GlobalBurstBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>
    /// How long a gateway may hold bytes it leased from a cluster-wide budget before it gives back what it did not
    /// spend. Longer means fewer round trips to the budget entities and more bytes parked at one gateway that another
    /// gateway of the same device cannot use.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A budget entity whose bucket is full again and whose window use has ended passivates after this long without a message.</summary>
    public TimeSpan BudgetIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Problems with the values, each naming the setting and the fix; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (DeviceMaxBytesPerWindow <= 0) yield return "Throttle:DeviceMaxBytesPerWindow must be > 0 (bytes a device may fetch per window).";
        if (GrantWindow <= TimeSpan.Zero) yield return "Throttle:GrantWindow must be a positive time span, e.g. 01:00:00.";
        if (DeviceBytesPerSecond <= 0) yield return "Throttle:DeviceBytesPerSecond must be > 0.";
        if (DeviceBurstBytes <= 0) yield return "Throttle:DeviceBurstBytes must be > 0.";
        if (GlobalBytesPerSecond <= 0) yield return "Throttle:GlobalBytesPerSecond must be > 0.";
        if (GlobalBurstBytes <= 0) yield return "Throttle:GlobalBurstBytes must be > 0.";
        if (LeaseDuration < TimeSpan.FromMilliseconds(50) || LeaseDuration > TimeSpan.FromSeconds(10))
            yield return $"Throttle:LeaseDuration ({LeaseDuration}) must be between 00:00:00.050 and 00:00:10, e.g. 00:00:00.500.";
        if (BudgetIdleTimeout < TimeSpan.FromSeconds(10) || BudgetIdleTimeout <= LeaseDuration * 4)
            yield return $"Throttle:BudgetIdleTimeout ({BudgetIdleTimeout}) must be at least 00:00:10 and more than 4 x Throttle:LeaseDuration, e.g. 00:02:00 " +
                "(an entity must outlive every lease it granted).";
    }

    /// <summary>
    /// Problems of limits that can never admit one object of <paramref name="largestObjectBytes"/> (the largest chunk or
    /// patch object the store can hold): a device would be paced forever. Each names the setting and the value to use.
    /// </summary>
    /// <param name="largestObjectBytes">Largest stored object a device may have to fetch in one request.</param>
    /// <param name="source">Where that size comes from, for the message.</param>
    public IEnumerable<string> ValidateAgainst(long largestObjectBytes, string source)
    {
        if (DeviceBurstBytes > 0 && DeviceBurstBytes < largestObjectBytes)
            yield return $"Throttle:DeviceBurstBytes ({DeviceBurstBytes}) is smaller than the largest object a device may fetch ({largestObjectBytes} bytes, {source}); " +
                $"no device could ever be sent such an object. Set Throttle:DeviceBurstBytes to at least {largestObjectBytes}.";
        if (GlobalBurstBytes > 0 && GlobalBurstBytes < largestObjectBytes)
            yield return $"Throttle:GlobalBurstBytes ({GlobalBurstBytes}) is smaller than the largest object a device may fetch ({largestObjectBytes} bytes, {source}). " +
                $"Set Throttle:GlobalBurstBytes to at least {largestObjectBytes}.";
        if (DeviceMaxBytesPerWindow > 0 && DeviceMaxBytesPerWindow < largestObjectBytes)
            yield return $"Throttle:DeviceMaxBytesPerWindow ({DeviceMaxBytesPerWindow}) is smaller than the largest object a device may fetch ({largestObjectBytes} bytes, {source}). " +
                $"Set Throttle:DeviceMaxBytesPerWindow to at least {largestObjectBytes}.";
    }
}
