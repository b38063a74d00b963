using Akka.Actor;
using Akka.Cluster;
using Orchestrator.Messages.Admin;
using Orchestrator.Node.Auth;

namespace Orchestrator.Node.Admin;

/// <summary><c>GET /admin/v1/palettes</c>: the palettes this node serves, so <c>orch</c>'s interactive help and tab completion follow the server.</summary>
public static class PaletteEndpoints
{
    /// <summary>Maps the route.</summary>
    public static void MapPaletteAdmin(this IEndpointRouteBuilder app) =>
        app.MapGet("/admin/v1/palettes", (HttpContext ctx, ActorSystem system) =>
            AdminEndpoints.Authorize(ctx, AdminScopes.Read)
            ?? AdminResults.Ok(new PaletteCatalogView(Cluster.Get(system).SelfAddress.ToString(), PaletteCatalog.All)));
}
