using System.Collections.Immutable;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Registry;

/// <summary>
/// The registry's compact row of one device: what <see cref="DeviceSummary"/> and the <see cref="QueryDevices"/>
/// filters read, plus the few fields <see cref="DeviceStateMachine.Apply"/> reads to derive them (the current work, the
/// status to resume after Offline). Ids and numbers are stored inline; product, tag lists, assignments and work items
/// are the <see cref="RowValues"/>' shared instances, so a fleet on one release costs no string per device beyond its id.
/// What the idle fast path (<see cref="IdleCheckIn"/>) compares a check-in with is kept too: the agent version (shared),
/// a 64-bit hash of the inventory digest (a fleet's digests are the releases', but a device with extra files has its
/// own, so the string is not kept) and the request sequence mark. Progress and the last failure are the actor's
/// business and are not kept: the registry is a list, the actor is the record.
/// The registry folds events on its own thread while gateways read rows for the fast path: a row read during a fold
/// may mix the event's before and after values, which the fast path treats like the registry's lag (it only ever
/// answers "nothing to do", see <see cref="DeviceRowTable"/>).
/// The row also knows how far the fold is behind the device's actor: the sequence number of the last event folded, and
/// the highest one the actor marked as journaled (<see cref="IDeviceJournalMarks"/>). While the mark is above the fold
/// the row predates something the actor acknowledged, and the fast path leaves the device to the actor.
/// </summary>
internal sealed class DeviceRow(string deviceId)
{
    private const byte NoStatus = byte.MaxValue;
    private const byte StaleFlag = 1, UpdaterLostFlag = 2, DecommissionedFlag = 4;

    // Stand-ins for fields the row keeps only as a flag: Apply only ever replaces or clears them.
    private static readonly UpdaterLoss LostMarker = new(string.Empty, default);
    private static readonly DateTimeOffset DecommissionedMarker = DateTimeOffset.MinValue;

    private string? _product;
    private IReadOnlyList<string> _tags = [];
    private TargetAssignment? _target;
    private WorkItem? _work;
    private IReadOnlyDictionary<string, string>? _reportedAttributes;
    private IReadOnlyDictionary<string, string>? _operatorAttributes;
    private long _installedVersionId;
    private long _floorVersionId;
    private long _lastSeenUtcTicks = -1;
    private string? _agentVersion;
    private ulong _digestHash;
    private long _requestSequence;
    // Written by gateway threads: the highest sequence answered on this node (the actor never saw the fast path's
    // requests), and the device's latest contact known here (a check-in answered on this node, or a sighting carried
    // from another node).
    private long _fastSequence;
    private long _heardUtcTicks = -1;
    // The last sequence number folded (registry thread) and the highest one the device's actor journaled as far as this
    // node knows (actor threads and the journal-mark carry).
    private long _foldedSequenceNr;
    private long _journaledSequenceNr;
    private int _failedAttempts;
    private byte _status;
    private byte _statusBeforeOffline = NoStatus;
    private byte _flags;

    /// <summary>Device id (the same string instance as the registry's key).</summary>
    public string DeviceId { get; } = deviceId;

    /// <summary>The device was decommissioned; it leaves every fleet view.</summary>
    public bool Decommissioned => (_flags & DecommissionedFlag) != 0;

    /// <summary>Folds <paramref name="e"/> with the actors' own <see cref="DeviceStateMachine.Apply"/> and keeps the result's row fields.</summary>
    public void Apply(IDeviceEvent e, long sequenceNr, RowValues values)
    {
        Set(DeviceStateMachine.Apply(ToFoldState(), e, sequenceNr), values);
        // A credential rotation restarts the device's sequence numbers; what the fast path answered before is void.
        if (e is RequestSequenceReset) Volatile.Write(ref _fastSequence, 0);
        // Published after the fields: a reader that sees this number sees the state folded up to it (or later).
        Volatile.Write(ref _foldedSequenceNr, sequenceNr);
    }

