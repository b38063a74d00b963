using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

/// <summary>
/// The rollout registry: a persistent actor run as a cluster singleton on role <c>rollouts</c> (see
/// <see cref="RolloutHosting"/>). It creates rollouts (selecting devices through the device registry read model,
/// which it runs as its child), rejects a rollout whose devices an active rollout already holds, and hosts every
/// <see cref="RolloutActor"/> as a child. A singleton rather than sharding: rollouts are few, each must stay alive
/// to drive its waves (sharding would need remember-entities for that), and conflict detection needs one
/// authority over which devices are claimed. It persists only the rollout ids; claims are rebuilt from the
/// children after a restart (creation waits until every child reported).
/// </summary>
public sealed class RolloutCoordinator : ReceivePersistentActor, IWithTimers
{
    /// <summary>Persistence id of the coordinator.</summary>
    public const string CoordinatorPersistenceId = "rollout-coordinator";

    private readonly IActorRef _devices;
    private readonly IActorRef _channels;
    private readonly Props _registryProps;
    private readonly RolloutSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly SortedSet<string> _ids = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _claims = new(StringComparer.Ordinal);
    private readonly HashSet<string> _awaiting = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RolloutSummary> _summaries = new(StringComparer.Ordinal);
    private IActorRef _registry = ActorRefs.Nobody;

    /// <summary>Props of the coordinator.</summary>
    /// <param name="devices">Device shard region or proxy.</param>
    /// <param name="registryProps">Props of the device registry read model (its child).</param>
    /// <param name="settings">Rollout tunables.</param>
    /// <param name="channels">Channel directory the rollouts report their status to; null: none.</param>
    public static Props Props(IActorRef devices, Props registryProps, RolloutSettings settings, IActorRef? channels = null) =>
        Akka.Actor.Props.Create(() => new RolloutCoordinator(devices, registryProps, settings, channels));

    /// <summary>Use <see cref="Props"/>.</summary>
    public RolloutCoordinator(IActorRef devices, Props registryProps, RolloutSettings settings, IActorRef? channels)
    {
        _channels = channels ?? ActorRefs.Nobody;
        _devices = devices;
        _registryProps = registryProps;
        _settings = settings;
        Recover<SnapshotOffer>(o => _ids.UnionWith(((RolloutCoordinatorSnapshot)o.Snapshot).RolloutIds));
        Recover<RolloutRegistered>(e => _ids.Add(e.RolloutId));
        Recover<RecoveryCompleted>(_ =>
        {
            _registry = Context.ActorOf(_registryProps, "device-registry");
            foreach (var id in _ids)
            {
                _awaiting.Add(id);
                StartChild(id);
            }
            if (_awaiting.Count == 0) Become(Ready);
            else
            {
                Timers.StartSingleTimer("recovering", RecoveryDeadline.Instance, TimeSpan.FromSeconds(30));
                Become(Recovering);
            }
        });
        Command<object>(_ => Stash.Stash());
    }

    /// <inheritdoc />
    public override string PersistenceId => CoordinatorPersistenceId;

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    private IActorRef StartChild(string id)
    {
        var child = Context.ActorOf(RolloutActor.Props(id, _devices, _registry, _settings, _channels), ChildName(id));
        Context.Watch(child);
        return child;
    }

    private static string ChildName(string id) => "rollout-" + id;

    private void Recovering()
    {
        Command<RolloutClaims>(c =>
        {
            Record(c);
            if (_awaiting.Remove(c.RolloutId) && _awaiting.Count == 0) ReadyNow();
        });
        Command<RolloutSummary>(s => _summaries[s.RolloutId] = s);
        Command<RecoveryDeadline>(_ =>
        {
            _log.Warning("Rollouts {0} did not recover within 30 s; accepting commands without their claims", string.Join(", ", _awaiting));
            ReadyNow();
        });
        Command<Terminated>(t => OnTerminated(t));
        Command<object>(_ => Stash.Stash());
    }

    private void ReadyNow()
    {
        _awaiting.Clear();
        Timers.Cancel("recovering");
        Stash.UnstashAll();
        Become(Ready);
    }

    // A crashed rollout actor (any exception, also Kill) is restarted in place and recovers from its journal; after
    // 10 crashes a minute it is stopped, and OnTerminated starts it again a second later.
    /// <inheritdoc />
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(10, TimeSpan.FromMinutes(1), _ => Directive.Restart);

    private void Record(RolloutClaims c)
    {
        // An actor reports no devices before its creation is persisted (the coordinator recorded the claims itself)
        // and after it finished (it sent ReleaseClaims): an empty report never removes claims.
        if (c.DeviceIds.Count == 0) return;
        foreach (var kv in _claims.Where(kv => kv.Value == c.RolloutId).ToList()) _claims.Remove(kv.Key);
        foreach (var d in c.DeviceIds) _claims.TryAdd(d, c.RolloutId);
    }

