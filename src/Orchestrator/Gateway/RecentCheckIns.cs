namespace Orchestrator.Node.Gateway;

/// <summary>
/// When this gateway last answered each device's check-in, in a fixed-size table (<see cref="AdmissionOptions.RecentSlots"/>
/// slots of 8 bytes) whatever the fleet's size: a slot holds a tag of the device id's hash and the time, so two devices
/// that share a slot evict each other, and a lookup that finds the other device's tag knows nothing. Only authenticated
/// check-ins are recorded, so a request under another device's id cannot make that device look early.
/// </summary>
public sealed class RecentCheckIns
{
    // Per slot: the high 20 bits are a tag of the id's hash, the low 44 bits milliseconds since this table was made
    // (557 years) plus one, so an empty slot (0) never matches.
    private const int TagBits = 20;
    private const long TimeMask = (1L << (64 - TagBits)) - 1;
    private readonly long[] _slots;
    private readonly int _mask;
    private readonly long _origin = Environment.TickCount64;

    /// <summary>A table of <paramref name="slots"/> slots, rounded up to a power of two.</summary>
    public RecentCheckIns(int slots)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        var size = (int)Math.Min(1L << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)slots));
        _slots = new long[size];
        _mask = size - 1;
    }

    /// <summary>Records that <paramref name="deviceId"/>'s check-in was answered now.</summary>
    public void Answered(string deviceId)
    {
        var (slot, tag) = Locate(deviceId);
        Volatile.Write(ref _slots[slot], tag | (NowMs() + 1));
    }

    /// <summary>How long ago this gateway answered <paramref name="deviceId"/>'s last check-in; null when it does not know.</summary>
    public TimeSpan? SinceLastAnswer(string deviceId)
    {
        var (slot, tag) = Locate(deviceId);
        var value = Volatile.Read(ref _slots[slot]);
        if (value == 0 || (value & ~TimeMask) != tag) return null;
        return TimeSpan.FromMilliseconds(NowMs() - ((value & TimeMask) - 1));
    }

    // The coarse monotonic clock (a few ms of resolution) is enough for windows of seconds and is read without a
    // conversion: two reads per check-in.
    private long NowMs() => (Environment.TickCount64 - _origin) & TimeMask;

    private (int Slot, long Tag) Locate(string deviceId)
    {
        // FNV-1a over the id's chars: ids are short, and a collision only makes two devices share a slot.
        var hash = 14695981039346656037UL;
        foreach (var c in deviceId) hash = (hash ^ c) * 1099511628211UL;
        return ((int)(hash & (uint)_mask), (long)(hash >> (64 - TagBits)) << (64 - TagBits));
    }
}