    /// <summary>
    /// The device's actor journaled events up to <paramref name="sequenceNr"/>: until the fold reaches it, the row
    /// predates them (<see cref="Behind"/>). With <paramref name="sequenceReset"/> the fast path's sequence mark is void
    /// at once (the device's credential was rotated and it starts its sequences over).
    /// </summary>
    public void Journaled(long sequenceNr, bool sequenceReset)
    {
        Raise(ref _journaledSequenceNr, sequenceNr);
        if (sequenceReset) Volatile.Write(ref _fastSequence, 0);
    }

    /// <summary>The highest sequence number the device's actor is known here to have journaled; 0 when none.</summary>
    public long JournaledSequenceNr => Volatile.Read(ref _journaledSequenceNr);

    /// <summary>The fold lags an event the device's actor journaled (and may have acknowledged): the fast path must not answer.</summary>
    public bool Behind => Volatile.Read(ref _journaledSequenceNr) > Volatile.Read(ref _foldedSequenceNr);

    /// <summary>The highest request sequence answered on this node for this device, by the fast path or the actor.</summary>
    public long FastSequence => Volatile.Read(ref _fastSequence);

    /// <summary>
    /// The fast path's answer to <paramref name="c"/> (<see cref="IdleCheckIn.Answer"/> on this row's state), or null
    /// when the actor must decide. Offline detection sees the answers as sightings (<see cref="IDeviceSightings"/>), so
    /// the row answers however long ago the actor itself heard the device.
    /// </summary>
    public CheckInDecision? AnswerIdle(CheckIn c, TimeSpan lastSeenPersistInterval)
    {
        // Read before the fields: a fold at or above the mark here means the fields below hold at least that fold.
        if (Behind) return null;
        var state = ToFoldState(DigestHash(c.InventoryDigest) == _digestHash ? c.InventoryDigest : null, Math.Max(_requestSequence, FastSequence));
        return IdleCheckIn.Answer(state, c, lastSeenPersistInterval);
    }

    /// <summary>
    /// Claims <paramref name="c"/>'s sequence for a fast-path answer: false when this node already answered a request
    /// with that sequence or a higher one (a replay, or the same request twice at once: only one claim wins). On
    /// success the device counts as seen.
    /// </summary>
    public bool TryClaim(CheckIn c)
    {
        if (c.RequestSequence > 0 && !RaiseFastSequence(c.RequestSequence, mustRise: true)) return false;
        Raise(ref _heardUtcTicks, c.Timestamp.UtcTicks);
        return true;
    }

    /// <summary>
    /// Records that the device's actor answered its check-in <paramref name="sequence"/> at <paramref name="at"/>: it
    /// heard the device, and that sequence is used up here too (the actor may have kept its mark only in memory, so a
    /// replay of it must not be answered by the fast path).
    /// </summary>
    public void AnsweredByActor(DateTimeOffset at, long sequence)
    {
        Raise(ref _heardUtcTicks, at.UtcTicks);
        if (sequence > 0) RaiseFastSequence(sequence, mustRise: false);
    }

    /// <summary>Records a contact with the device at <paramref name="utcTicks"/> (a sighting carried from another node).</summary>
    public void Sighted(long utcTicks) => Raise(ref _heardUtcTicks, utcTicks);

    /// <summary>The device's latest contact known on this node without its actor's record; -1 when none.</summary>
    public long HeardUtcTicks => Volatile.Read(ref _heardUtcTicks);

    // Monotonic raise of the sequence mark; with mustRise, false when the mark is already at or above the value.
    private bool RaiseFastSequence(long value, bool mustRise)
    {
        while (true)
        {
            var seen = Volatile.Read(ref _fastSequence);
            if (seen >= value) return !mustRise;
            if (Interlocked.CompareExchange(ref _fastSequence, value, seen) == seen) return true;
        }
    }

    private static void Raise(ref long field, long value)
    {
        while (true)
        {
            var seen = Volatile.Read(ref field);
            if (seen >= value || Interlocked.CompareExchange(ref field, value, seen) == seen) return;
        }
    }

