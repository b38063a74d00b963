using System.Text.Json;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>
/// Canonical bytes of a <see cref="DeltaManifest"/> and strict parsing back, with the same rules as release
/// manifests: parse accepts only bytes that re-serialize to themselves, so a verified signature covers exactly
/// what the parsed model says.
/// </summary>
public static class DeltaManifestSerializer
{
    /// <summary>Largest delta manifest accepted (16 MiB).</summary>
    public const int MaxBytes = 16 * 1024 * 1024;

    /// <summary>Validates and returns the canonical UTF-8 bytes; throws <see cref="InvalidInputException"/>.</summary>
    public static byte[] Serialize(DeltaManifest delta)
    {
        ArgumentNullException.ThrowIfNull(delta);
        var problem = Problem(delta);
        if (problem is not null)
            throw new InvalidInputException($"Delta manifest {delta.Product} {delta.From?.Version} -> {delta.To?.Version} is invalid: {problem}.");
        return Write(delta);
    }

    /// <summary>Parses and validates; throws <see cref="InvalidInputException"/> naming the first problem.</summary>
    public static DeltaManifest Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxBytes)
            throw new InvalidInputException($"Delta manifest is {bytes.Length} bytes, more than the {MaxBytes} byte limit.");
        DeltaManifest delta;
        try
        {
            using var doc = JsonDocument.Parse(bytes.ToArray());
            delta = Read(doc.RootElement);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidInputException($"Delta manifest is malformed: {ex.Message}", ex);
        }
        var problem = Problem(delta);
        if (problem is not null) throw new InvalidInputException($"Delta manifest is invalid: {problem}.");
        if (!bytes.SequenceEqual(Write(delta)))
            throw new InvalidInputException("Delta manifest is not in canonical form; delta manifests must be written by DeltaManifestSerializer.");
        return delta;
    }

    /// <summary>Verifies the Ed25519 signature over the exact bytes, then parses. Throws <see cref="IntegrityException"/> for a bad signature.</summary>
    public static DeltaManifest VerifyAndParse(ReadOnlySpan<byte> bytes, ReadOnlySpan<byte> signature, ReleasePublicKey key)
    {
        if (!ManifestSigner.Verify(bytes, signature, key))
            throw new IntegrityException("Delta manifest signature does not verify with the release public key (tampered delta manifest, wrong key, or wrong .sig file).");
        return Parse(bytes);
    }

    /// <summary>Null when <paramref name="d"/> satisfies every rule, else the first problem.</summary>
    public static string? Problem(DeltaManifest d)
    {
        if (!StoreNames.IsValidProduct(d.Product)) return $"product '{d.Product}' is not a valid product name";
        if (d.From is null || d.To is null) return "from and to are required";
        foreach (var (name, e) in new[] { ("from", d.From), ("to", d.To) })
        {
            if (!StoreNames.IsValidVersion(e.Version)) return $"{name}.version '{e.Version}' is not a valid version string";
            if (e.VersionId < 1) return $"{name}.versionId {e.VersionId} must be >= 1";
            if (!ManifestRules.IsSha256Hex(e.ManifestSha256)) return $"{name}.manifestSha256 must be 64 lower-case hex characters";
            if (!ManifestRules.IsSha256Hex(e.InventoryDigest)) return $"{name}.inventoryDigest must be 64 lower-case hex characters";
        }
        if (d.From.VersionId >= d.To.VersionId) return $"from.versionId {d.From.VersionId} must be lower than to.versionId {d.To.VersionId}";
        if (d.CreatedUtc.Offset != TimeSpan.Zero || d.CreatedUtc.Ticks % TimeSpan.TicksPerSecond != 0) return "createdUtc must be UTC whole seconds";
        if (d.Level is < 1 or > 22) return $"level {d.Level} is outside 1..22";
        if (d.Files is null) return "files are required";
        string? previous = null;
        foreach (var f in d.Files)
        {
            if (f is null) return "a file entry is empty";
            if (f.Method == DeltaMethod.Release)
            {
                if (TreePaths.ProblemWithPath(f.Path) is { } releasePathProblem) return $"file '{f.Path}': {releasePathProblem}";
                if (previous is not null && string.CompareOrdinal(previous, f.Path) >= 0)
                    return $"files must be sorted by ordinal path without duplicates ('{previous}' before '{f.Path}')";
                previous = f.Path;
                if (d.Release is null) return $"file '{f.Path}': method release needs the release stream (schema {DeltaManifest.ReleaseSchema})";
                if (f.SourcePath.Length != 0 || f.SourceSha256.Length != 0 || f.WindowLog != 0 || f.Parts is not { Count: 0 })
                    return $"file '{f.Path}': method release has no sourcePath, sourceSha256, parts or windowLog";
                if (!ManifestRules.IsSha256Hex(f.Sha256)) return $"file '{f.Path}': sha256 must be 64 lower-case hex characters";
                if (f.Filter is < BranchFilterKind.None or > BranchFilterKind.X64) return $"file '{f.Path}': unknown filter {f.Filter}";
                if (f.Filter == BranchFilterKind.X64 && d.Release is { Chained: false }) return $"file '{f.Path}': filter x86-64 needs schema {DeltaManifest.ChainedReleaseSchema}";
                if (f.Size < 0 || f.Size > PatchCodec.MaxPatchInput) return $"file '{f.Path}': size {f.Size} is outside 0..{PatchCodec.MaxPatchInput}";
                continue;
            }
            if (f.Filter != BranchFilterKind.None) return $"file '{f.Path}': only method release carries a filter";
            var pathProblem = TreePaths.ProblemWithPath(f.Path) ?? TreePaths.ProblemWithPath(f.SourcePath);
            if (pathProblem is not null) return $"file '{f.Path}' (source '{f.SourcePath}'): {pathProblem}";
            if (previous is not null && string.CompareOrdinal(previous, f.Path) >= 0)
                return $"files must be sorted by ordinal path without duplicates ('{previous}' before '{f.Path}')";
            previous = f.Path;
            if (!ManifestRules.IsSha256Hex(f.SourceSha256) || !ManifestRules.IsSha256Hex(f.Sha256))
                return $"file '{f.Path}': sourceSha256 and sha256 must be 64 lower-case hex characters";
            if (f.SourceSha256 == f.Sha256) return $"file '{f.Path}': unchanged files are not listed";
            if (f.Size < 0 || f.Size > PatchCodec.MaxPatchInput) return $"file '{f.Path}': size {f.Size} is outside 0..{PatchCodec.MaxPatchInput}";
            if (f.Parts is null) return $"file '{f.Path}': parts are required";
            switch (f.Method)
            {
                case DeltaMethod.Chunks when f.Parts.Count != 0 || f.WindowLog != 0:
                    return $"file '{f.Path}': method chunks has no parts and windowLog 0";
                case DeltaMethod.Patch when f.Parts.Count == 0:
                    return $"file '{f.Path}': method patch needs at least one part";
                case DeltaMethod.Patch when f.WindowLog is < PatchCodec.MinWindowLog or > PatchCodec.MaxWindowLog:
                    return $"file '{f.Path}': windowLog {f.WindowLog} is outside {PatchCodec.MinWindowLog}..{PatchCodec.MaxWindowLog}";
                case DeltaMethod.Patch or DeltaMethod.Chunks:
                    break;
                default:
                    return $"file '{f.Path}': unknown method {f.Method}";
            }
            foreach (var p in f.Parts)
            {
                if (p is null || p.Id.Hex is null) return $"file '{f.Path}': a part has no id";
                if (p.Length < 1 || p.Length > ChunkingOptions.MaxChunkLimit) return $"file '{f.Path}': part {p.Id} length {p.Length} is outside 1..{ChunkingOptions.MaxChunkLimit}";
                if (p.Stored != p.Length + ChunkCodec.HeaderLength + ChunkCodec.TagLength)
                    return $"file '{f.Path}': part {p.Id} stored size {p.Stored} is not length + {ChunkCodec.HeaderLength + ChunkCodec.TagLength}";
            }
        }
        return d.Release is null ? null : ReleaseProblem(d);
    }

    private static string? ReleaseProblem(DeltaManifest d)
    {
        var r = d.Release!;
        if (r.Sources is null || r.Frames is null) return "release.sources and release.frames are required";
        if (r.OneFrame && (r.FrameContent != 0 || !r.Chained)) return "a one-frame release stream has no frameContent and is chained";
        if (!r.OneFrame && r.FrameContent is < ReleaseStream.MinFrameContent or > ReleaseStream.MaxFrameContent)
            return $"release.frameContent {r.FrameContent} is outside {ReleaseStream.MinFrameContent}..{ReleaseStream.MaxFrameContent}";
        if (r.WindowLog is < PatchCodec.MinWindowLog or > PatchCodec.MaxWindowLog)
            return $"release.windowLog {r.WindowLog} is outside {PatchCodec.MinWindowLog}..{PatchCodec.MaxWindowLog}";
        string? previous = null;
        long sourceLength = 0;
        foreach (var s in r.Sources)
        {
            if (s is null) return "release.sources has an empty entry";
            if (TreePaths.ProblemWithPath(s.Path) is { } problem) return $"release source '{s.Path}': {problem}";
            if (previous is not null && string.CompareOrdinal(previous, s.Path) >= 0)
                return $"release.sources must be sorted by ordinal path without duplicates ('{previous}' before '{s.Path}')";
            previous = s.Path;
            if (!ManifestRules.IsSha256Hex(s.Sha256)) return $"release source '{s.Path}': sha256 must be 64 lower-case hex characters";
            if (s.Filter is < BranchFilterKind.None or > BranchFilterKind.X64) return $"release source '{s.Path}': unknown filter {s.Filter}";
            if (s.Filter == BranchFilterKind.X64 && !r.Chained) return $"release source '{s.Path}': filter x86-64 needs schema {DeltaManifest.ChainedReleaseSchema}";
            if (s.Size < 0 || s.Size > PatchCodec.MaxPatchInput) return $"release source '{s.Path}': size {s.Size} is outside 0..{PatchCodec.MaxPatchInput}";
            sourceLength += s.Size;
        }
        var streamLength = d.Files.Where(f => f.Method == DeltaMethod.Release).Sum(f => f.Size);
        if (streamLength < 1) return "a release stream carries at least one non-empty file";
        if (r.Chained && sourceLength + streamLength > 1L << r.WindowLog)
            return $"release.windowLog {r.WindowLog} does not cover the {sourceLength}-byte reference plus the {streamLength}-byte chained stream";
        if (r.OneFrame)
        {
            if (r.Frames.Count == 0) return "release.objects lists no object";
        }
        else
        {
            if (sourceLength + r.FrameContent > 1L << r.WindowLog)
                return $"release.windowLog {r.WindowLog} does not cover the {sourceLength}-byte reference plus a {r.FrameContent}-byte frame";
            var frames = (streamLength + r.FrameContent - 1) / r.FrameContent;
            if (r.Frames.Count != frames) return $"release.frames has {r.Frames.Count} frames, a {streamLength}-byte stream in {r.FrameContent}-byte pieces has {frames}";
        }
        foreach (var p in r.Frames)
        {
            if (p is null || p.Id.Hex is null) return "a release delta object has no id";
            if (p.Length < 1 || p.Length > ChunkingOptions.MaxChunkLimit) return $"release delta object {p.Id} length {p.Length} is outside 1..{ChunkingOptions.MaxChunkLimit}";
            if (p.Stored != p.Length + ChunkCodec.HeaderLength + ChunkCodec.TagLength)
                return $"release delta object {p.Id} stored size {p.Stored} is not length + {ChunkCodec.HeaderLength + ChunkCodec.TagLength}";
        }
        return null;
    }

    private static byte[] Write(DeltaManifest d)
    {
        var filtered = d.SchemaVersion >= DeltaManifest.FilteredReleaseSchema;
        var w = new CanonicalJsonWriter();
        w.StartObject()
            .Property("schema", d.SchemaVersion)
            .Property("product", d.Product);
        WriteEndpoint(w, "from", d.From);
        WriteEndpoint(w, "to", d.To);
        w.Property("createdUtc", ManifestSerializer.FormatTime(d.CreatedUtc))
            .Property("codec", Codec)
            .Property("level", d.Level)
            .Name("files").StartArray();
        foreach (var f in d.Files)
        {
            if (f.Method == DeltaMethod.Release)
            {
                w.StartObject().Property("path", f.Path).Property("sha256", f.Sha256).Property("size", f.Size).Property("method", MethodName(f.Method));
                if (filtered) w.Property("filter", FilterName(f.Filter));
                w.EndObject();
                continue;
            }
            w.StartObject()
                .Property("path", f.Path)
                .Property("sourcePath", f.SourcePath)
                .Property("sourceSha256", f.SourceSha256)
                .Property("sha256", f.Sha256)
                .Property("size", f.Size)
                .Property("method", MethodName(f.Method))
                .Property("windowLog", f.WindowLog)
                .Name("parts").StartArray();
            foreach (var p in f.Parts)
                w.StartObject().Property("id", p.Id.Hex).Property("length", p.Length).Property("stored", p.Stored).EndObject();
            w.EndArray().EndObject();
        }
        w.EndArray();
        if (d.Release is { } r)
        {
            w.Name("release").StartObject().Property("windowLog", r.WindowLog);
            if (r.OneFrame) w.Property("coding", OneFrameCoding);
            else w.Property("frameContent", r.FrameContent);
            if (r.Chained && !r.OneFrame) w.Property("prefix", ChainedPrefix);
            w.Name("sources").StartArray();
            foreach (var s in r.Sources)
            {
                w.StartObject().Property("path", s.Path).Property("sha256", s.Sha256).Property("size", s.Size);
                if (filtered) w.Property("filter", FilterName(s.Filter));
                w.EndObject();
            }
            w.EndArray().Name(r.OneFrame ? "objects" : "frames").StartArray();
            foreach (var p in r.Frames)
                w.StartObject().Property("id", p.Id.Hex).Property("length", p.Length).Property("stored", p.Stored).EndObject();
            w.EndArray().EndObject();
        }
        w.EndObject();
        return w.ToArray();
    }

    /// <summary>
    /// Schema 5's <c>release.coding</c>: the whole target stream is one zstd frame coded against the reference, its
    /// compressed bytes split in order into <c>release.objects</c>.
    /// </summary>
    public const string OneFrameCoding = "one-frame";

    /// <summary>The patch codec of schemas 1 to 5.</summary>
    public const string Codec = "zstd-patch-from";

    /// <summary>Schema 4's <c>release.prefix</c>: each frame is coded against the reference followed by every earlier frame's content.</summary>
    public const string ChainedPrefix = "reference+earlier-frames";

    private static void WriteEndpoint(CanonicalJsonWriter w, string name, DeltaEndpoint e) =>
        w.Name(name).StartObject()
            .Property("version", e.Version)
            .Property("versionId", e.VersionId)
            .Property("manifestSha256", e.ManifestSha256)
            .Property("inventoryDigest", e.InventoryDigest)
            .EndObject();

    private static string MethodName(DeltaMethod m) => m switch
    {
        DeltaMethod.Patch => "patch",
        DeltaMethod.Chunks => "chunks",
        DeltaMethod.Release => "release",
        _ => throw new InvalidInputException($"unknown delta method {m}"),
    };

    private static string FilterName(BranchFilterKind k) => k switch
    {
        BranchFilterKind.None => "none",
        BranchFilterKind.X86 => "x86",
        BranchFilterKind.Arm64 => "arm64",
        BranchFilterKind.X64 => "x86-64",
        _ => throw new InvalidInputException($"unknown branch filter {k}"),
    };

    private static BranchFilterKind ReadFilter(JsonElement e, bool filtered) => !filtered ? BranchFilterKind.None
        : ManifestSerializer.RequiredString(e, "filter") switch
        {
            "none" => BranchFilterKind.None,
            "x86" => BranchFilterKind.X86,
            "arm64" => BranchFilterKind.Arm64,
            "x86-64" => BranchFilterKind.X64,
            var other => throw new FormatException($"filter '{other}' is not 'none', 'x86', 'x86-64' or 'arm64'"),
        };

    private static DeltaManifest Read(JsonElement root)
    {
        var schema = ManifestSerializer.Required(root, "schema").GetInt32();
        if (schema is < DeltaManifest.Schema or > DeltaManifest.OneFrameReleaseSchema)
            throw new FormatException($"schema {schema} is not supported (this build reads {DeltaManifest.Schema} to {DeltaManifest.OneFrameReleaseSchema})");
        var filtered = schema >= DeltaManifest.FilteredReleaseSchema;
        var codec = ManifestSerializer.RequiredString(root, "codec");
        if (codec != Codec) throw new FormatException($"codec '{codec}' is not supported (this build reads '{Codec}')");
        var files = ManifestSerializer.Required(root, "files").EnumerateArray().Select(f => ReadMethod(f) == DeltaMethod.Release
            ? new DeltaFile(ManifestSerializer.RequiredString(f, "path"), "", "", ManifestSerializer.RequiredString(f, "sha256"),
                ManifestSerializer.Required(f, "size").GetInt64(), DeltaMethod.Release, 0, [], ReadFilter(f, filtered))
            : new DeltaFile(
            ManifestSerializer.RequiredString(f, "path"),
            ManifestSerializer.RequiredString(f, "sourcePath"),
            ManifestSerializer.RequiredString(f, "sourceSha256"),
            ManifestSerializer.RequiredString(f, "sha256"),
            ManifestSerializer.Required(f, "size").GetInt64(),
            ReadMethod(f),
            ManifestSerializer.Required(f, "windowLog").GetInt32(),
            ManifestSerializer.Required(f, "parts").EnumerateArray().Select(ReadPart).ToList())).ToList();
        return new DeltaManifest(
            ManifestSerializer.RequiredString(root, "product"),
            ReadEndpoint(ManifestSerializer.Required(root, "from")),
            ReadEndpoint(ManifestSerializer.Required(root, "to")),
            ManifestSerializer.ParseTime(ManifestSerializer.RequiredString(root, "createdUtc"), "createdUtc"),
            ManifestSerializer.Required(root, "level").GetInt32(),
            files,
            schema == DeltaManifest.Schema ? null
            : schema == DeltaManifest.OneFrameReleaseSchema ? ReadOneFrameRelease(ManifestSerializer.Required(root, "release"))
            : ReadRelease(ManifestSerializer.Required(root, "release"), filtered, schema == DeltaManifest.ChainedReleaseSchema));
    }

    private static DeltaMethod ReadMethod(JsonElement f) => ManifestSerializer.RequiredString(f, "method") switch
    {
        "patch" => DeltaMethod.Patch,
        "chunks" => DeltaMethod.Chunks,
        "release" => DeltaMethod.Release,
        var other => throw new FormatException($"method '{other}' is not 'patch', 'chunks' or 'release'"),
    };

    private static ReleaseStream ReadRelease(JsonElement r, bool filtered, bool chained) => new(
        ManifestSerializer.Required(r, "windowLog").GetInt32(),
        ManifestSerializer.Required(r, "frameContent").GetInt32(),
        ReadSources(r, filtered),
        ManifestSerializer.Required(r, "frames").EnumerateArray().Select(ReadPart).ToList(),
        chained && ManifestSerializer.RequiredString(r, "prefix") is var prefix
            && (prefix == ChainedPrefix ? true : throw new FormatException($"release.prefix '{prefix}' is not '{ChainedPrefix}'")));

    private static ReleaseStream ReadOneFrameRelease(JsonElement r)
    {
        var coding = ManifestSerializer.RequiredString(r, "coding");
        if (coding != OneFrameCoding) throw new FormatException($"release.coding '{coding}' is not '{OneFrameCoding}'");
        foreach (var legacy in new[] { "frameContent", "prefix", "frames" })
            if (r.TryGetProperty(legacy, out _)) throw new FormatException($"release.{legacy} is not part of schema {DeltaManifest.OneFrameReleaseSchema} (one frame in release.objects)");
        return new ReleaseStream(
            ManifestSerializer.Required(r, "windowLog").GetInt32(),
            0,
            ReadSources(r, filtered: true),
            ManifestSerializer.Required(r, "objects").EnumerateArray().Select(ReadPart).ToList(),
            Chained: true,
            OneFrame: true);
    }

    private static List<ReleaseSource> ReadSources(JsonElement r, bool filtered) =>
        ManifestSerializer.Required(r, "sources").EnumerateArray().Select(s => new ReleaseSource(
            ManifestSerializer.RequiredString(s, "path"),
            ManifestSerializer.RequiredString(s, "sha256"),
            ManifestSerializer.Required(s, "size").GetInt64(),
            ReadFilter(s, filtered))).ToList();

    private static DeltaPart ReadPart(JsonElement p) => new(
        ChunkId.TryParse(ManifestSerializer.RequiredString(p, "id"), out var id) ? id : throw new FormatException("part id is not 64 lower-case hex characters"),
        ManifestSerializer.Required(p, "length").GetInt32(),
        ManifestSerializer.Required(p, "stored").GetInt32());

    private static DeltaEndpoint ReadEndpoint(JsonElement e) => new(
        ManifestSerializer.RequiredString(e, "version"),
        ManifestSerializer.Required(e, "versionId").GetInt64(),
        ManifestSerializer.RequiredString(e, "manifestSha256"),
        ManifestSerializer.RequiredString(e, "inventoryDigest"));
}
