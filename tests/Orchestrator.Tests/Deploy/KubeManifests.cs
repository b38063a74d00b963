using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Orchestrator.Node.Tests.Deploy;

/// <summary>
/// The YAML documents of deploy/k8s, parsed with YamlDotNet and indexed by kind and name, plus the pod
/// environment a replica of the StatefulSet would really get (ConfigMap + Secret + container env, with
/// <c>$(VAR)</c> references and <c>metadata.name</c> field refs resolved the way the kubelet does).
/// </summary>
public sealed partial class KubeManifests
{
    public static readonly string RepoRoot = Hosting.ConfigurationKeyTests.RepositoryRoot();
    public static readonly string Folder = Path.Combine(RepoRoot, "deploy", "k8s");

    /// <summary>Every document, with the file it came from.</summary>
    public IReadOnlyList<(string File, YamlMappingNode Doc)> Documents { get; }

    private KubeManifests(IReadOnlyList<(string, YamlMappingNode)> docs) => Documents = docs;

    public static KubeManifests Load()
    {
        var docs = new List<(string, YamlMappingNode)>();
        foreach (var file in Directory.GetFiles(Folder, "*.yaml").Order(StringComparer.Ordinal))
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(file)) stream.Load(reader);
            foreach (var d in stream.Documents)
            {
                Assert.True(d.RootNode is YamlMappingNode, $"{file}: a document is not a mapping");
                docs.Add((Path.GetFileName(file), (YamlMappingNode)d.RootNode));
            }
        }
        return new KubeManifests(docs);
    }

    public YamlMappingNode Get(string kind, string name)
    {
        var hits = Documents.Where(d => Str(d.Doc, "kind") == kind && Str(d.Doc, "metadata", "name") == name).ToList();
        Assert.True(hits.Count == 1, $"expected exactly one {kind} named {name} in deploy/k8s, found {hits.Count}");
        return hits[0].Doc;
    }

    public IEnumerable<YamlMappingNode> OfKind(string kind) => Documents.Where(d => Str(d.Doc, "kind") == kind).Select(d => d.Doc);

    /// <summary>The node container of the StatefulSet (the one exposing the akka port).</summary>
    public static YamlMappingNode NodeContainer(YamlMappingNode statefulSet) =>
        Seq(statefulSet, "spec", "template", "spec", "containers").Cast<YamlMappingNode>().Single(c => Seq(c, "ports").Cast<YamlMappingNode>().Any(p => Str(p, "name") == "akka"));

    /// <summary>Container port number by name.</summary>
    public static int ContainerPort(YamlMappingNode container, string name) =>
        int.Parse(Str(Seq(container, "ports").Cast<YamlMappingNode>().Single(p => Str(p, "name") == name), "containerPort")!);

    /// <summary>The environment of pod <paramref name="podName"/>, as the kubelet builds it (envFrom, then env).</summary>
    public Dictionary<string, string> PodEnvironment(YamlMappingNode statefulSet, string podName)
    {
        var container = NodeContainer(statefulSet);
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var from in Seq(container, "envFrom").Cast<YamlMappingNode>())
        {
            if (Node(from, "configMapRef") is YamlMappingNode cm)
                foreach (var (k, v) in Map(Get("ConfigMap", Str(cm, "name")!), "data")) env[k] = v;
            else if (Node(from, "secretRef") is YamlMappingNode sr)
            {
                var secret = Get("Secret", Str(sr, "name")!);
                foreach (var (k, v) in Map(secret, "stringData")) env[k] = v;
                foreach (var (k, v) in Map(secret, "data")) env[k] = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(v));
            }
            else Assert.Fail("envFrom entry is neither configMapRef nor secretRef");
        }
        foreach (var e in Seq(container, "env").Cast<YamlMappingNode>())
        {
            var name = Str(e, "name")!;
            if (Str(e, "valueFrom", "fieldRef", "fieldPath") is { } field)
            {
                // The only field refs the manifests use; a pod IP stands in as a documentation address per ordinal.
                Assert.Contains(field, new[] { "metadata.name", "status.podIP" });
                env[name] = field == "metadata.name" ? podName : $"192.0.2.{int.Parse(podName[(podName.LastIndexOf('-') + 1)..]) + 10}";
            }
            else
            {
                // $(VAR) expands to variables defined earlier in the list or from envFrom, as the kubelet does.
                env[name] = VarRef().Replace(Str(e, "value") ?? "", m => env.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);
            }
        }
        return env;
    }

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex VarRef();

    public static YamlNode? Node(YamlNode? n, params string[] path)
    {
        foreach (var p in path)
        {
            if (n is not YamlMappingNode m || !m.Children.TryGetValue(new YamlScalarNode(p), out n)) return null;
        }
        return n;
    }

    public static string? Str(YamlNode? n, params string[] path) => (Node(n, path) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Seq(YamlNode? n, params string[] path) =>
        Node(n, path) is YamlSequenceNode s ? s.Children : [];

    public static IEnumerable<(string Key, string Value)> Map(YamlNode? n, params string[] path) =>
        Node(n, path) is YamlMappingNode m
            ? m.Children.Select(kv => (((YamlScalarNode)kv.Key).Value!, ((YamlScalarNode)kv.Value).Value ?? ""))
            : [];
}
