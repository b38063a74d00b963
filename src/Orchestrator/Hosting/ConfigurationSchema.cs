using System.Collections;
using System.Reflection;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.Node.Deltas;

namespace Orchestrator.Node.Hosting;

/// <summary>Shape of the <c>Rollouts</c> section: device groups a rollout selector may name.</summary>
public sealed class RolloutsOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Rollouts";

    /// <summary>Named groups (<c>Rollouts:Groups:&lt;name&gt;</c>); a device is a member when it carries every tag or is listed.</summary>
    public Dictionary<string, RolloutGroupOptions> Groups { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>One configured device group.</summary>
public sealed class RolloutGroupOptions
{
    /// <summary>Tags a member must all carry.</summary>
    public List<string> Tags { get; set; } = [];

    /// <summary>Devices that are members by id.</summary>
    public List<string> DeviceIds { get; set; } = [];
}

/// <summary>
/// Every configuration key the node reads, derived from the option classes it binds. A key under one of our sections
/// that no option class has is a typo the binder would silently ignore (<c>ORCH_Node__Prot</c>), so the node refuses it
/// and names the nearest valid key; docs/configuration.md documents exactly <see cref="DocumentedKeys"/>.
/// </summary>
public static class ConfigurationSchema
{
    /// <summary>Our sections and the option class each binds to.</summary>
    public static readonly IReadOnlyList<(string Section, Type Options)> Sections =
    [
        (NodeOptions.Section, typeof(NodeOptions)),
        (DatabaseOptions.Section, typeof(DatabaseOptions)),
        (ChunkStoreOptions.Section, typeof(ChunkStoreOptions)),
        (GatewayOptions.Section, typeof(GatewayOptions)),
        (AdminOptions.Section, typeof(AdminOptions)),
        ("Throttle", typeof(DownloadThrottleOptions)),
        (DeviceOptions.Section, typeof(DeviceOptions)),
        (DeltaOptions.Section, typeof(DeltaOptions)),
        (RolloutsOptions.Section, typeof(RolloutsOptions)),
        (Trust.TrustOptions.Section, typeof(Trust.TrustOptions)),
        (Auth.CredentialCacheOptions.Section, typeof(Auth.CredentialCacheOptions)),
        (Gateway.AdmissionOptions.Section, typeof(Gateway.AdmissionOptions)),
        (MemoryOptions.Section, typeof(MemoryOptions)),
    ];

    /// <summary>
    /// Top-level keys the node reads that belong to ASP.NET Core rather than to us; their inside is not checked here.
    /// </summary>
    public static readonly IReadOnlyList<string> HostKeys = ["Urls", "Logging", "Kestrel", "AllowedHosts", "Environment", "ContentRoot", "ApplicationName"];

    /// <summary>Every leaf key, with <c>&lt;n&gt;</c> for list positions and <c>&lt;name&gt;</c> for map keys (e.g. <c>Admin:Tokens:&lt;n&gt;:Sha256</c>).</summary>
    public static IEnumerable<string> DocumentedKeys() =>
        Sections.SelectMany(s => Leaves(s.Section, s.Options));

    /// <summary>
    /// Problems with the keys (not the values) of <paramref name="config"/>: keys under our sections that nothing binds,
    /// and <c>ORCH_</c> environment variables or command-line switches whose first segment is no key the node reads.
    /// </summary>
    /// <param name="config">The merged configuration.</param>
    /// <param name="environment">Environment variables (name, value); only those with the <c>ORCH_</c> prefix are checked.</param>
    /// <param name="switchKeys">Keys given as command-line switches (<c>--Node:Port=4054</c> gives <c>Node:Port</c>).</param>
    public static IEnumerable<string> Problems(IConfiguration config, IEnumerable<KeyValuePair<string, string?>> environment, IEnumerable<string> switchKeys)
    {
        foreach (var (section, type) in Sections)
            foreach (var p in Walk(config.GetSection(section), type, section))
                yield return p;
        var topLevel = Sections.Select(s => s.Section).Concat(HostKeys).ToList();
        foreach (var (name, _) in environment)
        {
            if (!name.StartsWith(NodeApp.EnvironmentPrefix, StringComparison.OrdinalIgnoreCase)) continue;
            var key = name[NodeApp.EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal);
            // Other tools share the prefix (ORCH_SERVER, ORCH_TOKEN of orch; test switches), so a flat name is only
            // refused when it is a near miss of a key the node reads.
            if (UnknownTopLevel(key, topLevel) is { } first && (key.Contains(':') || Suggest(first, topLevel).Length > 0))
                yield return $"Environment variable {name} sets '{key}', which the node does not read{Suggest(first, topLevel)} " +
                             "(sections are separated by '__', e.g. ORCH_Node__Port=4054).";
        }
        foreach (var key in switchKeys)
            if (UnknownTopLevel(key, topLevel) is { } first)
                yield return $"Command-line switch --{key} sets a key the node does not read{Suggest(first, topLevel)} (e.g. --Node:Port=4054).";
    }

    private static string? UnknownTopLevel(string key, IReadOnlyList<string> known)
    {
        var first = key.Split(':', 2)[0];
        return known.Contains(first, StringComparer.OrdinalIgnoreCase) ? null : first;
    }

    private static IEnumerable<string> Walk(IConfigurationSection section, Type type, string path)
    {
        foreach (var child in section.GetChildren())
        {
            var childPath = $"{path}:{child.Key}";
            if (ElementType(type) is { } element)
            {
                if (IsList(type) && !int.TryParse(child.Key, out _))
                    yield return $"{childPath} is not a list position; {path} is a list, set {path}:0, {path}:1, ...";
                else
                    foreach (var p in WalkValue(child, element, childPath)) yield return p;
                continue;
            }
            var property = Settable(type).FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                var suggestion = Suggest(child.Key, Settable(type).Select(p => p.Name).ToList(), path);
                yield return $"{childPath} is not a setting{(suggestion.Length > 0 ? suggestion : $"; the settings of {path} are listed in docs/configuration.md.")}";
                continue;
            }
            foreach (var p in WalkValue(child, property.PropertyType, childPath)) yield return p;
        }
    }

    private static IEnumerable<string> WalkValue(IConfigurationSection value, Type type, string path)
    {
        if (IsLeaf(type))
        {
            if (value.GetChildren().Any())
                yield return $"{path} is a single value, not a section; remove its sub-keys.";
            yield break;
        }
        foreach (var p in Walk(value, type, path)) yield return p;
    }

    private static IEnumerable<string> Leaves(string path, Type type)
    {
        if (IsLeaf(type)) { yield return path; yield break; }
        if (ElementType(type) is { } element)
        {
            foreach (var l in Leaves($"{path}:{(IsList(type) ? "<n>" : "<name>")}", element)) yield return l;
            yield break;
        }
        foreach (var p in Settable(type))
            foreach (var l in Leaves($"{path}:{p.Name}", p.PropertyType)) yield return l;
    }

    private static IEnumerable<PropertyInfo> Settable(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.SetMethod!.IsPublic);

    private static bool IsLeaf(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(TimeSpan)
               || t == typeof(DateTimeOffset) || t == typeof(DateTime) || t == typeof(Uri) || t == typeof(Guid);
    }

    private static bool IsList(Type type) =>
        type.IsArray || type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>);

    private static Type? ElementType(Type type)
    {
        if (type.IsArray) return type.GetElementType();
        if (!type.IsGenericType || !typeof(IEnumerable).IsAssignableFrom(type)) return null;
        var def = type.GetGenericTypeDefinition();
        if (def == typeof(List<>)) return type.GetGenericArguments()[0];
        if (def == typeof(Dictionary<,>)) return type.GetGenericArguments()[1];
        return null;
    }

    private static string Suggest(string given, IReadOnlyList<string> candidates, string? section = null)
    {
        var best = candidates
            .Select(c => (Name: c, Distance: EditDistance(given.ToLowerInvariant(), c.ToLowerInvariant())))
            .OrderBy(c => c.Distance)
            .FirstOrDefault();
        if (best.Name is null || best.Distance > Math.Max(2, given.Length / 3)) return "";
        return section is null ? $"; did you mean '{best.Name}'?" : $"; did you mean {section}:{best.Name}?";
    }

    /// <summary>Levenshtein distance, for "did you mean" suggestions.</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
