namespace Orchestrator.Messages.Protocol;

/// <summary>
/// Capped exponential backoff with "equal jitter": half the delay is fixed, half random. The one formula of both
/// sides: the device actor's retry advice to a failed device and the agent's own retries of check-ins and downloads.
/// </summary>
public static class RetryBackoff
{
    /// <summary>
    /// Delay before retry number <paramref name="attempt"/> (1-based): min(cap, base * 2^(attempt-1)), then
    /// uniformly in [d/2, d] so a fleet that failed together does not retry together, yet never retries sooner than d/2.
    /// </summary>
    /// <param name="attempt">Failed-attempt count, at least 1.</param>
    /// <param name="baseDelay">Delay of the first retry.</param>
    /// <param name="cap">Largest delay.</param>
    /// <param name="random">Jitter source.</param>
    public static TimeSpan Delay(int attempt, TimeSpan baseDelay, TimeSpan cap, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        // 2^30 * base exceeds any sane cap already; clamping the exponent avoids overflow for devices that fail for weeks.
        var exponent = Math.Min(attempt - 1, 30);
        var raw = baseDelay.TotalMilliseconds * Math.Pow(2, exponent);
        var capped = Math.Min(raw, cap.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped / 2 + random.NextDouble() * capped / 2);
    }
}
