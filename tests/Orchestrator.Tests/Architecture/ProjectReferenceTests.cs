using System.Xml.Linq;
using Orchestrator.Node.Tests.Hosting;

namespace Orchestrator.Node.Tests.Architecture;

/// <summary>The dependency rules of docs/architecture.md, checked against the project files.</summary>
public sealed class ProjectReferenceTests
{
    // Which of our projects each project may reference (docs/architecture.md, "Parts").
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["ChunkStore.Format/Orchestrator.ChunkStore.Format.csproj"] = [],
        ["Messages/Orchestrator.Messages.csproj"] = ["ChunkStore.Format"],
        ["ChunkStore/Orchestrator.ChunkStore.csproj"] = ["Messages", "ChunkStore.Format"],
        ["DeviceActors/Orchestrator.DeviceActors.csproj"] = ["Messages"],
        ["DeviceAgent/Orchestrator.DeviceAgent.csproj"] = ["Messages", "ChunkStore.Format"],
        ["Cli/Orchestrator.Cli.csproj"] = ["Messages", "ChunkStore.Format"],
        ["Orchestrator/Orchestrator.Node.csproj"] = ["Messages", "ChunkStore", "DeviceActors", "DeviceAgent"],
    };

    [Fact]
    public void Every_project_references_only_what_the_architecture_allows()
    {
        var src = Path.Combine(ConfigurationKeyTests.RepositoryRoot(), "src");
        var projects = Directory.GetFiles(src, "*.csproj", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(src, p).Replace('\\', '/')).Order().ToList();
        Assert.Equal(Allowed.Keys.Order(), projects);
        foreach (var (project, allowed) in Allowed)
        {
            var references = XDocument.Load(Path.Combine(src, project)).Descendants("ProjectReference")
                .Select(r => r.Attribute("Include")!.Value.Replace('\\', '/').Split('/')[^2])
                .ToList();
            var forbidden = references.Except(allowed).ToList();
            Assert.True(forbidden.Count == 0, $"{project} references {string.Join(", ", forbidden)}, which docs/architecture.md does not allow.");
        }
    }
}