    /// <summary>Forgets the sequences the fast path answered (the device's credential was rotated on this node).</summary>
    public void ResetFastSequence() => Volatile.Write(ref _fastSequence, 0);

    /// <summary>True when every filter of <paramref name="q"/> that is set matches.</summary>
    public bool Matches(QueryDevices q) =>
        (q.Status is null || (DeviceStatus)_status == q.Status) &&
        (q.InstalledVersionId is null || _installedVersionId == q.InstalledVersionId) &&
        (q.Tag is null || _tags.Contains(q.Tag, StringComparer.Ordinal)) &&
        (q.RolloutId is null || _target?.RolloutId == q.RolloutId) &&
        (q.Attributes is null || DeviceAttributeRules.HasAll(_reportedAttributes, _operatorAttributes, q.Attributes));

    /// <summary>Status of the device.</summary>
    public DeviceStatus Status => (DeviceStatus)_status;

    /// <summary>The device was heard from, last before <paramref name="instant"/>.</summary>
    public bool SilentSince(DateTimeOffset instant) => SeenUtcTicks >= 0 && SeenUtcTicks < instant.UtcTicks;

    /// <summary>The row as the registry answers it.</summary>
    public DeviceSummary ToSummary() => new(DeviceId, (DeviceStatus)_status, _product, _installedVersionId, _tags, _target?.RolloutId,
        _target?.VersionId, _failedAttempts, SeenUtcTicks < 0 ? null : new DateTimeOffset(SeenUtcTicks, TimeSpan.Zero), (_flags & StaleFlag) != 0, _floorVersionId, (_flags & UpdaterLostFlag) != 0,
        _reportedAttributes is null && _operatorAttributes is null ? null : DeviceAttributeRules.Effective(_reportedAttributes, _operatorAttributes));

    // The persisted last-seen is what the fold reads; the views show the later of it and the fast path's answers.
    private DateTimeOffset? LastSeen => _lastSeenUtcTicks < 0 ? null : new DateTimeOffset(_lastSeenUtcTicks, TimeSpan.Zero);

    private long SeenUtcTicks => Math.Max(_lastSeenUtcTicks, Volatile.Read(ref _heardUtcTicks));

    // FNV-1a over the digest's characters: equal digests, equal hashes; a collision (2^-64) could only make the fast
    // path answer "nothing" where the actor would journal a new digest with the same answer.
    private static ulong DigestHash(string? digest)
    {
        if (digest is null) return 0;
        var h = 14695981039346656037UL;
        foreach (var ch in digest) h = (h ^ ch) * 1099511628211UL;
        return h == 0 ? 1 : h;
    }

    // The state Apply needs to derive the row's fields; the fields the row does not keep are empty, which Apply never
    // reads for them (it reads the current work, target, status, floor and attempt count). The fast path passes the
    // check-in's digest when it hashes to the row's, and its sequence mark, in the one state it builds per check-in.
    private DeviceState ToFoldState(string? inventoryDigest = null, long? lastRequestSequence = null) => new(DeviceId, (DeviceStatus)_status, _product, _tags,
        _installedVersionId, inventoryDigest, _agentVersion, _target, _work,
        null, _failedAttempts, null, _statusBeforeOffline == NoStatus ? null : (DeviceStatus)_statusBeforeOffline, LastSeen, 0, lastRequestSequence ?? _requestSequence,
        _floorVersionId, (_flags & StaleFlag) != 0, (_flags & UpdaterLostFlag) != 0 ? LostMarker : null,
        (_flags & DecommissionedFlag) != 0 ? DecommissionedMarker : null, _reportedAttributes, _operatorAttributes);

