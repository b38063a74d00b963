using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Protocol;
using Xunit.Abstractions;

namespace Orchestrator.DeviceAgent.Tests.Session;

public sealed class UpdateSessionTests(ITestOutputHelper output) : GatewaySessionTestBase
{
    internal static byte[] Bytes(int seed, int length)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    internal static Dictionary<string, byte[]> V1() => new()
    {
        ["bin/app"] = Bytes(1, 700_000),
        ["lib/core.so"] = Bytes(2, 400_000),
        ["share/readme.txt"] = "hello v1"u8.ToArray(),
        ["empty.cfg"] = [],
    };

    internal static Dictionary<string, byte[]> V2()
    {
        var v2 = V1();
        var app = (byte[])v2["bin/app"].Clone();
        Bytes(9, 1000).CopyTo(app, 350_000); // one edit in the middle: most chunks stay the same
        v2["bin/app"] = app;
        v2["share/readme.txt"] = "hello v2"u8.ToArray();
        v2.Remove("empty.cfg");
        v2["lib/plugin.so"] = Bytes(3, 100_000);
        return v2;
    }

    private UpdateSession Session(TimeProvider? time = null) =>
        new(Device.Config, Device.Layout, Device.Hidden,
            new HttpGatewayClient(Http, Gateway.BaseUrl, Device.Config.DeviceId, TestDevice.Credential, TimeSpan.FromSeconds(5)),
            Http, log: output.WriteLine, time: time);

    private void Assign(PublishResult r, IReadOnlyList<string>? mirrors = null) =>
        Gateway.Decide = FakeGateway.Assign(r.VersionId, r.Version, r.ManifestPath, r.InventoryDigest, mirrors);

    private string ClientDigest() => TreeInventory.Digest(TreeInventory.Scan(Device.Layout.Client));

    private async Task<PublishResult> InstallV1()
    {
        var v1 = Store.Publish("1.0", V1());
        Assign(v1);
        var result = await Session().RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(UpdateAction.Upgrade, result.Action);
        return v1;
    }

