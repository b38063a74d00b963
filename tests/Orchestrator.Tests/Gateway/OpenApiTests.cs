using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>The node serves an OpenAPI description of its device and admin APIs that names every route it maps.</summary>
public sealed class OpenApiTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    [Fact]
    public async Task Every_device_store_and_admin_route_is_in_the_openapi_document()
    {
        using var response = await fixture.Node.Http.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var documented = doc.RootElement.GetProperty("paths").EnumerateObject()
            .SelectMany(p => p.Value.EnumerateObject().Select(m => $"{m.Name.ToUpperInvariant()} {p.Name}"))
            .ToHashSet(StringComparer.Ordinal);

        var mapped = fixture.Node.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText is { } raw && (raw.StartsWith("/v1/", StringComparison.Ordinal) || raw.StartsWith("/admin/v1", StringComparison.Ordinal)))
            .SelectMany(e => (e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? []).Select(m => $"{m} {Normalize(e.RoutePattern.RawText!)}"))
            .ToHashSet(StringComparer.Ordinal);

        Assert.True(mapped.Count > 30, $"only {mapped.Count} routes found: the test would prove nothing");
        var missing = mapped.Except(documented).Order().ToList();
        Assert.True(missing.Count == 0, "routes missing from /openapi/v1.json: " + string.Join(", ", missing));
    }

    // OpenAPI writes route parameters without constraints or catch-all markers ({**path} -> {path}, {id:int} -> {id})
    // and a group's empty route without its trailing slash.
    private static string Normalize(string pattern) =>
        System.Text.RegularExpressions.Regex.Replace(pattern, @"\{\*{0,2}([A-Za-z0-9_]+)[^}]*\}", "{$1}").TrimEnd('/');
}
