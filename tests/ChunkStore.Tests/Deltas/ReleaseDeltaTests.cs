using System.Security.Cryptography;
using System.Text;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Deltas;

/// <summary>Whole-release deltas (schema 2): build, signed strict manifest, frame-by-frame apply against the concatenated source.</summary>
public sealed class ReleaseDeltaTests : StoreTestBase
{
    private FileSystemStore Store => OpenStore();

    private readonly Dictionary<string, string> _trees = [];

    private void Publish(string version, Dictionary<string, byte[]> files)
    {
        var tree = Dir.Sub("tree-" + version);
        foreach (var (path, content) in files) TestData.WriteFile(tree, path, content);
        _trees[version] = tree;
        new Publisher(Store, ProductKey, SigningKey).Publish(new PublishRequest("acme", version, tree, Chunking: Small));
    }

    private Manifest ManifestOf(string version) => ManifestSerializer.Parse(Store.ReadFile(StoreLayout.ManifestPath("acme", version))!);

    /// <summary>Two releases: changed, added (a copy of another changed file's bytes: a cross-file match), renamed, unchanged, removed.</summary>
    private (Dictionary<string, byte[]> V1, Dictionary<string, byte[]> V2) Releases()
    {
        var app = TestData.Random(300_000, 1);
        var lib = TestData.Random(200_000, 2);
        var v1 = new Dictionary<string, byte[]>
        {
            ["bin/app"] = app, ["lib/core.so"] = lib, ["old/name.dat"] = TestData.Random(40_000, 3),
            ["same.txt"] = TestData.Random(9_000, 4), ["gone.txt"] = TestData.Random(5_000, 5),
        };
        var v2 = new Dictionary<string, byte[]>
        {
            ["bin/app"] = Stamped(app, 2), ["lib/core.so"] = Stamped(lib, 2), ["new/name.dat"] = Stamped(v1["old/name.dat"], 2),
            ["plugins/core-copy.so"] = Stamped(lib, 3), ["same.txt"] = v1["same.txt"], ["added.bin"] = TestData.Random(7_000, 6),
        };
        Publish("1.0", v1);
        Publish("2.0", v2);
        return (v1, v2);
    }