    private void Set(DeviceState s, RowValues values)
    {
        _status = (byte)s.Status;
        _statusBeforeOffline = s.StatusBeforeOffline is { } before ? (byte)before : NoStatus;
        _product = values.Intern(s.Product);
        if (!ReferenceEquals(s.Tags, _tags)) _tags = values.Intern(s.Tags);
        if (!ReferenceEquals(s.Target, _target)) _target = values.Intern(s.Target);
        if (!ReferenceEquals(s.Work, _work)) _work = values.Intern(s.Work);
        if (!ReferenceEquals(s.ReportedAttributes, _reportedAttributes)) _reportedAttributes = values.Intern(s.ReportedAttributes);
        if (!ReferenceEquals(s.OperatorAttributes, _operatorAttributes)) _operatorAttributes = values.Intern(s.OperatorAttributes);
        _installedVersionId = s.InstalledVersionId;
        _floorVersionId = s.FloorVersionId;
        Volatile.Write(ref _lastSeenUtcTicks, s.LastSeen is { } seen ? seen.UtcTicks : -1);
        _agentVersion = values.Intern(s.AgentVersion);
        // The fold state carries no digest (the row keeps only its hash): only an event that reports one sets it.
        if (s.InventoryDigest is not null) _digestHash = DigestHash(s.InventoryDigest);
        _requestSequence = s.LastRequestSequence;
        _failedAttempts = s.FailedAttempts;
        _flags = (byte)((s.Stale ? StaleFlag : 0) | (s.UpdaterLost is not null ? UpdaterLostFlag : 0) | (s.Decommissioned is not null ? DecommissionedFlag : 0));
    }
}

/// <summary>
/// One shared instance per distinct value of the registry's rows (products, tag lists, assignments, work items): a
/// fleet has few of each, and every event deserializes its own copies. Grows with the distinct values, never with devices.
/// </summary>
internal sealed class RowValues
{
    private readonly Dictionary<string, string> _strings = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<string>> _tagLists = new(StringComparer.Ordinal);
    private readonly Dictionary<TargetAssignment, TargetAssignment> _targets = [];
    private readonly Dictionary<(WorkKind, string, long, string), WorkItem> _work = [];
    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _attributeSets = new(StringComparer.Ordinal);

    /// <summary>The shared copy of <paramref name="s"/>.</summary>
    public string? Intern(string? s)
    {
        if (s is null) return null;
        if (_strings.TryGetValue(s, out var shared)) return shared;
        _strings[s] = s;
        return s;
    }

    /// <summary>The shared copy of a tag list (same tags, same order).</summary>
    public IReadOnlyList<string> Intern(IReadOnlyList<string> tags)
    {
        if (tags.Count == 0) return [];
        var key = string.Join('\n', tags); // tags never contain a line break (DeviceTagRules)
        if (_tagLists.TryGetValue(key, out var shared)) return shared;
        var copy = tags.Select(t => Intern(t)!).ToArray();
        _tagLists[key] = copy;
        return copy;
    }

    /// <summary>The shared copy of an attribute set (same keys and values; devices of one model or site report the same).</summary>
    public IReadOnlyDictionary<string, string>? Intern(IReadOnlyDictionary<string, string>? attributes)
    {
        if (attributes is null) return null;
        // Keys and values never contain the separators (DeviceAttributeRules: no control characters).
        var key = string.Join('\n', attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Key + "\u0001" + a.Value));
        if (_attributeSets.TryGetValue(key, out var shared)) return shared;
        var copy = attributes.ToImmutableSortedDictionary(a => Intern(a.Key)!, a => Intern(a.Value)!, StringComparer.Ordinal);
        _attributeSets[key] = copy;
        return copy;
    }

    /// <summary>The shared copy of an assignment (records compare by value).</summary>
    public TargetAssignment? Intern(TargetAssignment? t)
    {
        if (t is null) return null;
        if (_targets.TryGetValue(t, out var shared)) return shared;
        _targets[t] = t;
        return t;
    }

    /// <summary>The shared copy of a work item without repair files; a repair's file list is the device's own.</summary>
    public WorkItem? Intern(WorkItem? w)
    {
        if (w is null || w.RepairFiles.Count > 0) return w;
        // Keyed without the (empty) file list: records compare lists by reference, and every event brings its own.
        var key = (w.Kind, w.Version, w.VersionId, w.ManifestPath);
        if (_work.TryGetValue(key, out var shared)) return shared;
        _work[key] = w;
        return w;
    }
}
