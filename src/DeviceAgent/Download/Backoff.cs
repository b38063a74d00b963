namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Capped exponential backoff with jitter: attempt n waits between half and all of min(cap, base * 2^n), so many
/// devices failing together spread out instead of retrying in lockstep, yet never retry immediately.
/// </summary>
public sealed class Backoff(TimeSpan baseDelay, TimeSpan cap, Random? random = null)
{
    private readonly Random _random = random ?? Random.Shared;

    /// <summary>Delay before retry number <paramref name="attempt"/> (0-based).</summary>
    public TimeSpan Delay(int attempt)
    {
        var exp = Math.Min(attempt, 30);
        var ceiling = Math.Min(cap.TotalMilliseconds, baseDelay.TotalMilliseconds * Math.Pow(2, exp));
        lock (_random)
            return TimeSpan.FromMilliseconds(ceiling / 2 + _random.NextDouble() * ceiling / 2);
    }
}
