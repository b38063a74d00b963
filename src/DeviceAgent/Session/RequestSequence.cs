using System.Globalization;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// Request sequence numbers of one device (protocol v2): strictly increasing, also across agent restarts, without
/// a flash write per request. A number is max(last + 1, Unix milliseconds now); before one at or above the persisted
/// ceiling is used, a new ceiling a day of milliseconds higher is written (atomically, fsynced), and a restarted agent
/// starts at the ceiling. So every number ever used is below the stored ceiling: a clock that jumps back cannot make
/// the agent repeat one, and a lost ceiling file is recovered by the clock. A sequence without a file is monotonic
/// within the process only (tests, the fleet simulator).
/// </summary>
public sealed class RequestSequence
{
    /// <summary>How far ahead a ceiling reserves: one day of milliseconds, so about one write per day or per start.</summary>
    public const long Reservation = 86_400_000;

    private readonly object _gate = new();
    private readonly string? _ceilingFile;
    private readonly TimeProvider _clock;
    private long _last;
    private long _ceiling;
    private bool _loaded;

    /// <summary>A process-wide in-memory sequence (every device of this process draws from it, so each device's numbers increase).</summary>
    public static RequestSequence Shared { get; } = new(null);

    /// <summary>Creates a sequence whose ceiling lives in <paramref name="ceilingFile"/> (null: in memory only).</summary>
    public RequestSequence(string? ceilingFile, TimeProvider? clock = null)
    {
        _ceilingFile = ceilingFile;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>The next number. Throws <see cref="IOException"/> when a new ceiling cannot be written (nothing is used then).</summary>
    public long Next()
    {
        lock (_gate)
        {
            var next = Covered();
            _last = next;
            return next;
        }
    }

    /// <summary>
    /// Writes the ceiling the next number needs now, without using a number, so the <see cref="Next"/> of the first
    /// request finds it written: a restarted agent always needs one, and its fsync then overlaps the work before that
    /// request instead of delaying it. Throws <see cref="IOException"/> like <see cref="Next"/>.
    /// </summary>
    public void Reserve()
    {
        lock (_gate) Covered();
    }

    /// <summary>
    /// Starts <see cref="Reserve"/> in the background; a failure is left to <see cref="Next"/>, which tries again and
    /// reports it on the request that needs the number.
    /// </summary>
    public void ReserveInBackground() => _ = Task.Run(() =>
    {
        try { Reserve(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    });

    // The next number, with a durable ceiling above it; the caller holds _gate.
    private long Covered()
    {
        if (!_loaded)
        {
            _ceiling = ReadCeiling();
            _last = Math.Max(0, _ceiling - 1);
            _loaded = true;
        }
        var next = Math.Max(_last + 1, _clock.GetUtcNow().ToUnixTimeMilliseconds());
        if (_ceilingFile is not null && next >= _ceiling)
        {
            var ceiling = next + Reservation;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_ceilingFile))!);
            AtomicFile.Write(_ceilingFile, System.Text.Encoding.ASCII.GetBytes(ceiling.ToString(CultureInfo.InvariantCulture) + "\n"));
            _ceiling = ceiling;
        }
        return next;
    }

    // A missing or unreadable ceiling is 0: the clock alone then keeps the numbers above what the server has seen.
    private long ReadCeiling()
    {
        if (_ceilingFile is null) return 0;
        try
        {
            return long.TryParse(File.ReadAllText(_ceilingFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var c) ? c : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }
}
