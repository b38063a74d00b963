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
    public static Manifest Parse(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.Length > MaxManifestBytes)
            throw new InvalidInputException($"Manifest is {bytes.Length} bytes, more than the {MaxManifestBytes} byte limit.");
        Manifest manifest;
        try
        {
            manifest = Read(bytes.Span);
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
        var check = CanonicalJsonWriter.Checking(bytes);
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
            .Property("schema", m.SchemaVersion)
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
            .Property("inventoryDigest", m.InventoryDigest);
        if (m.Stream is { } stream)
        {
            w.Name("stream").StartObject().Property("size", stream.Size).Name("chunks").StartArray();
            foreach (var c in stream.Chunks)
                w.StartObject().Property("id", c.Id.Hex).Property("length", c.Length).Property("tag", c.Tag).EndObject();
            w.EndArray().EndObject();
        }
        w.Name("files").StartArray();
        foreach (var f in m.Files)
        {
            w.StartObject()
                .Property("path", f.Path)
                .Property("mode", f.Mode)
                .Property("size", f.Size)
                .Property("sha256", f.Sha256);
            if (f.StreamOffset is { } offset)
            {
                w.Property("offset", offset).EndObject();
                continue;
            }
            w.Name("chunks").StartArray();
            foreach (var c in f.Chunks)
                w.StartObject().Property("id", c.Id.Hex).Property("length", c.Length).Property("tag", c.Tag).EndObject();
            w.EndArray().EndObject();
        }
        w.EndArray().Name("symlinks").StartArray();
        foreach (var s in m.Symlinks)
            w.StartObject().Property("path", s.Path).Property("target", s.Target).EndObject();
        w.EndArray().EndObject();
    }

    // Read forward in the canonical property order, straight from the bytes: a document-object model of a large
    // release's manifest would hold several times its size while it is parsed. Anything out of that order is not
    // canonical anyway (the canonical check after the parse would refuse it), so it is refused here by name.
    private static Manifest Read(ReadOnlySpan<byte> json)
    {
        var r = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 8 });
        Expect(ref r, JsonTokenType.StartObject, "the manifest");
        var schema = ReadInt32(ref r, "schema");
        if (schema is not (Manifest.Schema or Manifest.StreamSchema))
            throw new FormatException($"schema {schema} is not supported (this build reads schemas {Manifest.Schema} and {Manifest.StreamSchema})");
        var product = ReadString(ref r, "product");
        var version = ReadString(ref r, "version");
        var versionId = ReadInt64(ref r, "versionId");
        var created = ParseTime(ReadString(ref r, "createdUtc"), "createdUtc");
        var expires = ParseTime(ReadString(ref r, "expiresUtc"), "expiresUtc");
        ExpectName(ref r, "chunking");
        Expect(ref r, JsonTokenType.StartObject, "'chunking'");
        var chunking = new ChunkingOptions(ReadInt32(ref r, "min"), ReadInt32(ref r, "avg"), ReadInt32(ref r, "max"));
        Expect(ref r, JsonTokenType.EndObject, "'chunking'");
        var inventoryDigest = ReadString(ref r, "inventoryDigest");
        SmallFileStream? stream = null;
        long[] starts = [];
        if (schema == Manifest.StreamSchema)
        {
            ExpectName(ref r, "stream");
            Expect(ref r, JsonTokenType.StartObject, "'stream'");
            var streamSize = ReadInt64(ref r, "size");
            ExpectName(ref r, "chunks");
            var streamChunks = ReadChunks(ref r, "the stream's 'chunks'", "a stream chunk");
            Expect(ref r, JsonTokenType.EndObject, "'stream'");
            stream = new SmallFileStream(streamSize, streamChunks);
            starts = stream.ChunkStarts();
            if (starts[^1] != streamSize)
                throw new FormatException($"the stream's chunk lengths sum to {starts[^1]}, not its size {streamSize}");
        }
        ExpectName(ref r, "files");
        Expect(ref r, JsonTokenType.StartArray, "'files'");
        var files = new List<ManifestFile>();
        while (NextItem(ref r, "'files'"))
        {
            var path = ReadString(ref r, "path");
            var mode = ReadInt32(ref r, "mode");
            var size = ReadInt64(ref r, "size");
            var sha256 = ReadString(ref r, "sha256");
            if (stream is not null && PeekName(ref r, "offset"))
            {
                var offset = ReadInt64(ref r, "offset");
                var inStream = stream.Attach(new ManifestFile(path, mode, size, sha256, []) { StreamOffset = offset }, starts)
                    ?? throw new FormatException($"file '{path}': range {offset} + {size} is not inside the small-file stream of {stream.Size} bytes (or is empty)");
                files.Add(inStream);
                Expect(ref r, JsonTokenType.EndObject, $"file '{path}'");
                continue;
            }
            ExpectName(ref r, "chunks");
            var chunks = ReadChunks(ref r, "'chunks'", "a chunk");
            files.Add(new ManifestFile(path, mode, size, sha256, chunks));
            Expect(ref r, JsonTokenType.EndObject, $"file '{path}'");
        }
        ExpectName(ref r, "symlinks");
        Expect(ref r, JsonTokenType.StartArray, "'symlinks'");
        var symlinks = new List<ManifestSymlink>();
        while (NextItem(ref r, "'symlinks'"))
        {
            symlinks.Add(new ManifestSymlink(ReadString(ref r, "path"), ReadString(ref r, "target")));
            Expect(ref r, JsonTokenType.EndObject, "a symlink");
        }
        Expect(ref r, JsonTokenType.EndObject, "the manifest");
        if (r.Read()) throw new FormatException($"unexpected {r.TokenType} after the manifest's end");
        return new Manifest(product, version, versionId, created, expires, chunking, inventoryDigest, files, symlinks) { Stream = stream };
    }

    /// <summary>A JSON array of chunk references (<c>id</c>, <c>length</c>, <c>tag</c>), named <paramref name="list"/> in errors.</summary>
    private static List<ChunkRef> ReadChunks(ref Utf8JsonReader r, string list, string item)
    {
        Expect(ref r, JsonTokenType.StartArray, list);
        var chunks = new List<ChunkRef>();
        while (NextItem(ref r, list))
        {
            var id = ParseChunkId(ReadString(ref r, "id"));
            chunks.Add(new ChunkRef(id, ReadInt32(ref r, "length"), ReadString(ref r, "tag")));
            Expect(ref r, JsonTokenType.EndObject, item);
        }
        // Exactly sized: a large file's list otherwise keeps up to twice its entries' room for as long as the manifest lives.
        chunks.TrimExcess();
        return chunks;
    }

    /// <summary>True when the next token is property <paramref name="name"/> (the reader is not moved).</summary>
    private static bool PeekName(ref Utf8JsonReader r, string name)
    {
        var copy = r;
        return copy.Read() && copy.TokenType == JsonTokenType.PropertyName && copy.ValueTextEquals(name);
    }

    private static void Expect(ref Utf8JsonReader r, JsonTokenType token, string what)
    {
        if (!r.Read()) throw new FormatException($"the document ends inside {what}");
        if (r.TokenType != token) throw new FormatException($"expected {token} in {what}, found {r.TokenType}");
    }

    /// <summary>True when an array continues with an object (read its start), false at the array's end.</summary>
    private static bool NextItem(ref Utf8JsonReader r, string array)
    {
        if (!r.Read()) throw new FormatException($"the document ends inside {array}");
        if (r.TokenType == JsonTokenType.EndArray) return false;
        if (r.TokenType != JsonTokenType.StartObject) throw new FormatException($"expected an object in {array}, found {r.TokenType}");
        return true;
    }

    private static void ExpectName(ref Utf8JsonReader r, string name)
    {
        if (!r.Read()) throw new FormatException($"the document ends before property '{name}'");
        if (r.TokenType != JsonTokenType.PropertyName)
            throw new FormatException($"property '{name}' is missing (found {r.TokenType})");
        if (!r.ValueTextEquals(name))
            throw new FormatException($"property '{name}' is missing or out of order (found '{r.GetString()}')");
    }

    /// <summary>Reads property <paramref name="name"/> and moves to its value.</summary>
    private static void ExpectValue(ref Utf8JsonReader r, string name)
    {
        ExpectName(ref r, name);
        if (!r.Read()) throw new FormatException($"the document ends at property '{name}'");
    }

    private static string ReadString(ref Utf8JsonReader r, string name)
    {
        ExpectValue(ref r, name);
        return r.TokenType == JsonTokenType.String ? r.GetString()! : throw new FormatException($"property '{name}' is {r.TokenType}, not a string");
    }

    private static int ReadInt32(ref Utf8JsonReader r, string name)
    {
        ExpectValue(ref r, name);
        return r.TokenType == JsonTokenType.Number && r.TryGetInt32(out var v) ? v : throw new FormatException($"property '{name}' is not a 32-bit integer");
    }

    private static long ReadInt64(ref Utf8JsonReader r, string name)
    {
        ExpectValue(ref r, name);
        return r.TokenType == JsonTokenType.Number && r.TryGetInt64(out var v) ? v : throw new FormatException($"property '{name}' is not a 64-bit integer");
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
        var streamProblem = StreamProblem(m);
        if (streamProblem is not null) return streamProblem;

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
            if (f.InStream) continue; // its range and chunks were checked with the stream
            if (f.StreamSkip != 0) return $"file '{f.Path}': a file chunked on its own cannot skip into its first chunk";
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

    /// <summary>
    /// The small-file stream's rules: chunks valid as any chunk and summing to its size; the stream files non-empty, in
    /// manifest order, each starting where the previous one ended (the first at 0, the last ending at the stream's end),
    /// so ranges neither overlap nor leave gaps; each file's chunks exactly the stream chunks covering its range.
    /// </summary>
    private static string? StreamProblem(Manifest m)
    {
        if (m.Stream is not { } stream)
            return m.Files.FirstOrDefault(f => f.InStream) is { } stray ? $"file '{stray.Path}' has a stream offset but the manifest has no stream" : null;
        if (stream.Chunks is null) return "the stream's chunks are missing";
        foreach (var c in stream.Chunks)
        {
            if (c is null || c.Id.Hex is null) return "a stream chunk has no id";
            if (c.Length < 1 || c.Length > m.Chunking.Max)
                return $"stream chunk {c.Id} length {c.Length} is outside 1..{m.Chunking.Max}";
            if (!ChunkCodec.IsManifestTag(c.Tag))
                return $"stream chunk {c.Id} tag must be {ChunkCodec.ManifestTagLength * 2} lower-case hex characters";
        }
        var starts = stream.ChunkStarts();
        if (starts[^1] != stream.Size) return $"the stream's chunk lengths sum to {starts[^1]}, not its size {stream.Size}";
        if (stream.Size < 1) return "the small-file stream is empty (a release without stream files is written in schema 1)";
        long next = 0;
        foreach (var f in m.Files)
        {
            if (!f.InStream) continue;
            if (f.StreamOffset != next)
                return $"file '{f.Path}': stream offset {f.StreamOffset} is not {next}, where the previous stream file ends (stream ranges are contiguous, in manifest order)";
            var attached = stream.Attach(f, starts);
            if (attached is null) return $"file '{f.Path}': range {f.StreamOffset} + {f.Size} is not inside the small-file stream of {stream.Size} bytes (or is empty)";
            if (attached.StreamSkip != f.StreamSkip || !attached.Chunks.SequenceEqual(f.Chunks))
                return $"file '{f.Path}': its chunks are not the stream chunks covering its range";
            next += f.Size;
        }
        return next == stream.Size ? null : $"the stream files' sizes sum to {next}, not the stream's size {stream.Size}";
    }

    /// <summary>True for 64 lower-case hex characters.</summary>
    public static bool IsSha256Hex(string? text) => ChunkId.IsValid(text);
}
