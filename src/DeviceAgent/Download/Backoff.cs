using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// One retry loop's <see cref="RetryBackoff"/>: its base and cap, and a jitter source shared safely by concurrent
/// downloads. Attempt n waits between half and all of min(cap, base * 2^n).
/// </summary>
public sealed class Backoff(TimeSpan baseDelay, TimeSpan cap, Random? random = null)
{
    private readonly Random _random = random ?? Random.Shared;

    /// <summary>Delay before retry number <paramref name="attempt"/> (0-based).</summary>
    public TimeSpan Delay(int attempt)
    {
        lock (_random)
            return RetryBackoff.Delay(Math.Min(attempt, 30) + 1, baseDelay, cap, _random);
    }
}
