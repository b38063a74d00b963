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
        ["DeviceAgent/Orchestrator.DeviceAgent.csproj"] = ["ChunkStore.Format"],
        ["Cli/Orchestrator.Cli.csproj"] = ["Messages", "ChunkStore.Format"],
        ["Orchestrator/Orchestrator.Node.csproj"] = ["Messages", "ChunkStore", "DeviceActors", "FleetSimulator"],
        ["../tools/FleetSimulator/Orchestrator.FleetSimulator.csproj"] = ["DeviceAgent", "Messages"],
    };

    // What a device binary must never carry: cluster, database, LMDB and their transport and serializer packages.
    private static readonly string[] ForbiddenOnDevice = ["Akka", "Npgsql", "LightningDB", "lmdb", "DotNetty", "Google.Protobuf", "Newtonsoft"];

    [Fact]
    public void Every_project_references_only_what_the_architecture_allows()
    {
        var src = Path.Combine(ConfigurationKeyTests.RepositoryRoot(), "src");
        var tools = Path.Combine(ConfigurationKeyTests.RepositoryRoot(), "tools");
        var projects = Directory.GetFiles(src, "*.csproj", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(tools, "*.csproj", SearchOption.AllDirectories))
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

    [Fact]
    public void The_agent_output_folder_carries_no_cluster_database_or_lmdb_assembly()
    {
        // The agent is built with this test project (the node references the simulator, which references the agent),
        // in the same configuration; its own output folder is what a framework-dependent device install would ship.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
        var output = Path.Combine(ConfigurationKeyTests.RepositoryRoot(), "src", "DeviceAgent", "bin", configuration, "net10.0");
        Assert.True(File.Exists(Path.Combine(output, "orch-agent.dll")), $"the agent was not built to {output}");
        var files = Directory.GetFiles(output, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(output, f)).ToList();
        Assert.Contains("Orchestrator.ChunkStore.Format.dll", files);
        var forbidden = files.Where(f => ForbiddenOnDevice.Any(n => Path.GetFileName(f).Contains(n, StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.True(forbidden.Count == 0, $"the agent's output folder carries {string.Join(", ", forbidden)}");
        // The dependency manifest names every package the agent would load, shipped beside it or not.
        var deps = File.ReadAllText(Path.Combine(output, "orch-agent.deps.json"));
        var named = ForbiddenOnDevice.Where(n => deps.Contains('"' + n, StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(named.Count == 0, $"orch-agent.deps.json names {string.Join(", ", named)}");
    }
}
