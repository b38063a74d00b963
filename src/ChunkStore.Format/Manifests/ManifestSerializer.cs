using System.Globalization;
using System.Text.Json;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>
/// Canonical bytes of a <see cref="Manifest"/> and strict parsing back. <see cref="Parse"/> accepts only bytes
/// that re-serialize to themselves, so whatever a signature covers is exactly what the parsed model says.
/// </summary>
public static class ManifestSerializer
{
    /// <summary>Largest manifest accepted (64 MiB); bounds memory when reading an untrusted download.</summary>
    public const int MaxManifestBytes = 64 * 1024 * 1024;

    internal const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'";

    /// <summary>Validates <paramref name="manifest"/> (throws <see cref="InvalidInputException"/>) and returns its canonical UTF-8 bytes.</summary>
    public static byte[] Serialize(Manifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var problem = ManifestRules.Problem(manifest);
        if (problem is not null)
            throw new InvalidInputException($"Manifest {manifest.Product}/{manifest.Version} is invalid: {problem}.");
        return Write(manifest);
    }

    /// <summary>
    /// Parses and fully validates manifest bytes. Throws <see cref="InvalidInputException"/> naming the first
    /// problem (malformed JSON, missing or wrong-typed property, rule violation, non-canonical bytes).
    /// </summary>
    public static Manifest Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxManifestBytes)
            throw new InvalidInputException($"Manifest is {bytes.Length} bytes, more than the {MaxManifestBytes} byte limit.");
        Manifest manifest;
        var copy = bytes.ToArray();
        try
        {
            using var doc = JsonDocument.Parse(copy);
            manifest = Read(doc.RootElement);
        }
        catch (JsonException ex)
        {
            throw new InvalidInputException($"Manifest is not valid JSON: {ex.Message}", ex);
        }
        catch (FormatException ex)
        {
            throw new InvalidInputException($"Manifest is malformed: {ex.Message}", ex);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidInputException($"Manifest has a property of the wrong type: {ex.Message}", ex);
        }
        var problem = ManifestRules.Problem(manifest);
        if (problem is not null)
            throw new InvalidInputException($"Manifest is invalid: {problem}.");
        var check = CanonicalJsonWriter.Checking(copy);
        Write(manifest, check);
        if (!check.WroteExactly)
            throw new InvalidInputException("Manifest is not in canonical form (whitespace, property order, duplicate or extra properties, or escaping differ); manifests must be written by ManifestSerializer.");
        return manifest;
    }

    private static byte[] Write(Manifest m)
    {
        var w = new CanonicalJsonWriter();
        Write(m, w);
        return w.ToArray();
    }

    private static void Write(Manifest m, CanonicalJsonWriter w)
    {
        w.StartObject()
            .Property("schema", Manifest.Schema)
            .Property("product", m.Product)
            .Property("version", m.Version)
            .Property("versionId", m.VersionId)
            .Property("createdUtc", FormatTime(m.CreatedUtc))
            .Property("expiresUtc", FormatTime(m.ExpiresUtc))
            .Name("chunking").StartObject()
                .Property("min", m.Chunking.Min)
                .Property("avg", m.Chunking.Avg)
                .Property("max", m.Chunking.Max)
            .EndObject()
            .Property("inventoryDigest", m.InventoryDigest)
            .Name("files").StartArray();
        foreach (var f in m.Files)
        {
            w.StartObject()
                .Property("path", f.Path)
                .Property("mode", f.Mode)
                .Property("size", f.Size)
                .Property("sha256", f.Sha256)
                .Name("chunks").StartArray();
            foreach (var c in f.Chunks)
                w.StartObject().Property("id", c.Id.Hex).Property("length", c.Length).Property("tag", c.Tag).EndObject();
            w.EndArray().EndObject();
        }
        w.EndArray().Name("symlinks").StartArray();
        foreach (var s in m.Symlinks)
            w.StartObject().Property("path", s.Path).Property("target", s.Target).EndObject();
        w.EndArray().EndObject();
    }

    private static Manifest Read(JsonElement root)
    {
        var schema = Required(root, "schema").GetInt32();
        if (schema != Manifest.Schema)
            throw new FormatException($"schema {schema} is not supported (this build reads schema {Manifest.Schema})");
        var chunking = Required(root, "chunking");
        var files = Required(root, "files").EnumerateArray().Select(f => new ManifestFile(
            RequiredString(f, "path"),
            Required(f, "mode").GetInt32(),
            Required(f, "size").GetInt64(),
            RequiredString(f, "sha256"),
            Required(f, "chunks").EnumerateArray().Select(c => new ChunkRef(
                ParseChunkId(RequiredString(c, "id")),
                Required(c, "length").GetInt32(),
                RequiredString(c, "tag"))).ToList())).ToList();
        var symlinks = Required(root, "symlinks").EnumerateArray().Select(s => new ManifestSymlink(
            RequiredString(s, "path"), RequiredString(s, "target"))).ToList();
        return new Manifest(
            RequiredString(root, "product"),
            RequiredString(root, "version"),
            Required(root, "versionId").GetInt64(),
            ParseTime(RequiredString(root, "createdUtc"), "createdUtc"),
            ParseTime(RequiredString(root, "expiresUtc"), "expiresUtc"),
            new ChunkingOptions(Required(chunking, "min").GetInt32(), Required(chunking, "avg").GetInt32(), Required(chunking, "max").GetInt32()),
            RequiredString(root, "inventoryDigest"),
            files,
            symlinks);
    }

    private static ChunkId ParseChunkId(string text) =>
        ChunkId.TryParse(text, out var id) ? id : throw new FormatException($"chunk id '{text}' is not 64 lower-case hex characters");

    internal static JsonElement Required(JsonElement obj, string name)
    {
        if (obj.ValueKind != JsonValueKind.Object)
            throw new FormatException($"expected an object holding '{name}', found {obj.ValueKind}");
        if (!obj.TryGetProperty(name, out var value))
            throw new FormatException($"property '{name}' is missing");
        return value;
    }

    internal static string RequiredString(JsonElement obj, string name) =>
        Required(obj, name).GetString() ?? throw new FormatException($"property '{name}' is null");

    internal static string FormatTime(DateTimeOffset time) =>
        time.ToUniversalTime().ToString(TimeFormat, CultureInfo.InvariantCulture);

    internal static DateTimeOffset ParseTime(string text, string name) =>
        DateTimeOffset.TryParseExact(text, TimeFormat, CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new FormatException($"'{name}' value '{text}' is not a UTC time like 2025-01-02T03:04:05Z");
}

