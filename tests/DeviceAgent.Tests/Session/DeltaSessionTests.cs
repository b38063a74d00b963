using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.Messages.Protocol;
using Xunit.Abstractions;

namespace Orchestrator.DeviceAgent.Tests.Session;

/// <summary>The agent's delta path against a real store, a real delta build and a real HTTP gateway.</summary>
public sealed class DeltaSessionTests(ITestOutputHelper output) : GatewaySessionTestBase
{
    /// <summary>A patch release: a version stamp every 3000 bytes touches every chunk of every binary.</summary>
    private static byte[] Stamped(byte[] content, int version)
    {
        var copy = (byte[])content.Clone();
        for (var at = 50; at + 8 < copy.Length; at += 3000) BitConverter.GetBytes(version * 31L + at).CopyTo(copy, at);
        return copy;
    }

    private static Dictionary<string, byte[]> Release(int version) => new()
    {
        ["bin/app"] = Stamped(UpdateSessionTests.Bytes(1, 900_000), version),
        ["lib/core.so"] = Stamped(UpdateSessionTests.Bytes(2, 500_000), version),
        ["share/readme.txt"] = "same in every version"u8.ToArray(),
    };

    private UpdateSession Session() =>
        new(Device.Config, Device.Layout, Device.Hidden,
            new HttpGatewayClient(Http, Gateway.BaseUrl, Device.Config.DeviceId, TestDevice.Credential, TimeSpan.FromSeconds(5)),
            Http, log: output.WriteLine);

    /// <summary>The gateway's decision plus the delta path, as the node offers it.</summary>
    private void Assign(PublishResult r, string? deltaPath) =>
        Gateway.Decide = req => FakeGateway.Assign(r.VersionId, r.Version, r.ManifestPath, r.InventoryDigest)(req) is var d && d.Action == UpdateAction.Upgrade
            ? d with { DeltaManifestPath = deltaPath }
            : d;

    private async Task<(PublishResult V1, PublishResult V2, DeltaBuildResult Delta)> InstallV1AndPublishV2WithDelta()
    {
        var v1 = Store.Publish("1.0", Release(1));
        Assign(v1, null);
        await Session().RunOnceAsync(1, CancellationToken.None);
        var v2 = Store.Publish("2.0", Release(2));
        var delta = new DeltaBuilder(Store.Store, Store.ContentKey, Store.SigningKey) { Level = 3, Method = DeltaBuildMethod.Files }.Build("acme", "1.0", "2.0");
        Assert.Equal(2, delta.FilesPatched);
        return (v1, v2, delta);
    }

    private string ClientDigest() => TreeInventory.Digest(TreeInventory.Scan(Device.Layout.Client));

    [Fact]
    public async Task Upgrade_uses_the_delta_and_downloads_far_less_than_chunks()
    {
        var (_, v2, delta) = await InstallV1AndPublishV2WithDelta();
        Assign(v2, delta.ManifestPath);
        var before = Gateway.StoreBytesServed;
        var result = await Session().RunOnceAsync(1, CancellationToken.None);

        Assert.Equal(v2.InventoryDigest, ClientDigest());
        foreach (var (path, content) in Release(2))
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(Device.Layout.Client, path)));
        Assert.Equal((2, 0), (result.FilesPatched, result.FilesFellBack));
        var served = Gateway.StoreBytesServed - before;
        Assert.True(served < delta.ChunkBytesReplaced / 4, $"served {served} bytes; the chunks would be {delta.ChunkBytesReplaced}");
        var completion = Gateway.Completions.Last();
        Assert.Equal(CompletionReport.MethodDelta, completion.Method);
        Assert.Equal(result.BytesDownloaded, completion.BytesDownloaded);
        Assert.False(Directory.Exists(Path.Combine(Device.Layout.Work, "patched")));
    }

    [Fact]
    public async Task A_damaged_source_file_falls_back_to_chunks_for_that_file_only()
    {
        var (_, v2, delta) = await InstallV1AndPublishV2WithDelta();
        var app = Path.Combine(Device.Layout.Client, "bin/app");
        var bytes = File.ReadAllBytes(app);
        bytes[10] ^= 0xff; // the repair case: the installed tree no longer matches the delta's source
        File.WriteAllBytes(app, bytes);
        Assign(v2, delta.ManifestPath);
        var result = await Session().RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(v2.InventoryDigest, ClientDigest());
        Assert.Equal(1, result.FilesPatched); // lib/core.so still patched; bin/app from chunks
        Assert.Equal(CompletionReport.MethodDelta, Gateway.Completions.Last().Method);
    }

    [Fact]
    public async Task A_damaged_patch_object_is_never_installed_and_its_file_comes_from_chunks()
    {
        var (_, v2, delta) = await InstallV1AndPublishV2WithDelta();
        // Every source serves bytes that do not hash to the object's id: the downloader refuses them, the file
        // falls back to chunks, and the session still succeeds.
        var damaged = delta.Delta.Files.First(f => f.Method == DeltaMethod.Patch);
        File.WriteAllBytes(Path.Combine(Store.Root, StoreLayout.ChunkPath(damaged.Parts[0].Id)), new byte[damaged.Parts[0].Stored]);
        Assign(v2, delta.ManifestPath);
        var result = await Session().RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(v2.InventoryDigest, ClientDigest());
        foreach (var (path, content) in Release(2))
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(Device.Layout.Client, path)));
        Assert.Equal((1, 1), (result.FilesPatched, result.FilesFellBack));
    }

    [Fact]
    public async Task A_tampered_or_foreign_delta_manifest_is_ignored_and_chunks_install_the_release()
    {
        var (_, v2, delta) = await InstallV1AndPublishV2WithDelta();
        var path = Path.Combine(Store.Root, delta.ManifestPath);
        var text = File.ReadAllText(path);
        File.WriteAllText(path, text.Replace("\"level\":3", "\"level\":4")); // signature no longer matches
        Assign(v2, delta.ManifestPath);
        var result = await Session().RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(v2.InventoryDigest, ClientDigest());
        Assert.Equal(0, result.FilesPatched);
        Assert.Equal(CompletionReport.MethodChunks, Gateway.Completions.Last().Method);
    }
}
