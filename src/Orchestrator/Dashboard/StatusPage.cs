using System.Net;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Dashboard;

/// <summary>Minimal status page at <c>/</c>: this node's roles and the cluster members. The full dashboard is a later issue.</summary>
public static class StatusPage
{
    /// <summary>Maps <c>GET /</c>.</summary>
    public static void MapStatusPage(this IEndpointRouteBuilder app) => app.MapGet("/", (ActorSystem system, NodeSettings settings) =>
    {
        var cluster = Cluster.Get(system);
        var sb = new StringBuilder();
        sb.Append("<!doctype html><html><head><meta charset=\"utf-8\"><title>Orchestrator node</title></head><body>");
        sb.Append("<h1>Orchestrator node</h1><p>Address: ").Append(WebUtility.HtmlEncode(cluster.SelfAddress.ToString()))
          .Append("<br>Roles: ").Append(WebUtility.HtmlEncode(string.Join(", ", settings.Node.Roles)))
          .Append("<br>Status: ").Append(cluster.SelfMember.Status).Append("</p>");
        sb.Append("<h2>Cluster members</h2><table><tr><th>Address</th><th>Status</th><th>Roles</th></tr>");
        foreach (var m in cluster.State.Members)
        {
            sb.Append("<tr><td>").Append(WebUtility.HtmlEncode(m.Address.ToString())).Append("</td><td>").Append(m.Status)
              .Append("</td><td>").Append(WebUtility.HtmlEncode(string.Join(", ", m.Roles))).Append("</td></tr>");
        }
        sb.Append("</table><p><a href=\"/health/ready\">readiness</a> · <a href=\"/metrics\">metrics</a></p></body></html>");
        return Results.Content(sb.ToString(), "text/html; charset=utf-8");
    });
}