/// <summary>Every rule a manifest must satisfy besides its JSON shape (docs/store-format.md).</summary>
public static class ManifestRules
{
    /// <summary>Largest allowed file mode: 0o777 (no setuid, setgid or sticky bits).</summary>
    public const int MaxMode = 511;

    /// <summary>Returns null when <paramref name="m"/> satisfies every rule, else the first problem found.</summary>
    public static string? Problem(Manifest m)
    {
        if (!StoreNames.IsValidProduct(m.Product)) return $"product '{m.Product}' is not a valid product name";
        if (!StoreNames.IsValidVersion(m.Version)) return $"version '{m.Version}' is not a valid version string";
        if (m.VersionId < 1) return $"versionId {m.VersionId} must be >= 1";
        if (m.CreatedUtc.Offset != TimeSpan.Zero || m.ExpiresUtc.Offset != TimeSpan.Zero) return "times must be UTC";
        if (m.CreatedUtc.Ticks % TimeSpan.TicksPerSecond != 0 || m.ExpiresUtc.Ticks % TimeSpan.TicksPerSecond != 0)
            return "times must be whole seconds";
        if (m.ExpiresUtc <= m.CreatedUtc) return "expiresUtc must be later than createdUtc";
        if (m.Chunking is null) return "chunking is missing";
        var chunkProblem = m.Chunking.Problem();
        if (chunkProblem is not null) return $"chunking: {chunkProblem}";
        if (m.Files is null || m.Symlinks is null) return "files and symlinks must be present (possibly empty)";

        string? previous = null;
        foreach (var f in m.Files)
        {
            var pathProblem = TreePaths.ProblemWithPath(f.Path);
            if (pathProblem is not null) return $"file path '{f.Path}': {pathProblem}";
            if (previous is not null && string.CompareOrdinal(previous, f.Path) >= 0)
                return $"files must be sorted by ordinal path without duplicates ('{previous}' before '{f.Path}')";
            previous = f.Path;
            if (f.Mode is < 0 or > MaxMode) return $"file '{f.Path}': mode {f.Mode} is outside 0..{MaxMode} (0o777)";
            if (!IsSha256Hex(f.Sha256)) return $"file '{f.Path}': sha256 must be 64 lower-case hex characters";
            if (f.Chunks is null) return $"file '{f.Path}': chunks missing";
            long sum = 0;
            foreach (var c in f.Chunks)
            {
                if (c is null || c.Id.Hex is null) return $"file '{f.Path}': a chunk has no id";
                if (c.Length < 1 || c.Length > m.Chunking.Max)
                    return $"file '{f.Path}': chunk {c.Id} length {c.Length} is outside 1..{m.Chunking.Max}";
                if (!ChunkCodec.IsManifestTag(c.Tag))
                    return $"file '{f.Path}': chunk {c.Id} tag must be {ChunkCodec.ManifestTagLength * 2} lower-case hex characters";
                sum += c.Length;
            }
            if (f.Size < 0 || sum != f.Size) return $"file '{f.Path}': size {f.Size} differs from the sum of its chunk lengths ({sum})";
        }
        previous = null;
        foreach (var s in m.Symlinks)
        {
            var pathProblem = TreePaths.ProblemWithPath(s.Path);
            if (pathProblem is not null) return $"symlink path '{s.Path}': {pathProblem}";
            if (previous is not null && string.CompareOrdinal(previous, s.Path) >= 0)
                return $"symlinks must be sorted by ordinal path without duplicates ('{previous}' before '{s.Path}')";
            previous = s.Path;
            var targetProblem = TreePaths.ProblemWithSymlinkTarget(s.Path, s.Target);
            if (targetProblem is not null) return $"symlink '{s.Path}' -> '{s.Target}': {targetProblem}";
        }
        var all = m.Files.Select(f => f.Path).Concat(m.Symlinks.Select(s => s.Path)).ToList();
        all.Sort(string.CompareOrdinal);
        var setProblem = TreePaths.ProblemWithPathSet(all);
        if (setProblem is not null) return setProblem;
        var linkProblem = TreePaths.ProblemWithLinks(m.Files.Select(f => f.Path), m.Symlinks.Select(s => (s.Path, s.Target)).ToList(), requireTargets: false);
        if (linkProblem is not null) return linkProblem;
        if (!IsSha256Hex(m.InventoryDigest)) return "inventoryDigest must be 64 lower-case hex characters";
        if (m.InventoryDigest != InventoryDigest.Of(m.Files)) return "inventoryDigest does not match the files";
        return null;
    }

    /// <summary>True for 64 lower-case hex characters.</summary>
    public static bool IsSha256Hex(string? text) => ChunkId.IsValid(text);
}
