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
        ["CommandLine/Orchestrator.CommandLine.csproj"] = [],
        ["Messages/Orchestrator.Messages.csproj"] = ["ChunkStore.Format"],
        ["Messages.Serialization/Orchestrator.Messages.Serialization.csproj"] = ["Messages"],
        ["ChunkStore/Orchestrator.ChunkStore.csproj"] = ["Messages", "Messages.Serialization", "ChunkStore.Format"],
        ["DeviceActors/Orchestrator.DeviceActors.csproj"] = ["Messages", "Messages.Serialization"],
        ["DeviceAgent/Orchestrator.DeviceAgent.csproj"] = ["ChunkStore.Format", "CommandLine"],
        ["Cli/Orchestrator.Cli.csproj"] = ["Messages", "ChunkStore.Format", "CommandLine"],
        ["Orchestrator/Orchestrator.Node.csproj"] = ["Messages", "Messages.Serialization", "ChunkStore", "DeviceActors", "FleetSimulator", "CommandLine"],
        ["../tools/FleetSimulator/Orchestrator.FleetSimulator.csproj"] = ["DeviceAgent", "Messages", "CommandLine"],
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

    // Packages of the server side: cluster, persistence and database drivers.
    private static readonly string[] ServerPackages = ["Akka", "Npgsql", "LinqToDB", "Microsoft.Data.Sqlite", "LightningDB"];

    // Projects whose output runs on a device or an operator's machine, and the contracts library both sides share.
    private static readonly string[] ClientSide =
        ["DeviceAgent/Orchestrator.DeviceAgent.csproj", "Cli/Orchestrator.Cli.csproj", "Messages/Orchestrator.Messages.csproj", "ChunkStore.Format/Orchestrator.ChunkStore.Format.csproj",
         "CommandLine/Orchestrator.CommandLine.csproj"];

    [Theory]
    [MemberData(nameof(ClientSideProjects))]
    public void A_client_side_project_pulls_in_no_server_package_or_project_through_any_reference(string project)
    {
        var src = Path.Combine(ConfigurationKeyTests.RepositoryRoot(), "src");
        var closure = new SortedSet<string>(StringComparer.Ordinal);
        var packages = new SortedSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Path.GetFullPath(Path.Combine(src, project))]);
        while (pending.TryPop(out var path))
        {
            if (!closure.Add(path)) continue;
            var xml = XDocument.Load(path);
            foreach (var p in xml.Descendants("PackageReference")) packages.Add(p.Attribute("Include")!.Value);
            foreach (var r in xml.Descendants("ProjectReference"))
                pending.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, r.Attribute("Include")!.Value.Replace('\\', '/'))));
        }
        var server = packages.Where(p => ServerPackages.Any(n => p.StartsWith(n, StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.True(server.Count == 0, $"{project} pulls in {string.Join(", ", server)} (through {string.Join(", ", closure.Select(Path.GetFileName))})");
        var serverProjects = closure.Select(Path.GetFileNameWithoutExtension)
            .Where(n => n is "Orchestrator.Node" or "Orchestrator.DeviceActors" or "Orchestrator.ChunkStore" or "Orchestrator.Messages.Serialization").ToList();
        Assert.True(serverProjects.Count == 0, $"{project} references {string.Join(", ", serverProjects)}");
    }

    public static TheoryData<string> ClientSideProjects() => [.. ClientSide];

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
