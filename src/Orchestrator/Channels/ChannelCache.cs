using System.Collections.Frozen;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Orchestrator.Messages.Channels;

namespace Orchestrator.Node.Channels;

/// <summary>
/// This node's copy of the channel directory, read on every check-in without a round trip. It is replaced by every
/// directory view the node receives: the ones the directory publishes after each change (distributed pub-sub, so
/// usually within milliseconds) and the one a <see cref="ChannelCacheSubscriber"/> asks for every
/// <see cref="ChannelSettings.RefreshInterval"/>. Pub-sub delivery is best effort, so the refresh is what bounds
/// staleness: a check-in sees a change at most one refresh interval (plus an ask) after it was persisted. A view with a
/// lower revision than the one held is ignored, so an old answer never replaces a newer publish.
/// </summary>
public sealed class ChannelCache
{
    private static readonly IReadOnlyList<ChannelTarget> NoChannels = [];
    private volatile Snapshot? _current;
    private IActorRef _directory = ActorRefs.Nobody;
    private TimeSpan _askTimeout = TimeSpan.FromSeconds(5);

    private sealed record Snapshot(ChannelDirectoryView View, FrozenDictionary<string, IReadOnlyList<ChannelTarget>> ByProduct);

    /// <summary>The directory view held now (null before the first one arrived).</summary>
    public ChannelDirectoryView? View => _current?.View;

    /// <summary>Connects the cache to the directory's singleton proxy (done by <see cref="ChannelHosting.Start"/> from <see cref="Rollouts.RolloutHosting.AddRollouts"/>).</summary>
    public void Attach(IActorRef directory, TimeSpan askTimeout)
    {
        _directory = directory;
        _askTimeout = askTimeout;
    }

    /// <summary>Takes <paramref name="view"/> unless the cache holds a newer revision.</summary>
    public void Offer(ChannelDirectoryView view)
    {
        while (true)
        {
            var held = _current;
            if (held is not null && held.View.Revision > view.Revision) return;
            var byProduct = view.Channels.GroupBy(c => c.Product, StringComparer.Ordinal).ToFrozenDictionary(
                g => g.Key,
                g => (IReadOnlyList<ChannelTarget>)g.Select(c => new ChannelTarget(c.Channel, c.Current, c.Rollouts.Select(h => h.RolloutId).ToList())).ToList(),
                StringComparer.Ordinal);
            if (Interlocked.CompareExchange(ref _current, new Snapshot(view, byProduct), held) == held) return;
        }
    }

    /// <summary>
    /// The channels of <paramref name="product"/> for a check-in. Before the first view arrived it asks the directory once;
    /// throws <see cref="ChannelsUnavailableException"/> when that fails, so no device is answered without its channel.
    /// </summary>
    public async ValueTask<IReadOnlyList<ChannelTarget>> ForProductAsync(string product, CancellationToken ct)
    {
        var snap = _current ?? await LoadAsync(ct).ConfigureAwait(false);
        return snap.ByProduct.GetValueOrDefault(product) ?? NoChannels;
    }

    /// <summary>Sends <paramref name="command"/> to the directory and returns its answer (throws <see cref="AskTimeoutException"/>).</summary>
    public Task<object> AskDirectoryAsync(object command, CancellationToken ct) => _directory.Ask<object>(command, _askTimeout, ct);

    /// <summary>Asks the directory for its view now and takes it (used before the first publish and by the admin API after a change).</summary>
    public async Task<ChannelDirectoryView> RefreshAsync(CancellationToken ct) => (await LoadAsync(ct).ConfigureAwait(false)).View;

    private async Task<Snapshot> LoadAsync(CancellationToken ct)
    {
        object answer;
        try
        {
            answer = await _directory.Ask<object>(new GetChannels(null), _askTimeout, ct).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            throw new ChannelsUnavailableException("The channel directory did not answer in time; retry after the Retry-After delay.");
        }
        if (answer is not ChannelDirectoryView view)
            throw new ChannelsUnavailableException($"The channel directory answered {answer.GetType().Name}; retry later.");
        Offer(view);
        return _current!;
    }
}

/// <summary>The channel directory could not be reached and this node holds no copy of it yet.</summary>
/// <param name="message">What happened and what to do.</param>
public sealed class ChannelsUnavailableException(string message) : Exception(message);

/// <summary>
/// Keeps a <see cref="ChannelCache"/> current: subscribes to <see cref="ChannelTopics.Changes"/> and asks the directory
/// for its whole view every <see cref="ChannelSettings.RefreshInterval"/> (the bound on staleness when a publish is lost).
/// </summary>
public sealed class ChannelCacheSubscriber : ReceiveActor, IWithTimers
{
    /// <summary>Props of the subscriber.</summary>
    public static Props Props(ChannelCache cache, IActorRef directory, ChannelSettings settings) =>
        Akka.Actor.Props.Create(() => new ChannelCacheSubscriber(cache, directory, settings));

    /// <summary>Use <see cref="Props"/>.</summary>
    public ChannelCacheSubscriber(ChannelCache cache, IActorRef directory, ChannelSettings settings)
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ChannelTopics.Changes, Self));
        Receive<SubscribeAck>(_ => { });
        Receive<ChannelDirectoryView>(cache.Offer);
        // A failed refresh is retried at the next interval; the cache keeps what it has meanwhile.
        Receive<Refresh>(_ => directory.Ask<object>(new GetChannels(null), settings.AskTimeout)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : RefreshFailed.Instance, TaskScheduler.Default).PipeTo(Self));
        Receive<RefreshFailed>(_ => { });
        Timers.StartPeriodicTimer("refresh", Refresh.Instance, TimeSpan.Zero, settings.RefreshInterval);
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Refresh : INoSerializationVerificationNeeded
    {
        public static readonly Refresh Instance = new();
    }

    private sealed class RefreshFailed : INoSerializationVerificationNeeded
    {
        public static readonly RefreshFailed Instance = new();
    }
}
