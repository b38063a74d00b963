using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Node.Auth;

/// <summary>
/// Connects this node's <see cref="DeviceCredentialStore"/> to the cluster: its revocations and rotations are published
/// on <see cref="CredentialTopics.Changes"/>, and every change published by any node (this one included) evicts the
/// device's cached key here. Started after the actor system, so the mediator exists.
/// </summary>
public sealed class CredentialChangeHosting(ActorSystem system, DeviceCredentialStore store, TimeProvider clock) : IHostedService
{
    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var mediator = DistributedPubSub.Get(system).Mediator;
        system.ActorOf(CredentialChangeSubscriber.Props(store), "credential-changes");
        store.AttachPublisher(deviceId =>
        {
            var change = new Publish(CredentialTopics.Changes, new DeviceCredentialChanged(deviceId, clock.GetUtcNow()));
            mediator.Tell(change);
            // The mediator delivers only to the subscribers its registry knows, and it learns another node's subscriber by
            // gossip, rounds after that node joined: a change published in between would be lost there, leaving the
            // revoked key valid on that node for the cache's whole TTL. An eviction is idempotent, so it is sent again
            // once the registries have had several gossip rounds to converge.
            foreach (var delay in Republish)
                system.Scheduler.ScheduleTellOnce(delay, mediator, change, ActorRefs.NoSender);
        });
        return Task.CompletedTask;
    }

    /// <summary>When a credential change is published again after the first time (see <see cref="StartAsync"/>).</summary>
    internal static readonly TimeSpan[] Republish = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(10)];

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Evicts the cached key of every device whose credential changed anywhere in the cluster.</summary>
public sealed class CredentialChangeSubscriber : ReceiveActor
{
    /// <summary>Props of the subscriber.</summary>
    public static Props Props(DeviceCredentialStore store) => Akka.Actor.Props.Create(() => new CredentialChangeSubscriber(store));

    /// <summary>Use <see cref="Props"/>.</summary>
    public CredentialChangeSubscriber(DeviceCredentialStore store)
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(CredentialTopics.Changes, Self));
        Receive<SubscribeAck>(_ => { });
        Receive<DeviceCredentialChanged>(c => store.Evict(c.DeviceId));
    }
}
