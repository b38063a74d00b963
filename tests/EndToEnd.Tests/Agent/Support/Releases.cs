using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>Two releases of one product, published by the real Publisher, and helpers to install them.</summary>
public static class Releases
{
    public static byte[] Bytes(int seed, int length)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static Dictionary<string, byte[]> V1() => new()
    {
        ["bin/app"] = Bytes(1, 600_000),
        ["lib/core.so"] = Bytes(2, 300_000),
        ["lib/extra.so"] = Bytes(4, 200_000),
        ["share/readme.txt"] = "hello v1"u8.ToArray(),
        ["old.cfg"] = "only in v1"u8.ToArray(),
    };

    /// <summary>A patch release of <see cref="V1"/>: a version stamp every 3000 bytes, so chunk dedup finds almost nothing to reuse.</summary>
    public static Dictionary<string, byte[]> Stamped(int version)
    {
        var files = V1();
        foreach (var path in files.Keys.ToList())
        {
            var copy = (byte[])files[path].Clone();
            for (var at = 40; at + 8 < copy.Length; at += 3000) BitConverter.GetBytes(version * 1009L + at).CopyTo(copy, at);
            files[path] = copy;
        }
        return files;
    }

    public static Dictionary<string, byte[]> V2()
    {
        var v2 = V1();
        var app = (byte[])v2["bin/app"].Clone();
        Bytes(9, 2000).CopyTo(app, 300_000);
        v2["bin/app"] = app;
        v2["lib/core.so"] = Bytes(5, 300_000);
        v2["share/readme.txt"] = "hello v2"u8.ToArray();
        v2.Remove("old.cfg");
        v2["lib/plugin.so"] = Bytes(3, 250_000);
        v2["share/new.txt"] = "new in v2"u8.ToArray();
        return v2;
    }

    /// <summary>The inode number of a file (<c>stat -c %i</c>): equal numbers mean the very same file was kept.</summary>
    public static string Inode(string path)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%i", path]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var inode = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return inode;
    }

    /// <summary>
    /// Ids of the chunks of <paramref name="manifest"/> the agent has written into its build folder (every place of the
    /// chunk holds the release's bytes); what is there but wrong, or not written yet, does not count.
    /// </summary>
    public static HashSet<string> BuiltChunks(TestDevice d, Manifest manifest, IReadOnlyDictionary<string, byte[]> content)
    {
        var root = TreeBuild.FolderOf(d.Layout);
        var built = new Dictionary<string, bool>();
        foreach (var f in manifest.Files)
        {
            byte[]? onDisk = null;
            try
            {
                var path = Path.Combine(root, f.Path);
                if (File.Exists(path)) onDisk = File.ReadAllBytes(path);
            }
            catch (IOException) { /* the agent may be replacing it */ }
            long offset = 0;
            foreach (var c in f.Chunks)
            {
                var ok = onDisk is not null && onDisk.Length >= offset + c.Length
                    && onDisk.AsSpan((int)offset, c.Length).SequenceEqual(content[f.Path].AsSpan((int)offset, c.Length));
                built[c.Id.Hex] = built.GetValueOrDefault(c.Id.Hex, true) && ok;
                offset += c.Length;
            }
        }
        return built.Where(kv => kv.Value).Select(kv => kv.Key).ToHashSet();
    }

    public static string ClientDigest(TestDevice d) => TreeInventory.Digest(TreeInventory.Scan(d.Layout.Client));

    /// <summary>
    /// The device's client tree is exactly <paramref name="expected"/>: the inventory digest a release reports, the same
    /// set of files (nothing left over from an earlier release, nothing missing) and every file's bytes.
    /// </summary>
    public static void AssertTreeIs(TestDevice d, string inventoryDigest, IReadOnlyDictionary<string, byte[]> expected)
    {
        Assert.Equal(inventoryDigest, ClientDigest(d));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), Directory.EnumerateFiles(d.Layout.Client, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(d.Layout.Client, f).Replace('\\', '/')).Order(StringComparer.Ordinal));
        foreach (var (path, content) in expected)
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(d.Layout.Client, path)));
    }

    /// <summary>Installs a release in-process (the starting point of a test).</summary>
    public static async Task InstallAsync(TestDevice d, FakeGateway gw, PublishResult r)
    {
        gw.Decide = FakeGateway.Assign(r.VersionId, r.Version, r.ManifestPath, r.InventoryDigest);
        using var http = StoreDownloader.CreateHttpClient();
        var session = new UpdateSession(d.Config, d.Layout, d.Hidden,
            new HttpGatewayClient(http, gw.BaseUrl, d.Config.DeviceId, TestDevice.Credential, TimeSpan.FromSeconds(5)), http);
        await session.RunOnceAsync(1, CancellationToken.None);
        Assert.Equal(r.InventoryDigest, ClientDigest(d));
    }
}
