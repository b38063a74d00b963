using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Admin;

/// <summary>
/// Admin routes of the <c>cluster</c> and <c>sharding</c> palettes: membership from <c>Cluster.Get(system).State</c>,
/// Leave/Down, and shard placement from the shard regions (<see cref="GetShardRegionState"/>,
/// <see cref="GetClusterShardingStats"/>).
/// </summary>
public static class ClusterEndpoints
{
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Maps <c>/admin/v1/cluster...</c> and <c>/admin/v1/sharding/...</c>.</summary>
    public static void MapClusterAdmin(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1");
        g.MapGet("/cluster", Show);
        g.MapPost("/cluster/leave", (HttpContext ctx, ActorSystem system) => MemberActionAsync(ctx, system, "leave"));
        g.MapPost("/cluster/down", (HttpContext ctx, ActorSystem system) => MemberActionAsync(ctx, system, "down"));
        g.MapGet("/sharding/regions", RegionsAsync);
        g.MapGet("/sharding/stats", StatsAsync);
        g.MapGet("/sharding/locate/{deviceId}", LocateAsync);
    }

    /// <summary>The cluster as the answering node sees it.</summary>
    public static ClusterView Describe(ActorSystem system)
    {
        var cluster = Cluster.Get(system);
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        var members = state.Members
            .OrderBy(m => m.Address.ToString(), StringComparer.Ordinal)
            .Select(m => new ClusterMemberView(m.Address.ToString(), m.Status.ToString(), [.. m.Roles.OrderBy(r => r, StringComparer.Ordinal)],
                !unreachable.Contains(m.Address), m.Address.Equals(state.Leader), m.Address.Equals(cluster.SelfAddress)))
            .ToList();
        return new ClusterView(cluster.SelfAddress.ToString(), state.Leader?.ToString(), members, unreachable.Count);
    }

    private static IResult Show(HttpContext ctx, ActorSystem system) =>
        AdminEndpoints.Authorize(ctx, AdminScopes.Read) ?? AdminResults.Ok(Describe(system));

    private static async Task<IResult> MemberActionAsync(HttpContext ctx, ActorSystem system, string action)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        var (body, error) = await HttpProblems.ReadJsonAsync<ClusterMemberRequest>(ctx.Request, 4096, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        Address address;
        try { address = Address.Parse(body!.Address ?? ""); }
        catch (Exception ex) when (ex is UriFormatException or ArgumentException or FormatException)
        {
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_address",
                $"'{body!.Address}' is not a cluster member address; copy one from 'orch cluster show', e.g. akka.tcp://orchestrator@10.0.0.5:4053.");
        }
        var cluster = Cluster.Get(system);
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.Equals(address));
        if (member is null)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "member_not_found",
                $"{address} is not a member of this cluster; 'orch cluster show' lists the members.");
        if (action == "leave") cluster.Leave(address);
        else cluster.Down(address);
        return AdminResults.Ok(new ClusterMemberActionView(address.ToString(), action, member.Status.ToString()));
    }

    /// <summary>Sharding type names of the node and the local region (or proxy) of each.</summary>
    private static IEnumerable<(string TypeName, bool Hosted)> Types(ActorSystem system, IServiceProvider services)
    {
        var settings = services.GetRequiredService<Hosting.NodeSettings>();
        yield return (DeviceSharding.TypeName, settings.HasRole(Hosting.NodeRoles.Devices));
        yield return (ChunkShardMessageExtractor.TypeName, settings.HasRole(Hosting.NodeRoles.Chunks));
    }

    private static async Task<IResult> RegionsAsync(HttpContext ctx, ActorSystem system)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        var regions = new List<ShardRegionView>();
        foreach (var (type, hosted) in Types(system, ctx.RequestServices))
        {
            if (!hosted)
            {
                regions.Add(new ShardRegionView(type, false, []));
                continue;
            }
            var state = await ClusterSharding.Get(system).ShardRegion(type)
                .Ask<CurrentShardRegionState>(GetShardRegionState.Instance, QueryTimeout, ctx.RequestAborted).ConfigureAwait(false);
            regions.Add(new ShardRegionView(type, true,
                [.. state.Shards.OrderBy(s => s.ShardId, StringComparer.Ordinal).Select(s => new ShardView(s.ShardId, s.EntityIds.Count))]));
        }
        return AdminResults.Ok(new ShardRegionsView(Cluster.Get(system).SelfAddress.ToString(), regions));
    }

    private static async Task<ClusterShardingStats> ClusterStatsAsync(ActorSystem system, string type, CancellationToken ct)
    {
        var sharding = ClusterSharding.Get(system);
        var region = sharding.ShardTypeNames.Contains(type) ? sharding.ShardRegion(type) : sharding.ShardRegionProxy(type);
        return await region.Ask<ClusterShardingStats>(new GetClusterShardingStats(QueryTimeout), QueryTimeout + TimeSpan.FromSeconds(2), ct)
            .ConfigureAwait(false);
    }

    private static async Task<IResult> StatsAsync(HttpContext ctx, ActorSystem system)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        var types = new List<TypeShardingStatsView>();
        foreach (var (type, _) in Types(system, ctx.RequestServices))
        {
            ClusterShardingStats stats;
            try { stats = await ClusterStatsAsync(system, type, ctx.RequestAborted).ConfigureAwait(false); }
            catch (AskTimeoutException)
            {
                return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "sharding_unavailable",
                    $"The '{type}' shard coordinator did not answer within {QueryTimeout.TotalSeconds:0} s; check 'orch cluster show' for unreachable members.");
            }
            types.Add(new TypeShardingStatsView(type, [.. stats.Regions
                .OrderBy(r => r.Key.ToString(), StringComparer.Ordinal)
                .Select(r => new RegionStatsView(r.Key.ToString(), r.Value.Stats.Count, r.Value.Stats.Values.Sum(),
                    [.. (r.Value.Failed ?? (IEnumerable<string>)[]).OrderBy(f => f, StringComparer.Ordinal)]))]));
        }
        return AdminResults.Ok(new ShardingStatsView(types));
    }

    private static async Task<IResult> LocateAsync(string deviceId, HttpContext ctx, ActorSystem system)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (!DeviceIdRules.IsValid(deviceId))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_device_id", $"Device id '{deviceId}' is invalid: it must match {DeviceIdRules.Pattern}.");
        var shardId = new DeviceMessageExtractor().ShardId(deviceId, null);
        ClusterShardingStats stats;
        try { stats = await ClusterStatsAsync(system, DeviceSharding.TypeName, ctx.RequestAborted).ConfigureAwait(false); }
        catch (AskTimeoutException)
        {
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "sharding_unavailable", "The device shard coordinator did not answer; check 'orch cluster show'.");
        }
        var host = stats.Regions.FirstOrDefault(r => r.Value.Stats.ContainsKey(shardId)).Key;
        var alive = false;
        if (host is not null)
        {
            // The hosting node's region knows which entities of the shard are running.
            var path = new RootActorPath(host) / "system" / "sharding" / DeviceSharding.TypeName;
            try
            {
                var state = await system.ActorSelection(path).Ask<CurrentShardRegionState>(GetShardRegionState.Instance, QueryTimeout, ctx.RequestAborted)
                    .ConfigureAwait(false);
                alive = state.Shards.Any(s => s.ShardId == shardId && s.EntityIds.Contains(deviceId));
            }
            catch (AskTimeoutException)
            {
                return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "region_unavailable", $"The region on {host} did not answer.");
            }
        }
        return AdminResults.Ok(new ShardLocationView(deviceId, shardId, host?.ToString(), alive));
    }
}