    private void Ready()
    {
        CommandAsync<CreateRollout>(Create);
        Command<ListRollouts>(List);
        Command<RolloutSummary>(s => _summaries[s.RolloutId] = s);
        Command<IRolloutCommand>(c =>
        {
            var child = Context.Child(ChildName(c.RolloutId));
            if (!_ids.Contains(c.RolloutId))
                Sender.Tell(new RolloutRejected(c.RolloutId, "not_found", "rolloutId",
                    $"Rollout '{c.RolloutId}' does not exist; list rollouts with GET /admin/v1/rollouts."));
            else if (child.IsNobody())
                // Between a journal failure stopping the actor and its restart a second later: it exists, it is just not back yet.
                Sender.Tell(new RolloutRejected(c.RolloutId, "unavailable", "",
                    $"Rollout '{c.RolloutId}' is restarting after a journal failure; try again in a few seconds."));
            else child.Forward(c);
        });
        Command<RolloutClaims>(Record);
        Command<ClaimDevices>(c =>
        {
            var granted = c.DeviceIds.Where(d => !_claims.ContainsKey(d)).ToList();
            foreach (var d in granted) _claims[d] = c.RolloutId;
            Sender.Tell(new DevicesClaimed(granted));
        });
        Command<ReleaseClaims>(c =>
        {
            foreach (var kv in _claims.Where(kv => kv.Value == c.RolloutId).ToList()) _claims.Remove(kv.Key);
        });
        Command<Terminated>(t => OnTerminated(t));
        Command<RestartChild>(r =>
        {
            if (Context.Child(ChildName(r.RolloutId)).IsNobody()) StartChild(r.RolloutId);
        });
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "Coordinator snapshot failed"));
    }

    // A child stops only when its journal failed (persistence stops the actor); start it again after a pause, it recovers.
    private void OnTerminated(Terminated t)
    {
        var id = t.ActorRef.Path.Name["rollout-".Length..];
        if (t.ActorRef.Path.Name.StartsWith("rollout-", StringComparison.Ordinal) && _ids.Contains(id))
            Timers.StartSingleTimer("restart-" + id, new RestartChild(id), TimeSpan.FromSeconds(1));
    }

    private async Task Create(CreateRollout c)
    {
        var replyTo = Sender;
        var spec = c.Spec;
        if (RolloutRules.Validate(spec) is { } bad)
        {
            replyTo.Tell(new RolloutRejected(spec.RolloutId, "invalid_request", bad.Field, bad.Message));
            return;
        }
        if (_ids.Contains(spec.RolloutId))
        {
            replyTo.Tell(new RolloutRejected(spec.RolloutId, "already_exists", "rolloutId", $"Rollout '{spec.RolloutId}' already exists; choose another id."));
            return;
        }
        DeviceList known;
        try
        {
            known = await RegistrySelection.AllAsync(_registry, new QueryDevices(null, null, null, null, _settings.RegistryQueryLimit), _settings.AskTimeout);
        }
        catch (RegistryLimitExceededException ex)
        {
            replyTo.Tell(new RolloutRejected(spec.RolloutId, "registry_limit", "", ex.Message));
            return;
        }
        catch (AskTimeoutException)
        {
            replyTo.Tell(new RolloutRejected(spec.RolloutId, "unavailable", "", "The device registry did not answer in time; nothing was created. Try again."));
            return;
        }
        // The admin endpoint already refused named devices that no credential or registration backs.
        var selected = RolloutSelection.Select(spec, known.Devices);
        if (selected.Count == 0)
        {
            replyTo.Tell(new RolloutRejected(spec.RolloutId, "invalid_request", "selector",
                $"The selector matches no device of product '{spec.Target.Product}' in channel '{spec.Channel}' (a rollout to nobody would never finish). " +
                "Check the tags and groups (orch device list --tag T), or register the devices first (orch device provision ID --product " +
                $"{spec.Target.Product} --tags a,b)."));
            return;
        }
        var conflicts = selected.Where(_claims.ContainsKey).ToList();
        if (conflicts.Count > 0)
        {
            var owners = conflicts.Select(d => _claims[d]).Distinct().Order(StringComparer.Ordinal);
            replyTo.Tell(new RolloutRejected(spec.RolloutId, "conflicting_rollout", "selector",
                $"{conflicts.Count} selected device(s) already belong to active rollout(s) {string.Join(", ", owners)} " +
                $"(e.g. {string.Join(", ", conflicts.Take(5))}). Narrow the selector, or wait for / abort that rollout first."));
            return;
        }
        Persist(new RolloutRegistered(spec.RolloutId, _settings.Clock.GetUtcNow()), e =>
        {
            _ids.Add(e.RolloutId);
            foreach (var d in selected) _claims[d] = e.RolloutId;
            StartChild(e.RolloutId).Tell(new StartRollout(spec, selected, replyTo));
            if (LastSequenceNr % 100 == 0) SaveSnapshot(new RolloutCoordinatorSnapshot(_ids.ToList()));
        });
    }

    // A rollout's last published summary stays listed while its actor restarts after a journal failure.
    private void List(ListRollouts q) =>
        Sender.Tell(new RolloutList(_ids.Select(id => _summaries.GetValueOrDefault(id)).OfType<RolloutSummary>()
            .Where(s => q.IncludeFinished || s.Status is RolloutStatus.Created or RolloutStatus.Running or RolloutStatus.Paused)
            .ToList()));

    private sealed record RestartChild(string RolloutId) : INoSerializationVerificationNeeded;

    private sealed class RecoveryDeadline : INoSerializationVerificationNeeded
    {
        public static readonly RecoveryDeadline Instance = new();
    }
}
