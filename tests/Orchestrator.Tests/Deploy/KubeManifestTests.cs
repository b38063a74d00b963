using System.Collections;
using System.Reflection;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.Hosting;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Tests.Support;
using YamlDotNet.RepresentationModel;
using static Orchestrator.Node.Tests.Deploy.KubeManifests;

namespace Orchestrator.Node.Tests.Deploy;

/// <summary>
/// deploy/k8s checked against the real node: each replica's environment is bound into <see cref="NodeSettings"/>
/// and validated by the node's own validator; seeds, ports, probes, selectors and shutdown timing are cross-checked.
/// </summary>
public sealed class KubeManifestTests
{
    private const string StatefulSetName = "orch";
    private readonly KubeManifests _k8s = KubeManifests.Load();

    private YamlMappingNode Sts => _k8s.Get("StatefulSet", StatefulSetName);
    private int Replicas => int.Parse(Str(Sts, "spec", "replicas")!);
    private string HeadlessName => Str(Sts, "spec", "serviceName")!;

    /// <summary>What the node reads for pod <paramref name="ordinal"/>: appsettings.json, then its ORCH_ environment.</summary>
    private (NodeSettings Settings, IConfiguration Config) BindPod(int ordinal)
    {
        var env = _k8s.PodEnvironment(Sts, $"{StatefulSetName}-{ordinal}");
        var orch = env.Where(kv => kv.Key.StartsWith(NodeApp.EnvironmentPrefix, StringComparison.Ordinal))
            // Same mapping as AddEnvironmentVariables(prefix): strip the prefix, "__" separates sections.
            .ToDictionary(kv => kv.Key[NodeApp.EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal), kv => (string?)kv.Value);
        var config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(RepoRoot, "src", "Orchestrator", "appsettings.json"))
            .AddInMemoryCollection(orch)
            .Build();
        return (NodeSettings.Load(config), config);
    }

    [Fact]
    public void Every_manifest_parses_and_kustomization_lists_all_but_the_example_secret()
    {
        var files = Directory.GetFiles(Folder, "*.yaml").Select(Path.GetFileName).ToHashSet();
        var listed = Seq(_k8s.OfKind("Kustomization").Single(), "resources")
            .Select(n => ((YamlScalarNode)n).Value).ToHashSet();
        files.Remove("kustomization.yaml");
        files.Remove("secret.example.yaml");
        Assert.Equal(files.Order(), listed.Order());
        foreach (var (file, doc) in _k8s.Documents.Where(d => Str(d.Doc, "kind") != "Kustomization"))
        {
            Assert.False(string.IsNullOrEmpty(Str(doc, "apiVersion")), $"{file}: apiVersion missing");
            Assert.False(string.IsNullOrEmpty(Str(doc, "metadata", "name")), $"{file}: metadata.name missing");
        }
    }

    [Fact]
    public void Every_replica_environment_binds_into_valid_node_settings()
    {
        Assert.True(Replicas >= 3 && Replicas % 2 == 1, "keep-majority needs an odd member count of at least 3");
        for (var i = 0; i < Replicas; i++)
        {
            var (s, config) = BindPod(i);
            Assert.Equal($"{StatefulSetName}-{i}.{HeadlessName}", s.Node.Hostname);
            Assert.Equal("0.0.0.0", s.Node.BindHostname);
            Assert.Equal("postgresql", s.Database.Provider);
            Assert.Equal(NodeRoles.All.Order(), s.Node.Roles.Order());
            Assert.Equal("keep-majority", s.Node.SplitBrainStrategy);
            Assert.DoesNotContain(s.Admin.Tokens, t => t.Scopes.Count == 0);
            Assert.NotEmpty(s.Admin.Tokens); // otherwise every pod would bootstrap its own token file
            Assert.StartsWith("http://0.0.0.0:", config["Urls"]);
        }
    }

    [Fact]
    public void Every_ORCH_variable_names_a_setting_the_node_reads()
    {
        var sections = new Dictionary<string, Type>(StringComparer.OrdinalIgnoreCase)
        {
            [NodeOptions.Section] = typeof(NodeOptions),
            [DatabaseOptions.Section] = typeof(DatabaseOptions),
            [ChunkStoreOptions.Section] = typeof(ChunkStoreOptions),
            [GatewayOptions.Section] = typeof(GatewayOptions),
            [AdminOptions.Section] = typeof(AdminOptions),
            ["Throttle"] = typeof(DownloadThrottleOptions),
        };
        var env = _k8s.PodEnvironment(Sts, $"{StatefulSetName}-0");
        var orchKeys = env.Keys.Where(k => k.StartsWith(NodeApp.EnvironmentPrefix, StringComparison.Ordinal)).ToList();
        Assert.Contains("ORCH_Node__Discovery", orchKeys);
        Assert.DoesNotContain(orchKeys, k => k.StartsWith("ORCH_Node__SeedNodes", StringComparison.Ordinal));
        foreach (var key in orchKeys)
        {
            var parts = key[NodeApp.EnvironmentPrefix.Length..].Split("__");
            if (parts is ["Urls"] || parts is ["Logging", "LogLevel", _]) continue;
            Assert.True(sections.TryGetValue(parts[0], out var type), $"{key}: no configuration section '{parts[0]}' in the node");
            Assert.True(Resolves(type!, parts[1..]), $"{key}: {type!.Name} has no setting {string.Join(":", parts[1..])}");
        }
        // Non-ORCH variables are the ones the pod spec itself uses for expansion and the runtime's own settings.
        Assert.Equal(["POD_NAME", "POD_IP"], env.Keys.Where(k => !k.StartsWith(NodeApp.EnvironmentPrefix, StringComparison.Ordinal) && !k.StartsWith("DOTNET_", StringComparison.Ordinal)));
    }

    [Fact]
    public void The_runtime_settings_the_pods_get_are_documented_and_the_same_as_dotnet_runs()
    {
        var runtime = _k8s.PodEnvironment(Sts, $"{StatefulSetName}-0").Where(kv => kv.Key.StartsWith("DOTNET_", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Contains("DOTNET_GCgen0size", runtime.Keys);
        var runtimeSection = Hosting.ConfigurationKeyTests.DocumentedRuntimeSettings();
        foreach (var (name, value) in runtime)
            Assert.True(runtimeSection.Contains($"`{name}`", StringComparison.Ordinal) && runtimeSection.Contains(value, StringComparison.Ordinal),
                $"{name}={value} is set in deploy/k8s but docs/configuration.md's \"Runtime settings\" does not give it");
        // The launch profile of 'dotnet run' (the README's main job) sets the same runtime environment.
        using var launch = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoRoot, "src", "Orchestrator", "Properties", "launchSettings.json")));
        var profile = launch.RootElement.GetProperty("profiles").EnumerateObject().First().Value.GetProperty("environmentVariables");
        Assert.Equal(runtime.OrderBy(kv => kv.Key), profile.EnumerateObject().Where(p => p.Name.StartsWith("DOTNET_", StringComparison.Ordinal))
            .Select(p => KeyValuePair.Create(p.Name, p.Value.GetString()!)).OrderBy(kv => kv.Key));
    }

    private static bool Resolves(Type type, string[] path)
    {
        if (path.Length == 0) return IsScalar(type);
        if (type != typeof(string) && type.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IList<>)))
            return int.TryParse(path[0], out _) && Resolves(type.GetGenericArguments()[0], path[1..]);
        var prop = type.GetProperty(path[0], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        return prop is { CanWrite: true } && Resolves(prop.PropertyType, path[1..]);
    }

    private static bool IsScalar(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(TimeSpan) || t == typeof(decimal);
    }

    [Fact]
    public void Pods_form_the_cluster_through_kubernetes_api_discovery_of_their_own_label_and_http_port()
    {
        var podAddresses = Enumerable.Range(0, Replicas).Select(i => BindPod(i).Settings.Node)
            .Select(n => new Address("akka.tcp", n.ActorSystemName, n.Hostname, n.Port)).ToList();
        for (var i = 0; i < Replicas; i++)
        {
            var node = BindPod(i).Settings.Node;
            Assert.Equal("kubernetes-api", node.Discovery);
            Assert.Empty(node.SeedNodes);
            // All initial pods must answer before the lowest forms the cluster: no second cluster from a partial start.
            Assert.Equal(Replicas, node.DiscoveryContactPoints);
            // Discovery selects pods by app.kubernetes.io/name = service name and probes the named port: it must be the HTTP port.
            Assert.Equal(node.DiscoveryServiceName, Str(Sts, "spec", "template", "metadata", "labels", "app.kubernetes.io/name"));
            Assert.Equal(ContainerPort(NodeContainer(Sts), node.KubernetesPortName), ContainerPort(NodeContainer(Sts), "http"));
            // Discovery lists pods by IP (use-raw-ip): the contact point names the pod IP the same way.
            Assert.Equal($"192.0.2.{i + 10}", node.ContactPointHost);
        }
        Assert.Equal(Replicas, podAddresses.Distinct().Count());

        // RBAC: the pods' service account may list pods, nothing more.
        Assert.Equal("orch", Str(Sts, "spec", "template", "spec", "serviceAccountName"));
        _k8s.Get("ServiceAccount", "orch");
        var rule = Seq(_k8s.Get("Role", "orch-pod-reader"), "rules").Cast<YamlMappingNode>().Single();
        Assert.Equal(["pods"], Seq(rule, "resources").Select(n => ((YamlScalarNode)n).Value));
        Assert.Equal(["get", "list", "watch"], Seq(rule, "verbs").Select(n => ((YamlScalarNode)n).Value));
        var binding = _k8s.Get("RoleBinding", "orch-pod-reader");
        Assert.Equal("orch", Str(Seq(binding, "subjects").Cast<YamlMappingNode>().Single(), "name"));
        Assert.Equal("orch-pod-reader", Str(binding, "roleRef", "name"));

        var akkaPort = ContainerPort(NodeContainer(Sts), "akka");
        Assert.All(podAddresses, a => Assert.Equal(akkaPort, a.Port));
        var headless = _k8s.Get("Service", HeadlessName);
        Assert.Equal("None", Str(headless, "spec", "clusterIP"));
        Assert.Equal("true", Str(headless, "spec", "publishNotReadyAddresses"));
        var akkaServicePort = Seq(headless, "spec", "ports").Cast<YamlMappingNode>().Single(p => Str(p, "name") == "akka");
        Assert.Equal(akkaPort.ToString(), Str(akkaServicePort, "port"));
        AssertSelects(headless, "spec", "selector");
    }

    [Fact]
    public void Probes_and_gateway_service_target_the_node_http_port()
    {
        var (_, config) = BindPod(0);
        var container = NodeContainer(Sts);
        var httpPort = ContainerPort(container, "http");
        Assert.Equal(httpPort, new Uri(config["Urls"]!.Replace("0.0.0.0", "localhost", StringComparison.Ordinal)).Port);
        Assert.Equal("/health/live", Str(container, "livenessProbe", "httpGet", "path"));
        Assert.Equal("/health/ready", Str(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/health/live", Str(container, "startupProbe", "httpGet", "path"));
        foreach (var probe in new[] { "livenessProbe", "readinessProbe", "startupProbe" })
            Assert.Equal("http", Str(container, probe, "httpGet", "port"));

        var gateway = _k8s.Get("Service", "orch-gateway");
        var port = Seq(gateway, "spec", "ports").Cast<YamlMappingNode>().Single();
        Assert.Equal("http", Str(port, "targetPort"));
        Assert.Null(Str(gateway, "spec", "publishNotReadyAddresses")); // only Ready members get device traffic
        AssertSelects(gateway, "spec", "selector");
    }

    [Fact]
    public async Task Probe_paths_answer_on_a_real_node()
    {
        var container = NodeContainer(Sts);
        await using var node = await TestNode.StartAsync();
        foreach (var probe in new[] { "livenessProbe", "readinessProbe" })
        {
            var path = Str(container, probe, "httpGet", "path")!.TrimStart('/');
            using var res = await node.Http.GetAsync(path);
            Assert.True(res.StatusCode == HttpStatusCode.OK, $"{probe} {path}: {(int)res.StatusCode}");
        }
    }

    [Fact]
    public void Termination_grace_outlasts_coordinated_shutdown_and_the_host_stop()
    {
        var (s, _) = BindPod(0);
        // The node's actual cluster configuration (incl. sharding and the split-brain resolver) decides the phases.
        var config = ConfigurationFactory.ParseString(AkkaBootstrap.SplitBrainHocon(s.Node) + """
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            """).WithFallback(Akka.Cluster.Sharding.ClusterSharding.DefaultConfig());
        using var system = ActorSystem.Create("grace-check", config);
        var total = CoordinatedShutdown.Get(system).TotalTimeout;
        var grace = TimeSpan.FromSeconds(int.Parse(Str(Sts, "spec", "template", "spec", "terminationGracePeriodSeconds")!));
        Assert.True(grace > total, $"terminationGracePeriodSeconds {grace.TotalSeconds} s must exceed CoordinatedShutdown's {total.TotalSeconds} s");
        Assert.True(grace > new HostOptions().ShutdownTimeout, "grace must exceed the host's stop timeout too");
    }

    [Fact]
    public void Disruption_budget_resources_and_volumes_fit_the_node()
    {
        var pdb = _k8s.OfKind("PodDisruptionBudget").Single();
        Assert.Equal("1", Str(pdb, "spec", "maxUnavailable"));
        AssertSelects(pdb, "spec", "selector", "matchLabels");

        var (s, _) = BindPod(0);
        var container = NodeContainer(Sts);
        Assert.NotNull(Str(container, "resources", "requests", "cpu"));
        Assert.NotNull(Str(container, "resources", "requests", "memory"));
        var limit = Mebibytes(Str(container, "resources", "limits", "memory")!);
        Assert.True(limit * 1024 * 1024 > s.ChunkStore.CacheBytes * 3,
            $"memory limit {limit} Mi leaves too little beside the {s.ChunkStore.CacheBytes >> 20} Mi chunk cache");

        var mounts = Seq(container, "volumeMounts").Cast<YamlMappingNode>().ToDictionary(m => Str(m, "mountPath")!, m => Str(m, "name")!);
        Assert.True(mounts.ContainsKey(s.Node.DataDirectory), $"Node:DataDirectory {s.Node.DataDirectory} is not a mounted volume");
        Assert.True(mounts.ContainsKey(s.Node.StoreRoot), $"Node:StoreRoot {s.Node.StoreRoot} is not a mounted volume");
        // The store is shared by every node (publish writes it once): it must be the ReadWriteMany claim.
        var storeClaim = Str(Seq(Sts, "spec", "template", "spec", "volumes").Cast<YamlMappingNode>()
            .Single(v => Str(v, "name") == mounts[s.Node.StoreRoot]), "persistentVolumeClaim", "claimName")!;
        Assert.Equal("ReadWriteMany", Seq(_k8s.Get("PersistentVolumeClaim", storeClaim), "spec", "accessModes")
            .Cast<YamlScalarNode>().Single().Value);
    }

    private static long Mebibytes(string quantity) => quantity switch
    {
        _ when quantity.EndsWith("Gi", StringComparison.Ordinal) => long.Parse(quantity[..^2]) * 1024,
        _ when quantity.EndsWith("Mi", StringComparison.Ordinal) => long.Parse(quantity[..^2]),
        _ => throw new FormatException($"memory quantity '{quantity}': use Mi or Gi"),
    };

    /// <summary>The selector at <paramref name="path"/> matches the StatefulSet's pod labels.</summary>
    private void AssertSelects(YamlMappingNode doc, params string[] path)
    {
        var selector = Map(doc, path).ToList();
        Assert.NotEmpty(selector);
        var labels = Map(Sts, "spec", "template", "metadata", "labels").ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (k, v) in selector)
            Assert.True(labels.TryGetValue(k, out var l) && l == v, $"{Str(doc, "metadata", "name")}: selector {k}={v} matches no pod label");
    }
}
