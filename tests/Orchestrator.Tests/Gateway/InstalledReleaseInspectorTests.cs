using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>The gateway's comparison of a device's inventory with the published manifest of its installed version.</summary>
public sealed class InstalledReleaseInspectorTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "orch-inspect-" + Guid.NewGuid().ToString("N"));
    private readonly FileSystemStore _store;
    private readonly PublishResult _release;
    private readonly Dictionary<string, string> _hashes = new();

    public InstalledReleaseInspectorTests()
    {
        var tree = Path.Combine(_root, "tree");
        Directory.CreateDirectory(Path.Combine(tree, "bin"));
        foreach (var (path, text) in new[] { ("bin/app", "application"), ("readme.txt", "hello"), ("lib.so", "library") })
        {
            File.WriteAllText(Path.Combine(tree, path), text);
            _hashes[path] = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        }
        _store = FileSystemStore.Open(Path.Combine(_root, "store"), create: true);
        using var signing = ReleaseSigningKey.Generate();
        _release = new Publisher(_store, ContentKey.Generate(), signing).Publish(new PublishRequest("acme", "1.0.0", tree));
    }

    public void Dispose() { try { Directory.Delete(_root, true); } catch (IOException) { } }

    private List<InventoryEntry> Inventory() => _hashes.Select(h => new InventoryEntry(h.Key, h.Value)).ToList();

    [Fact]
    public void Intact_install_has_the_manifest_digest_and_no_differences()
    {
        var facts = new InstalledReleaseInspector(_store).Inspect(new CheckInRequest("acme", _release.VersionId, _release.InventoryDigest, Inventory(), null));
        Assert.Equal(_release.InventoryDigest, facts.ExpectedDigest);
        Assert.Empty(facts.DifferingPaths);
    }

    [Fact]
    public void Intact_installs_of_one_version_get_the_same_facts_whatever_was_inspected_between_them()
    {
        var inspector = new InstalledReleaseInspector(_store);
        var first = inspector.Inspect(new CheckInRequest("acme", _release.VersionId, _release.InventoryDigest, Inventory(), null));
        var damaged = Inventory().Select(e => e.Path == "bin/app" ? e with { Sha256 = new string('0', 64) } : e).ToList();
        Assert.Equal(["bin/app"], inspector.Inspect(new CheckInRequest("acme", _release.VersionId, "other", damaged, null)).DifferingPaths);
        var second = inspector.Inspect(new CheckInRequest("acme", _release.VersionId, _release.InventoryDigest, null, null));
        Assert.Same(first, second);
        Assert.Equal((_release.InventoryDigest, "1.0.0"), (second.ExpectedDigest, second.InstalledVersion));
        Assert.Empty(second.DifferingPaths);
    }

    [Fact]
    public void Damaged_and_missing_files_are_named()
    {
        var inventory = Inventory().Where(e => e.Path != "lib.so").Select(e => e.Path == "bin/app" ? e with { Sha256 = new string('0', 64) } : e).ToList();
        var facts = new InstalledReleaseInspector(_store).Inspect(new CheckInRequest("acme", _release.VersionId, "other", inventory, null));
        Assert.Equal(_release.InventoryDigest, facts.ExpectedDigest);
        Assert.Equal(["bin/app", "lib.so"], facts.DifferingPaths.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Extra_local_files_alone_are_not_a_repair()
    {
        var inventory = Inventory().Append(new InventoryEntry("user/notes.txt", new string('1', 64))).ToList();
        var facts = new InstalledReleaseInspector(_store).Inspect(new CheckInRequest("acme", _release.VersionId, "with-extras", inventory, null));
        Assert.Null(facts.ExpectedDigest);
        Assert.Empty(facts.DifferingPaths);
    }

    [Fact]
    public void Damaged_install_names_version_and_manifest()
    {
        var facts = new InstalledReleaseInspector(_store).Inspect(new CheckInRequest("acme", _release.VersionId, "other", null, null));
        Assert.Equal("1.0.0", facts.InstalledVersion);
        Assert.Equal(_release.ManifestPath, facts.InstalledManifestPath);
    }

    [Fact]
    public void Without_a_file_list_a_differing_digest_suspects_every_file()
    {
        var facts = new InstalledReleaseInspector(_store).Inspect(new CheckInRequest("acme", _release.VersionId, "other", null, null));
        Assert.Equal(3, facts.DifferingPaths.Count);
    }

    [Fact]
    public void Nothing_installed_or_unlisted_version_has_no_expected_digest()
    {
        var inspector = new InstalledReleaseInspector(_store);
        Assert.Null(inspector.Inspect(new CheckInRequest("acme", 0, "x", null, null)).ExpectedDigest);
        Assert.Null(inspector.Inspect(new CheckInRequest("acme", 99, "x", null, null)).ExpectedDigest);
    }

    [Fact]
    public void A_release_published_meanwhile_is_known_to_the_next_check_in_that_reports_it()
    {
        var clock = new StepClock();
        var inspector = new InstalledReleaseInspector(_store, clock);
        Assert.NotNull(inspector.Inspect(new CheckInRequest("acme", _release.VersionId, "other", null, null)).ExpectedDigest);
        var tree = Path.Combine(_root, "tree2");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "readme.txt"), "second");
        using var signing = ReleaseSigningKey.Generate();
        var second = new Publisher(_store, ContentKey.Generate(), signing).Publish(new PublishRequest("acme", "2.0.0", tree));

        // Within the recheck interval: the index in hand does not list 2.0.0, so the one on disk is read.
        var facts = inspector.Inspect(new CheckInRequest("acme", second.VersionId, "other", null, null));
        Assert.Equal((second.InventoryDigest, "2.0.0"), (facts.ExpectedDigest, facts.InstalledVersion));
        Assert.Equal(_release.InventoryDigest, inspector.Inspect(new CheckInRequest("acme", _release.VersionId, "other", null, null)).ExpectedDigest);
    }

    [Fact]
    public void A_listed_version_is_answered_from_the_index_in_hand_until_the_recheck_interval_has_passed()
    {
        var clock = new StepClock();
        var inspector = new InstalledReleaseInspector(_store, clock);
        var intact = new CheckInRequest("acme", _release.VersionId, _release.InventoryDigest, null, null);
        Assert.Equal("1.0.0", inspector.Inspect(intact).InstalledVersion);
        // A damaged index.json shows whether the file is looked at: not within the interval, at once after it.
        var indexPath = _store.FullPath(StoreLayout.IndexPath("acme"));
        File.WriteAllText(indexPath, "{ not an index");
        clock.Advance(InstalledReleaseInspector.IndexRecheckInterval - TimeSpan.FromMilliseconds(1));
        Assert.Equal("1.0.0", inspector.Inspect(intact).InstalledVersion);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        var ex = Assert.Throws<InvalidOperationException>(() => inspector.Inspect(intact));
        Assert.Contains("Store index of 'acme' is unreadable", ex.Message);
    }

    [Fact]
    public void A_version_removed_by_gc_within_the_recheck_interval_is_unknown_not_a_broken_store()
    {
        var clock = new StepClock();
        var tree = Path.Combine(_root, "tree2");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "readme.txt"), "second");
        using var signing = ReleaseSigningKey.Generate();
        var second = new Publisher(_store, ContentKey.Generate(), signing).Publish(new PublishRequest("acme", "2.0.0", tree));
        var inspector = new InstalledReleaseInspector(_store, clock);
        Assert.Equal("2.0.0", inspector.Inspect(new CheckInRequest("acme", second.VersionId, "other", null, null)).InstalledVersion);

        // gc drops 1.0.0 (its manifest and its line in index.json) while the inspector still holds the older index.
        var report = new StoreMaintenance(_store).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.Contains("acme/1.0.0", report.VersionsRemoved);
        var facts = inspector.Inspect(new CheckInRequest("acme", _release.VersionId, "other", null, null));

        Assert.Null(facts.ExpectedDigest);
        Assert.Null(facts.InstalledVersion);
        Assert.Equal("2.0.0", inspector.Inspect(new CheckInRequest("acme", second.VersionId, "other", null, null)).InstalledVersion);
    }

    // A clock that moves only when told to.
    private sealed class StepClock : TimeProvider
    {
        private long _ticks = 1_000_000;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public void Unknown_product_is_rejected_as_404()
    {
        var ex = Assert.Throws<DeviceRequestRejectedException>(() => new InstalledReleaseInspector(_store).Inspect(new CheckInRequest("nope", 1, "x", null, null)));
        Assert.Equal(404, ex.StatusCode);
        Assert.Equal("unknown_product", ex.Error);
    }
}