    /// <summary>Applies <paramref name="delta"/> to the source tree at <paramref name="sourceTree"/>; returns each release file's rebuilt bytes.</summary>
    private Dictionary<string, byte[]> Apply(DeltaManifest delta, string sourceTree)
    {
        var reference = Path.Combine(Dir.Path, "reference");
        ReleaseDeltaApplier.WriteReference(delta.Release!, s =>
        {
            var path = Path.Combine(sourceTree, s.Path);
            return File.Exists(path) && Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))) == s.Sha256 ? path : null;
        }, reference);
        var output = delta.ReleaseFiles.ToDictionary(f => f.Path, f => new byte[f.Size]);
        var frames = ReleaseDeltaApplier.FramesFor(delta, _ => true);
        var failed = ReleaseDeltaApplier.Apply(delta, reference, frames, Store.ReadChunk, ProductKey,
            (file, offset, bytes) => bytes.CopyTo(output[file.Path].AsSpan((int)offset)));
        Assert.Empty(failed);
        return output;
    }

    [Fact]
    public void Whole_release_delta_spans_frames_verifies_and_rebuilds_every_changed_and_added_file()
    {
        var (_, v2) = Releases();
        var result = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, ChainFrames = false }
            .Build("acme", "1.0", "2.0");
        var bytes = Store.ReadFile(result.ManifestPath)!;
        var delta = DeltaManifestSerializer.VerifyAndParse(bytes, Store.ReadFile(result.ManifestPath + ".sig")!, SigningKey.PublicKey);
        Assert.Equal(DeltaManifest.ReleaseSchema, delta.SchemaVersion);
        Assert.Contains("\"schema\":2", Encoding.UTF8.GetString(bytes));
        var stream = delta.Release!;
        Assert.Equal(ManifestOf("1.0").Files.Select(f => f.Path).Order(StringComparer.Ordinal), stream.Sources.Select(s => s.Path));
        // Unchanged content is never in the stream; everything else is, added files included, in path order.
        Assert.Equal(["added.bin", "bin/app", "lib/core.so", "new/name.dat", "plugins/core-copy.so"], delta.ReleaseFiles.Select(f => f.Path));
        var streamLength = delta.ReleaseFiles.Sum(f => f.Size);
        Assert.Equal((int)((streamLength + 65535) / 65536), stream.Frames.Count);
        Assert.True(stream.Frames.Count > 5);
        Assert.All(stream.Frames, f => Assert.True(Store.ChunkExists(f.Id)));
        // Cross-file matches: the stream costs far less than the changed bytes (random data; only the stamps are new).
        Assert.True(delta.PatchBytes < streamLength / 10, $"{delta.PatchBytes} of frames for {streamLength} bytes");

        var rebuilt = Apply(delta, _trees["1.0"]);
        foreach (var f in delta.ReleaseFiles) Assert.Equal(v2[f.Path], rebuilt[f.Path]);
        Assert.Equal(result.FilesPatched, delta.ReleaseFiles.Count);
    }

    [Fact]
    public void A_damaged_source_file_only_breaks_the_files_copied_from_it()
    {
        var (_, v2) = Releases();
        var delta = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024 }
            .Build("acme", "1.0", "2.0").Delta;
        var damaged = Dir.Sub("damaged");
        foreach (var file in Directory.EnumerateFiles(_trees["1.0"], "*", SearchOption.AllDirectories))
            TestData.WriteFile(damaged, Path.GetRelativePath(_trees["1.0"], file).Replace('\\', '/'), File.ReadAllBytes(file));
        var lib = File.ReadAllBytes(Path.Combine(damaged, "lib/core.so"));
        lib[1000] ^= 0xff;
        File.WriteAllBytes(Path.Combine(damaged, "lib/core.so"), lib);

        var rebuilt = Apply(delta, damaged);
        // lib/core.so's source is zeros in the reference: its two descendants come out wrong, the others right.
        Assert.NotEqual(v2["lib/core.so"], rebuilt["lib/core.so"]);
        Assert.NotEqual(v2["plugins/core-copy.so"], rebuilt["plugins/core-copy.so"]);
        foreach (var path in new[] { "bin/app", "new/name.dat", "added.bin" }) Assert.Equal(v2[path], rebuilt[path]);
    }

    [Fact]
    public void Auto_keeps_the_smaller_delta_and_files_mode_stays_schema_1()
    {
        Releases();
        var auto = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3 }.Build("acme", "1.0", "2.0");
        // An explicit method rebuilds a delta of the other kind (auto accepts either).
        var files = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Files }.Build("acme", "1.0", "2.0");
        Assert.False(files.AlreadyBuilt);
        Assert.Null(files.Delta.Release);
        Assert.Contains("\"schema\":1", Encoding.UTF8.GetString(Store.ReadFile(files.ManifestPath)!));
        // plugins/core-copy.so has no per-file source (new path, new name); only the whole-release stream finds lib/core.so for it.
        Assert.NotNull(auto.Delta.Release);
        Assert.True(auto.Delta.PatchBytes < files.Delta.PatchBytes + files.ChunkBytesReplaced, $"release {auto.Delta.PatchBytes} vs files {files.Delta.PatchBytes}");
        Assert.True(new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3 }.Build("acme", "1.0", "2.0").AlreadyBuilt);
    }

    [Fact]
    public void Auto_keeps_the_whole_release_delta_without_coding_per_file_patches_at_its_level_when_the_probe_prices_them_far_above_it()
    {
        // plugins/core-copy.so and added.bin have no per-file source: per file they cost their chunks, in the stream a few bytes.
        Releases();
        var auto = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 9 }.Build("acme", "1.0", "2.0");
        var choice = auto.Auto!;
        Assert.NotNull(auto.Delta.Release);
        Assert.Equal(DeltaBuilder.AutoProbeLevel, choice.ProbeLevel);
        Assert.True(choice.ReleaseBytes < DeltaBuilder.AutoProbeRatio * choice.ProbeBytes!.Value, $"release {choice.ReleaseBytes} vs probe {choice.ProbeBytes}");
        Assert.Null(choice.FilesBytes);
        Assert.Equal(TimeSpan.Zero, choice.FilesElapsed);
        // What the choice priced is what a device fetches over the delta written: its manifest and its objects.
        Assert.Equal(Store.ReadFile(auto.ManifestPath)!.Length + auto.Delta.PatchBytes, choice.ReleaseBytes);

        // The skipped build would have lost: coded at level 9, the per-file delta makes a device fetch more.
        File.Delete(Path.Combine(StoreRoot, auto.ManifestPath));
        var compared = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 9, ProbeRatio = 0 }.Build("acme", "1.0", "2.0");
        Assert.False(compared.AlreadyBuilt);
        Assert.NotNull(compared.Delta.Release);
        Assert.True(compared.Auto!.FilesBytes > compared.Auto.ReleaseBytes, $"files {compared.Auto.FilesBytes} vs release {compared.Auto.ReleaseBytes}");
        Assert.True(compared.Auto.FilesElapsed > TimeSpan.Zero);
    }

    [Fact]
    public void Auto_still_keeps_per_file_patches_when_they_are_smaller_and_codes_them_at_its_level()
    {
        // Many unchanged files: the whole-release manifest lists every one as a source; per file only the changed one.
        var v1 = Enumerable.Range(0, 400).ToDictionary(i => $"share/f{i:D4}.txt", i => TestData.Random(64, 100 + i));
        v1["bin/app"] = TestData.Random(100_000, 1);
        var v2 = new Dictionary<string, byte[]>(v1) { ["bin/app"] = Stamped(v1["bin/app"], 2) };
        Publish("1.0", v1);
        Publish("2.0", v2);

        var auto = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 9 }.Build("acme", "1.0", "2.0");
        var choice = auto.Auto!;
        Assert.Null(auto.Delta.Release);
        Assert.Contains("\"schema\":1", Encoding.UTF8.GetString(Store.ReadFile(auto.ManifestPath)!));
        Assert.Equal(DeltaMethod.Patch, Assert.Single(auto.Delta.Files).Method);
        Assert.Equal(9, auto.Delta.Level);
        Assert.True(choice.ProbeBytes < choice.ReleaseBytes, $"probe {choice.ProbeBytes} vs release {choice.ReleaseBytes}");
        Assert.True(choice.FilesBytes < choice.ReleaseBytes, $"files {choice.FilesBytes} vs release {choice.ReleaseBytes}");
        Assert.Equal(Store.ReadFile(auto.ManifestPath)!.Length + auto.Delta.PatchBytes, choice.FilesBytes);
        var rebuilt = DeltaApplier.Apply(auto.Delta.Files[0], v1["bin/app"], Store.ReadChunk, ProductKey);
        Assert.Equal(v2["bin/app"], rebuilt);
    }

    [Fact]
    public void Schema_2_rules_are_enforced_on_serialize_and_parse()
    {
        Releases();
        var delta = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, ChainFrames = false }
            .Build("acme", "1.0", "2.0").Delta;
        var stream = delta.Release!;
        void Refused(DeltaManifest bad, string expected)
        {
            var e = Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(bad));
            Assert.Contains(expected, e.Message);
        }
        Refused(delta with { Release = stream with { Frames = stream.Frames.Skip(1).ToList() } }, "release.frames has");
        Refused(delta with { Release = stream with { WindowLog = 23, Sources = [.. stream.Sources, new ReleaseSource("zz", stream.Sources[0].Sha256, 9_000_000)] } },
            "does not cover");
        Refused(delta with { Release = stream with { Sources = stream.Sources.Reverse().ToList() } }, "sorted by ordinal path");
        Refused(delta with { Release = null }, "method release needs the release stream");
        Refused(delta with { Release = stream with { FrameContent = 1000 } }, "frameContent 1000");
        Refused(delta with { Files = [delta.Files[0] with { SourcePath = "bin/app" }, .. delta.Files.Skip(1)] }, "has no sourcePath");

        // Bytes that are not exactly the canonical form are refused, as are unknown schemas.
        var bytes = Encoding.UTF8.GetString(DeltaManifestSerializer.Serialize(delta));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(bytes.Replace("\"schema\":2", "\"schema\":3"))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(bytes.Replace("\"schema\":2", "\"schema\":1"))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(bytes.Replace("\"frameContent\":65536", "\"frameContent\":65536,\"extra\":1"))));
        Assert.Equal(delta.Release!.Frames, DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(bytes)).Release!.Frames);
    }

    [Fact]
    public void Heap_needed_is_one_piece_plus_one_stored_frame()
    {
        Releases();
        var delta = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, OneFrame = false }
            .Build("acme", "1.0", "2.0").Delta;
        Assert.Equal(64 * 1024 + delta.Release!.Frames.Max(f => f.Stored), ReleaseDeltaApplier.HeapNeeded(delta.Release));
        Assert.True(ReleaseDeltaApplier.HeapNeeded(delta.Release) <= 2L * ReleaseStream.MaxFrameContent);
    }

    [Fact]
    public void Executables_are_coded_with_their_branch_transform_in_schema_3_and_rebuild_exactly()
    {
        var v1 = new Dictionary<string, byte[]> { ["bin/tool"] = ExecutableSamples.X86Program(200_000, 0), ["notes.txt"] = TestData.Random(20_000, 8) };
        var v2 = new Dictionary<string, byte[]> { ["bin/tool"] = ExecutableSamples.X86Program(200_000, 3000), ["notes.txt"] = Stamped(v1["notes.txt"], 2) };
        Publish("1.0", v1);
        Publish("2.0", v2);
        DeltaBuilder Builder(bool filters) => new(Store, ProductKey, SigningKey)
            { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, BranchFilters = filters, ChainFrames = false };
        // Transforms off replaces it with a schema 2 delta (for agents that read only schema 2).
        var (delta, bytes, signature, plain) = BuildThenReplace(Builder, "1.0", "2.0");

        Assert.Equal(DeltaManifest.FilteredReleaseSchema, delta.SchemaVersion);
        Assert.Equal(DeltaManifest.ReleaseSchema, plain.SchemaVersion);
        var json = Encoding.UTF8.GetString(bytes);
        Assert.Contains("\"schema\":3", json);
        Assert.Equal([BranchFilterKind.X86, BranchFilterKind.None], delta.ReleaseFiles.Select(f => f.Filter));
        Assert.Equal([BranchFilterKind.X86, BranchFilterKind.None], delta.Release!.Sources.Select(f => f.Filter));
        // The moved calls still match the source once transformed: the stream costs clearly less.
        Assert.True(delta.PatchBytes < plain.PatchBytes * 9 / 10, $"transformed {delta.PatchBytes} B, plain {plain.PatchBytes} B");

        // The tool spans several 64 KiB frames: the device undoes the transform across frame boundaries.
        Assert.True(delta.Release.Frames.Count >= 3);
        var rebuilt = Apply(delta, _trees["1.0"]);
        Assert.Equal(v2["bin/tool"], rebuilt["bin/tool"]);
        Assert.Equal(v2["notes.txt"], rebuilt["notes.txt"]);

        // The filter is signed content: a schema 3 manifest without it, or a schema 2 one with it, is refused.
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"schema\":3", "\"schema\":2"))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"filter\":\"x86\"", "\"filter\":\"arm64\"").Replace("\"filter\":\"none\"", "\"filter\":\"mips\""))));
        var e = Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(delta with { Files = [delta.Files[0] with { Filter = (BranchFilterKind)9 }, .. delta.Files.Skip(1)] }));
        Assert.Contains("unknown filter", e.Message);
        Assert.Throws<IntegrityException>(() => DeltaManifestSerializer.VerifyAndParse(Encoding.UTF8.GetBytes(json.Replace("\"filter\":\"x86\"", "\"filter\":\"none\"")),
            signature, SigningKey.PublicKey));
    }

    /// <summary>
    /// Builds the delta with the option on (its stored manifest, signature and parsed form), then with it off, which must
    /// replace the stored delta rather than find it already built; returns both.
    /// </summary>
    private (DeltaManifest Delta, byte[] Bytes, byte[] Signature, DeltaManifest Replacement) BuildThenReplace(Func<bool, DeltaBuilder> builder, string from, string to)
    {
        var result = builder(true).Build("acme", from, to);
        var bytes = Store.ReadFile(result.ManifestPath)!;
        var signature = Store.ReadFile(result.ManifestPath + ".sig")!;
        var replacement = builder(false).Build("acme", from, to);
        Assert.False(replacement.AlreadyBuilt);
        return (DeltaManifestSerializer.VerifyAndParse(bytes, signature, SigningKey.PublicKey), bytes, signature, replacement.Delta);
    }

    /// <summary>2.0 of <see cref="Releases"/> plus two new x86-64 files that share their code with each other but not with 1.0.</summary>
    private Dictionary<string, byte[]> ChainedReleases()
    {
        var (_, v2) = Releases();
        var v3 = new Dictionary<string, byte[]>(v2)
        {
            ["bin/a-tool"] = ExecutableSamples.X86Program(150_000, 0, seed: 21),
            ["bin/b-tool"] = ExecutableSamples.X86Program(150_000, 2000, seed: 21),
        };
        Publish("3.0", v3);
        return v3;
    }

    [Fact]
    public void Chained_frames_copy_from_earlier_frames_in_schema_4_and_rebuild_exactly()
    {
        var v3 = ChainedReleases();
        DeltaBuilder Builder(bool chain) => new(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, ChainFrames = chain, OneFrame = false };
        // Chaining off replaces it with independent frames (for agents that read up to schema 3).
        var (delta, bytes, signature, independent) = BuildThenReplace(Builder, "2.0", "3.0");
        var json = Encoding.UTF8.GetString(bytes);

        Assert.Equal(DeltaManifest.ChainedReleaseSchema, delta.SchemaVersion);
        Assert.True(delta.Release!.Chained);
        Assert.Contains("\"schema\":4", json);
        Assert.Contains($"\"prefix\":\"{DeltaManifestSerializer.ChainedPrefix}\"", json);
        Assert.Equal(DeltaManifest.FilteredReleaseSchema, independent.SchemaVersion);
        // x86-64 gets its own transform only in schema 4; schema 3 keeps the x86 one.
        Assert.Equal(BranchFilterKind.X64, Assert.Single(delta.ReleaseFiles, f => f.Path == "bin/b-tool").Filter);
        Assert.Equal(BranchFilterKind.X86, Assert.Single(independent.ReleaseFiles, f => f.Path == "bin/b-tool").Filter);
        // bin/b-tool is coded from bin/a-tool, which only an earlier frame holds: independent frames cannot see it.
        Assert.True(delta.PatchBytes < independent.PatchBytes * 8 / 10, $"chained {delta.PatchBytes} B, independent {independent.PatchBytes} B");
        Assert.True(1L << delta.Release.WindowLog >= delta.Release.SourceLength + delta.ReleaseFiles.Sum(f => f.Size));

        // Any one file needs every frame up to its last: a later frame's prefix is the earlier frames' content.
        var lastFile = delta.ReleaseFiles[^1];
        Assert.Equal(Enumerable.Range(0, delta.Release.Frames.Count).ToArray(), ReleaseDeltaApplier.FramesFor(delta, f => f.Path == lastFile.Path).ToArray());
        Assert.Equal(ReleaseDeltaApplier.FramesFor(independent, f => f.Path == lastFile.Path).Max(), ReleaseDeltaApplier.FramesFor(delta, f => f.Path == lastFile.Path).Max());
        var rebuilt = Apply(delta, _trees["2.0"]);
        foreach (var f in delta.ReleaseFiles) Assert.Equal(v3[f.Path], rebuilt[f.Path]);
        Assert.Equal(ReleaseDeltaApplier.HeapNeeded(independent.Release!) - independent.Release!.Frames.Max(f => f.Stored),
            ReleaseDeltaApplier.HeapNeeded(delta.Release) - delta.Release.Frames.Max(f => f.Stored));

        // The chaining is signed content: without it, with another prefix, or in an older schema the manifest is refused.
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"schema\":4", "\"schema\":3"))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace($",\"prefix\":\"{DeltaManifestSerializer.ChainedPrefix}\"", ""))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace(DeltaManifestSerializer.ChainedPrefix, "reference"))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"schema\":4", "\"schema\":5"))));
        Assert.Throws<IntegrityException>(() => DeltaManifestSerializer.VerifyAndParse(Encoding.UTF8.GetBytes(json.Replace("\"filter\":\"x86-64\"", "\"filter\":\"x86\"")),
            signature, SigningKey.PublicKey));
        var small = delta with { Release = delta.Release with { WindowLog = PatchCodec.WindowLogFor(delta.Release.SourceLength, delta.Release.FrameContent) } };
        if (1L << small.Release!.WindowLog < delta.Release.SourceLength + delta.ReleaseFiles.Sum(f => f.Size))
            Assert.Contains("chained stream", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(small)).Message);
        var x64InSchema3 = independent with { Files = independent.Files.Select(f => f.Filter == BranchFilterKind.X86 ? f with { Filter = BranchFilterKind.X64 } : f).ToList() };
        Assert.Contains("needs schema 4", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(x64InSchema3)).Message);
    }

    [Fact]
    public void A_missing_chained_frame_only_breaks_files_not_the_later_frames_decoding()
    {
        var v3 = ChainedReleases();
        var delta = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, OneFrame = false }
            .Build("acme", "2.0", "3.0").Delta;
        var reference = Path.Combine(Dir.Path, "reference-missing");
        ReleaseDeltaApplier.WriteReference(delta.Release!, s => Path.Combine(_trees["2.0"], s.Path), reference);
        var output = delta.ReleaseFiles.ToDictionary(f => f.Path, f => new byte[f.Size]);
        var missing = delta.Release!.Frames[1].Id;
        var failed = ReleaseDeltaApplier.Apply(delta, reference, ReleaseDeltaApplier.FramesFor(delta, _ => true),
            id => id == missing ? null : Store.ReadChunk(id), ProductKey, (file, offset, bytes) => bytes.CopyTo(output[file.Path].AsSpan((int)offset)));
        Assert.Equal([1], failed.ToArray());
        // Files in frame 1 are wrong (zeros); the files before it are exact; nothing after it is trusted without its hash.
        var layout = ReleaseDeltaApplier.Layout(delta);
        var frame = delta.Release.FrameContent;
        foreach (var (f, offset) in layout.Where(l => l.Offset + l.File.Size <= frame))
            Assert.Equal(v3[f.Path], output[f.Path]);
        foreach (var (f, offset) in layout.Where(l => l.Offset < 2L * frame && l.Offset + l.File.Size > frame))
            Assert.NotEqual(v3[f.Path], output[f.Path]);
    }

    [Fact]
    public void Without_a_level_the_build_takes_the_highest_level_its_memory_budget_holds_and_fewer_frames_in_flight()
    {
        var (v1, _) = Releases();
        var first = new DeltaBuilder(Store, ProductKey, SigningKey) { Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, OneFrame = false }.Build("acme", "1.0", "2.0");
        Assert.Equal(PatchCodec.MaxLevel, first.Delta.Level);
        Assert.Equal(PatchCodec.MaxLevel, first.Memory!.Level);
        Assert.True(first.Memory.Bytes <= DeltaMemory.DefaultBudget);
        Assert.Equal(Apply(first.Delta, _trees["1.0"]).Keys.Order(), first.Delta.ReleaseFiles.Select(f => f.Path).Order());

        // A budget holding the coded bytes and exactly one level-19 frame: level 19, one frame at a time, rebuilt over the level-22 delta.
        var stream = first.Delta.Release!;
        var held = stream.SourceLength + first.Delta.ReleaseFiles.Sum(f => f.Size);
        Assert.Equal(v1.Values.Sum(b => (long)b.Length), stream.SourceLength);
        var budget = held + DeltaMemory.TaskBytes(19, stream.WindowLog, 64 * 1024);
        var tight = new DeltaBuilder(Store, ProductKey, SigningKey) { Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, MemoryBudget = budget, Parallelism = 4, OneFrame = false }
            .Build("acme", "1.0", "2.0");
        Assert.False(tight.AlreadyBuilt);
        Assert.Equal((19, 1), (tight.Delta.Level, tight.Memory!.Parallelism));
        Assert.True(tight.Memory.Bytes <= budget, $"{tight.Memory.Bytes} > {budget}");
        var rebuilt = Apply(tight.Delta, _trees["1.0"]);
        Assert.Equal(first.Delta.ReleaseFiles.Select(f => f.Sha256).Order(),
            rebuilt.Values.Select(b => Convert.ToHexStringLower(SHA256.HashData(b))).Order());
    }

    [Fact]
    public void A_set_level_the_memory_budget_cannot_hold_is_refused_naming_the_budget_and_nothing_is_written()
    {
        Releases();
        var builder = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 22, MemoryBudget = 200L << 20, FrameContent = 64 * 1024 };
        var ex = Assert.Throws<InvalidInputException>(() => builder.Build("acme", "1.0", "2.0"));
        Assert.Contains("at zstd level 22, over the 209715200-byte memory budget", ex.Message);
        Assert.Contains("Deltas:MemoryBudgetBytes", ex.Message);
        Assert.Contains("lower or unset the level", ex.Message);
        var path = StoreLayout.DeltaManifestPath("acme", "1.0", "2.0");
        Assert.Null(Store.ReadFile(path));
        Assert.Null(Store.ReadFile(StoreLayout.SignaturePathFor(path)));
    }

    private DeltaBuilder OneFrameBuilder(int objectContent = 4096) =>
        new(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, ObjectContent = objectContent };

    [Fact]
    public void One_frame_stream_is_split_into_objects_in_schema_5_and_rebuilds_exactly()
    {
        var v3 = ChainedReleases();
        var (delta, bytes, signature, frames) = BuildThenReplace(one => one ? OneFrameBuilder()
            : new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, OneFrame = false }, "2.0", "3.0");
        var json = Encoding.UTF8.GetString(bytes);
        var stream = delta.Release!;

        Assert.Equal(DeltaManifest.OneFrameReleaseSchema, delta.SchemaVersion);
        Assert.True(stream.OneFrame && stream.Chained);
        Assert.Contains("\"schema\":5", json);
        Assert.Contains($"\"coding\":\"{DeltaManifestSerializer.OneFrameCoding}\"", json);
        Assert.Contains("\"objects\":[", json);
        Assert.DoesNotContain("frameContent", json);
        Assert.Equal(DeltaManifest.ChainedReleaseSchema, frames.SchemaVersion);
        // The compressed frame is cut at exactly the object size: every object but the last is full.
        Assert.True(stream.Frames.Count >= 3, $"{stream.Frames.Count} objects");
        Assert.All(stream.Frames.SkipLast(1), p => Assert.Equal(4096, p.Length));
        Assert.InRange(stream.Frames[^1].Length, 1, 4096);
        Assert.All(stream.Frames, p => Assert.True(Store.ChunkExists(p.Id)));
        Assert.True(1L << stream.WindowLog >= stream.SourceLength + delta.ReleaseFiles.Sum(f => f.Size));
        // One frame matches across the whole stream as the chained frames do, without their per-frame restarts.
        Assert.True(delta.PatchBytes <= frames.PatchBytes + stream.Frames.Count * 40L, $"one frame {delta.PatchBytes} B, chained frames {frames.PatchBytes} B");

        // Any file needs every object (its bytes' place in the compressed frame is unknown); the heap holds one object, its plaintext and the copy buffer.
        Assert.Equal(Enumerable.Range(0, stream.Frames.Count).ToArray(), ReleaseDeltaApplier.FramesFor(delta, f => f.Path == delta.ReleaseFiles[0].Path).ToArray());
        Assert.Empty(ReleaseDeltaApplier.FramesFor(delta, _ => false));
        Assert.Equal(stream.Frames.Max(p => p.Stored) + stream.Frames.Max(p => p.Length) + ReleaseDeltaApplier.OneFrameCopyBuffer, ReleaseDeltaApplier.HeapNeeded(stream));
        var rebuilt = Apply(delta, _trees["2.0"]);
        foreach (var f in delta.ReleaseFiles) Assert.Equal(v3[f.Path], rebuilt[f.Path]);

        // Strict: the coding and the object list are signed content; schema 4 fields or another coding are refused.
        Assert.Equal(stream.Frames, DeltaManifestSerializer.VerifyAndParse(bytes, signature, SigningKey.PublicKey).Release!.Frames);
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"schema\":5", "\"schema\":4"))));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"schema\":5", "\"schema\":6"))));
        Assert.Contains("release.coding", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"one-frame\"", "\"two-frames\"")))).Message);
        Assert.Contains("release.frameContent", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(Encoding.UTF8.GetBytes(json.Replace("\"coding\":\"one-frame\"", "\"coding\":\"one-frame\",\"frameContent\":65536")))).Message);
        Assert.Contains("lists no object", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(delta with { Release = stream with { Frames = [] } })).Message);
        Assert.Contains("no frameContent", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(delta with { Release = stream with { FrameContent = 65536 } })).Message);
        Assert.Contains("length 0", Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Serialize(delta with { Release = stream with { Frames = [stream.Frames[0] with { Length = 0, Stored = 40 }] } })).Message);
        Assert.Throws<IntegrityException>(() => DeltaManifestSerializer.VerifyAndParse(Encoding.UTF8.GetBytes(json.Replace(stream.Frames[0].Id.Hex, stream.Frames[1].Id.Hex)), signature, SigningKey.PublicKey));
    }

    /// <summary>Applies a one-frame delta with <paramref name="readObject"/>; returns the failed objects, the rebuilt files and the log.</summary>
    private (int[] Failed, Dictionary<string, byte[]> Output, List<string> Log) ApplyOneFrame(DeltaManifest delta, Func<Orchestrator.ChunkStore.Codec.ChunkId, byte[]?> readObject, string name)
    {
        var reference = Path.Combine(Dir.Path, name);
        ReleaseDeltaApplier.WriteReference(delta.Release!, s => Path.Combine(_trees["2.0"], s.Path), reference);
        var output = delta.ReleaseFiles.ToDictionary(f => f.Path, f => new byte[f.Size]);
        var log = new List<string>();
        var failed = ReleaseDeltaApplier.Apply(delta, reference, ReleaseDeltaApplier.FramesFor(delta, _ => true), readObject, ProductKey,
            (file, offset, bytes) => bytes.CopyTo(output[file.Path].AsSpan((int)offset)), (i, why) => log.Add($"{i}: {why}"));
        return (failed.ToArray(), output, log);
    }

    [Fact]
    public void A_corrupted_truncated_or_missing_object_stops_the_one_frame_stream_there_with_a_clear_error()
    {
        var v3 = ChainedReleases();
        var delta = OneFrameBuilder().Build("acme", "2.0", "3.0").Delta;
        var objects = delta.Release!.Frames;
        var n = objects.Count;
        var lastFile = delta.ReleaseFiles[^1];

        var corrupt = objects[1].Id;
        var (failed, output, log) = ApplyOneFrame(delta, id =>
        {
            var b = Store.ReadChunk(id)!;
            if (id == corrupt) b[^5] ^= 1;
            return b;
        }, "ref-corrupt");
        Assert.Equal(Enumerable.Range(1, n - 1).ToArray(), failed);
        Assert.StartsWith("1: ", Assert.Single(log));
        Assert.NotEqual(v3[lastFile.Path], output[lastFile.Path]);

        var truncated = objects[n - 1].Id;
        (failed, output, log) = ApplyOneFrame(delta, id => id == truncated ? Store.ReadChunk(id)![..^3] : Store.ReadChunk(id), "ref-truncated");
        Assert.Equal([n - 1], failed);
        Assert.NotEqual(v3[lastFile.Path], output[lastFile.Path]);

        // The last object absent: the stream ends before the frame does, named as such.
        (failed, _, log) = ApplyOneFrame(delta, id => id == truncated ? null : Store.ReadChunk(id), "ref-missing");
        Assert.Equal([n - 1], failed);
        Assert.Contains("not available", Assert.Single(log));

        // An object list cut short (a manifest whose objects decode to less than its files) is refused too.
        var cut = delta with { Release = delta.Release with { Frames = objects.SkipLast(1).ToList() } };
        (failed, _, log) = ApplyOneFrame(cut, Store.ReadChunk, "ref-cut");
        Assert.Equal([n - 2], failed);
        Assert.Contains("before the frame is complete", Assert.Single(log));
    }

    [Fact]
    public void The_one_frame_decoder_is_bounded_by_the_declared_window_and_the_declared_stream_length()
    {
        var big = TestData.Random(9_000_000, 31);
        Publish("1.0", new Dictionary<string, byte[]> { ["big.bin"] = big });
        var v2 = new Dictionary<string, byte[]> { ["big.bin"] = Stamped(big, 2), ["new.bin"] = TestData.Random(300_000, 32) };
        Publish("2.0", v2);
        var delta = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 1, Method = DeltaBuildMethod.Release, ObjectContent = 64 * 1024 }.Build("acme", "1.0", "2.0").Delta;
        Assert.Equal(25, delta.Release!.WindowLog);
        Assert.Equal(v2["big.bin"], Apply(delta, _trees["1.0"])["big.bin"]);

        (int[] Failed, List<string> Log) Run(DeltaManifest d, string name)
        {
            var reference = Path.Combine(Dir.Path, name);
            ReleaseDeltaApplier.WriteReference(d.Release!, s => Path.Combine(_trees["1.0"], s.Path), reference);
            var log = new List<string>();
            var failed = ReleaseDeltaApplier.Apply(d, reference, ReleaseDeltaApplier.FramesFor(d, _ => true), Store.ReadChunk, ProductKey,
                (_, _, _) => { }, (i, why) => log.Add(why));
            return (failed.ToArray(), log);
        }
        // The frame spans several objects (streamed, not decoded in one call): one needing a 9 MB window decoded with an
        // 8 MiB bound is refused by zstd.
        Assert.True(delta.Release.Frames.Count >= 3);
        var (failed, log) = Run(delta with { Release = delta.Release with { WindowLog = 23 } }, "ref-window");
        Assert.Equal(Enumerable.Range(0, delta.Release.Frames.Count).ToArray(), failed);
        Assert.Contains("zstd", Assert.Single(log));
        // A stream declared one byte shorter than the frame decodes to: the output bound stops it.
        var shorter = delta with { Files = delta.Files.Select(f => f.Path == "new.bin" ? f with { Size = f.Size - 1 } : f).ToList() };
        (failed, log) = Run(shorter, "ref-short");
        Assert.NotEmpty(failed);
        Assert.Single(log);
    }

    [Fact]
    public void A_budget_that_holds_frame_sized_tasks_but_not_one_frame_over_the_stream_gets_chained_frames()
    {
        var (v1, v2) = Releases();
        long sourceLength = v1.Values.Sum(b => (long)b.Length);
        var streamLength = v2.Where(f => !v1.Values.Any(b => b.AsSpan().SequenceEqual(f.Value))).Sum(f => (long)f.Value.Length);
        var held = sourceLength + streamLength;
        // Room for one 64 KiB frame's task, not for the whole stream's output.
        var budget = held + DeltaMemory.TaskBytes(3, PatchCodec.WindowLogFor(sourceLength, Math.Max(streamLength, 64 * 1024)), 64 * 1024);
        Assert.True(budget < held + DeltaMemory.TaskBytes(3, PatchCodec.WindowLogFor(sourceLength, streamLength), streamLength));
        var built = new DeltaBuilder(Store, ProductKey, SigningKey) { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 64 * 1024, MemoryBudget = budget }
            .Build("acme", "1.0", "2.0");
        Assert.Equal(DeltaManifest.ChainedReleaseSchema, built.Delta.SchemaVersion);
        Assert.True(built.Memory!.Bytes <= budget);
        Assert.Equal(built.Delta.ReleaseFiles.Count, Apply(built.Delta, _trees["1.0"]).Count);
    }
}