    [Fact]
    public async Task First_install_builds_exactly_the_published_tree_and_reports_it()
    {
        var v1 = await InstallV1();
        Assert.Equal(v1.InventoryDigest, ClientDigest());
        foreach (var (path, content) in V1())
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(Device.Layout.Client, path)));
        Assert.Equal(new InstalledVersion(v1.VersionId, "1.0"), Device.Hidden.ReadInstalledVersion());
        var completion = Assert.Single(Gateway.Completions);
        Assert.Equal((v1.VersionId, v1.InventoryDigest, CompletionReport.MethodChunks), (completion.InstalledVersionId, completion.InventoryDigest, completion.Method));
        Assert.True(completion.BytesDownloaded > 1_000_000, $"reported {completion.BytesDownloaded} bytes");
        Assert.NotEmpty(Gateway.Progress);
        Assert.False(Directory.Exists(Device.Layout.Staging));

        var again = await Session().RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(UpdateAction.None, again.Action);
        Assert.Equal(v1.InventoryDigest, Gateway.CheckIns.Last().InventoryDigest);
        Assert.Equal(v1.VersionId, Gateway.CheckIns.Last().InstalledVersionId);
    }

    [Fact]
    public async Task Upgrade_downloads_only_the_chunks_the_device_lacks()
    {
        await InstallV1();
        var v2 = Store.Publish("2.0", V2());
        Assign(v2);
        var before = Gateway.StoreBytesServed;
        var result = await Session().RunOnceAsync(1, CancellationToken.None);

        Assert.Equal(v2.InventoryDigest, ClientDigest());
        Assert.False(File.Exists(Path.Combine(Device.Layout.Client, "empty.cfg")));
        var manifest = Store.Manifest(v2);
        var total = manifest.DistinctChunks().Count;
        Assert.True(result.ChunksReused > 0, "unchanged chunks of bin/app must come from the local file");
        Assert.True(result.ChunksDownloaded < total / 2, $"downloaded {result.ChunksDownloaded} of {total} chunks");
        var served = Gateway.StoreBytesServed - before;
        output.WriteLine($"v2 is {manifest.TotalBytes} bytes; the upgrade fetched {served} bytes ({result.ChunksDownloaded}/{total} chunks)");
        Assert.True(served < manifest.TotalBytes / 3, $"fetched {served} bytes for a {manifest.TotalBytes}-byte release");
    }

    [Fact]
    public async Task Repair_fetches_only_the_chunks_of_damaged_or_missing_files()
    {
        var v1 = await InstallV1();
        var app = Path.Combine(Device.Layout.Client, "bin", "app");
        var damaged = File.ReadAllBytes(app);
        damaged[10] ^= 0xff;
        File.WriteAllBytes(app, damaged);
        File.Delete(Path.Combine(Device.Layout.Client, "share", "readme.txt"));
        File.WriteAllText(Path.Combine(Device.Layout.Client, "dropped.txt"), "not part of the release");

        var manifest = Store.Manifest(v1);
        var before = Gateway.StoreRequests;
        var result = await Session().RunOnceAsync(1, CancellationToken.None);

        Assert.Equal(UpdateAction.Repair, result.Action);
        Assert.Equal(v1.InventoryDigest, ClientDigest());
        // Only the damaged first chunk of bin/app and the one chunk of readme.txt are fetched.
        Assert.Equal(2, result.ChunksDownloaded);
        // Manifest, signature, pack index, and one range per chunk (they lie far apart in the release's pack).
        Assert.Equal(2 + 1 + 2, Gateway.StoreRequests - before);
        Assert.True(result.ChunksReused >= manifest.Files.Single(f => f.Path == "bin/app").Chunks.Count - 1);
    }

    [Fact]
    public async Task A_lost_version_record_stays_unknown_and_a_device_without_a_director_installs_nothing()
    {
        // Issue 14: a damaged record used to be reset to 0 by recover, which let any old signed release in. It now stays
        // unknown; a device provisioned with a bare release key has no director-signed floor to learn it from.
        var v1 = await InstallV1();
        File.WriteAllBytes(Device.Layout.Hidden(HiddenItem.InstalledVersion), [1, 2, 3]);
        var report = new ZoneProvisioner(Device.Layout, Device.Hidden).RecoverFromVirtual();
        Assert.Contains(report.Rebuilt, r => r.StartsWith("installed version record left unknown"));
        Assert.Null(Device.Hidden.ReadVersionRecord());
        Assert.Equal([1, 2, 3], File.ReadAllBytes(Device.Layout.Hidden(HiddenItem.InstalledVersion)));

        var e = await Assert.ThrowsAsync<SessionFailedException>(() => Session().RunOnceAsync(1, CancellationToken.None));
        Assert.Contains("rollback floor is unknown", e.Message);
        Assert.Equal(0, Gateway.CheckIns.Last().InstalledVersionId); // reported as 0, never recorded as 0
        Assert.Null(Device.Hidden.ReadVersionRecord());
        Assert.Equal(v1.InventoryDigest, ClientDigest());
    }

    [Fact]
    public async Task Falls_back_to_a_mirror_when_the_gateway_store_is_down()
    {
        await using var mirror = await TestServer.StartAsync(async ctx =>
        {
            var full = Path.Combine(Store.Root, ctx.Request.Path.Value!.TrimStart('/'));
            if (!File.Exists(full)) { ctx.Response.StatusCode = 404; return; }
            // A static server honouring Range, as a mirror of a store whose chunks live only in packs must.
            await Microsoft.AspNetCore.Http.Results.File(full, "application/octet-stream", enableRangeProcessing: true).ExecuteAsync(ctx);
        });
        Gateway.StoreDown = true;
        var v1 = Store.Publish("1.0", V1());
        Assign(v1, mirrors: [mirror.BaseUrl]);
        await Session().RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(v1.InventoryDigest, ClientDigest());
        Assert.Equal(0, Gateway.StoreBytesServed);
    }

    [Fact]
    public async Task Retries_until_success_and_reports_each_failure()
    {
        var v1 = Store.Publish("1.0", V1(), packs: false);
        Assign(v1);
        // The first attempt finds one chunk missing from every source; the operator restores it meanwhile.
        var chunk = Store.Manifest(v1).Files.First(f => f.Chunks.Count > 0).Chunks[0].Id;
        var chunkFile = Path.Combine(Store.Root, Orchestrator.ChunkStore.Storage.StoreLayout.ChunkPath(chunk));
        var saved = File.ReadAllBytes(chunkFile);
        File.Delete(chunkFile);
        Gateway.Decide = req =>
        {
            if (Gateway.CheckIns.Count == 2) File.WriteAllBytes(chunkFile, saved);
            return FakeGateway.Assign(v1.VersionId, v1.Version, v1.ManifestPath, v1.InventoryDigest)(req);
        };
        var result = await Session().RunUntilSuccessAsync(CancellationToken.None);
        Assert.Equal(2, result.Attempts);
        var failure = Assert.Single(Gateway.Failures);
        Assert.Equal(FailureStage.Download, failure.Stage);
        Assert.Equal(v1.VersionId, failure.TargetVersionId);
        Assert.Equal(v1.InventoryDigest, ClientDigest());
    }

    [Fact]
    public async Task A_busy_gateway_is_retried_no_sooner_than_its_retry_after()
    {
        var v1 = Store.Publish("1.0", V1());
        Assign(v1);
        Gateway.BusyCheckIns = 1;
        var started = DateTime.UtcNow;
        var result = await Session().RunUntilSuccessAsync(CancellationToken.None);
        Assert.Equal(2, result.Attempts);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(0.95), "retried before Retry-After: 1 elapsed");
        Assert.Equal(v1.InventoryDigest, ClientDigest());
        Assert.Empty(Gateway.Failures); // a check-in that did not get through is not reported as a failed download
    }

    [Fact]
    public async Task A_small_grant_spreads_the_download_over_several_check_ins_without_refetching()
    {
        using var device = new TestDevice(Gateway.BaseUrl, contentKey: Store.ContentKey.ToBytes(), trustRoot: Store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 20 });
        var v1 = Store.Publish("1.0", V1());
        var grant = new DownloadGrant(400_000, 0, DateTimeOffset.UtcNow.AddHours(1));
        Gateway.Decide = FakeGateway.Assign(v1.VersionId, v1.Version, v1.ManifestPath, v1.InventoryDigest, grant: grant);
        var session = new UpdateSession(device.Config, device.Layout, device.Hidden,
            new HttpGatewayClient(Http, Gateway.BaseUrl, device.Config.DeviceId, TestDevice.Credential, TimeSpan.FromSeconds(5)), Http, log: output.WriteLine);
        var result = await session.RunUntilSuccessAsync(CancellationToken.None);

        Assert.Equal(v1.InventoryDigest, TreeInventory.Digest(TreeInventory.Scan(device.Layout.Client)));
        Assert.True(result.Attempts >= 3, $"1.1 MB under a 400 kB grant took {result.Attempts} check-ins");
        Assert.Empty(Gateway.Failures); // being paced by the server is not a device failure
        // Each check-in only adds what is missing: total served stays close to the release size.
        var stored = Store.Manifest(v1).DistinctChunks().Sum(id => TestStore.StoredLength(Store.Root, id));
        Assert.True(Gateway.StoreBytesServed < stored + result.Attempts * 300_000, $"served {Gateway.StoreBytesServed} bytes for {stored} stored bytes");
    }

    // ---- every bad input is rejected with nothing installed ----

    private async Task AssertRejected(string expectedInMessage, TimeProvider? time = null)
    {
        var treeBefore = ClientDigest();
        var versionBefore = Device.Hidden.ReadInstalledVersion();
        var e = await Assert.ThrowsAsync<SessionFailedException>(() => Session(time).RunOnceAsync(1, CancellationToken.None));
        output.WriteLine($"rejected at {e.Stage}: {e.Message}");
        Assert.Contains(expectedInMessage, e.Message);
        Assert.Equal(treeBefore, ClientDigest());
        Assert.Equal(versionBefore, Device.Hidden.ReadInstalledVersion());
        Assert.False(File.Exists(Device.Layout.Journal));
        Assert.Empty(Gateway.Completions.Skip(versionBefore.VersionId == 0 ? 0 : 1));
    }

    [Fact]
    public async Task Rejects_a_bad_signature()
    {
        var v1 = Store.Publish("1.0", V1());
        var sig = Path.Combine(Store.Root, v1.ManifestPath + ".sig");
        var bytes = File.ReadAllBytes(sig);
        bytes[0] ^= 1;
        File.WriteAllBytes(sig, bytes);
        Assign(v1);
        await AssertRejected("signature does not verify");
    }

    [Fact]
    public async Task Rejects_a_manifest_signed_by_another_key()
    {
        using var other = new TestStore();
        var foreign = other.Publish("1.0", V1());
        var rel = Store.WriteSigned("acme", "9.9", other.ManifestBytes(foreign));
        File.WriteAllBytes(Path.Combine(Store.Root, rel + ".sig"), File.ReadAllBytes(Path.Combine(other.Root, foreign.ManifestPath + ".sig")));
        Gateway.Decide = FakeGateway.Assign(foreign.VersionId, "9.9", rel, foreign.InventoryDigest);
        await AssertRejected("signature does not verify");
    }

    [Fact]
    public async Task Rejects_an_older_version_no_rollback()
    {
        var v1 = Store.Publish("1.0", V1());
        var v2 = Store.Publish("2.0", V2());
        Assign(v2);
        await Session().RunOnceAsync(1, CancellationToken.None);
        Gateway.Decide = req => new CheckInResponse(UpdateAction.Upgrade, "1.0", v1.VersionId, v1.ManifestPath, null, null, 60, null);
        await AssertRejected("rollback refused");
    }

    [Fact]
    public async Task Rejects_another_product()
    {
        var other = Store.Publish("1.0", V1(), product: "globex");
        Assign(other);
        await AssertRejected("is for product 'globex'");
    }

    [Fact]
    public async Task Rejects_an_expired_manifest()
    {
        var v1 = Store.Publish("1.0", V1(), lifetime: TimeSpan.FromDays(1));
        Gateway.Decide = FakeGateway.Assign(v1.VersionId, v1.Version, v1.ManifestPath, v1.InventoryDigest,
            grant: new DownloadGrant(long.MaxValue / 2, 0, DateTimeOffset.UtcNow.AddDays(10)));
        await AssertRejected("expired", new ShiftedTime(TimeSpan.FromDays(2)));
    }

    [Fact]
    public async Task Rejects_a_tampered_chunk_everywhere()
    {
        // Chunk objects only (a tampered pack range falls back to them: AgentPackTests).
        var v1 = Store.Publish("1.0", V1(), packs: false);
        var chunk = Store.Manifest(v1).Files.Single(f => f.Path == "lib/core.so").Chunks[0].Id;
        var file = Path.Combine(Store.Root, Orchestrator.ChunkStore.Storage.StoreLayout.ChunkPath(chunk));
        var bytes = File.ReadAllBytes(file);
        bytes[^20] ^= 1;
        File.WriteAllBytes(file, bytes);
        Assign(v1);
        await AssertRejected("do not hash to chunk id");
    }

    [Fact]
    public async Task Rejects_path_traversal_in_a_signed_manifest()
    {
        var v1 = Store.Publish("1.0", V1());
        var json = System.Text.Encoding.UTF8.GetString(Store.ManifestBytes(v1)).Replace("\"path\":\"bin/app\"", "\"path\":\"../../escape\"");
        var rel = Store.WriteSigned("acme", "1.1", System.Text.Encoding.UTF8.GetBytes(json));
        Gateway.Decide = FakeGateway.Assign(v1.VersionId, "1.1", rel, v1.InventoryDigest);
        await AssertRejected("'..' segment");
        Assert.False(File.Exists(Path.Combine(Device.Layout.Zones.Free, "..", "escape")));
    }

    [Fact]
    public async Task Rejects_a_decompression_bomb()
    {
        // 256 KiB of zeros is one chunk that zstd shrinks to a few dozen bytes; a signed manifest that claims it
        // decodes to 1000 bytes must not make the agent inflate it.
        var files = V1();
        files["zeros.bin"] = new byte[256 * 1024];
        var v1 = Store.Publish("1.0", files, packs: false); // the forged 1.1 has no pack index: its chunks are fetched as objects
        var m = Store.Manifest(v1);
        var bombed = m with
        {
            Version = "1.1",
            Files = m.Files.Select(f => f.Path != "zeros.bin" ? f : f with { Size = 1000, Chunks = [f.Chunks[0] with { Length = 1000 }] }).ToList(),
        };
        var rel = Store.WriteSigned("acme", "1.1", ManifestSerializer.Serialize(bombed));
        Gateway.Decide = FakeGateway.Assign(v1.VersionId, "1.1", rel, v1.InventoryDigest);
        await AssertRejected("the manifest expects 1000");
    }

    [Fact]
    public async Task Rejects_a_manifest_path_outside_the_store_layout()
    {
        Gateway.Decide = _ => new CheckInResponse(UpdateAction.Upgrade, "1.0", 1, "../../etc/passwd", null, null, 60, null);
        await AssertRejected("not a store manifest path");
    }

    private sealed class ShiftedTime(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + shift;
    }
}
