using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>A store on a tiny tmpfs: publishing and chunk uploads run out of space.</summary>
public sealed class DiskFullTests(ITestOutputHelper output)
{
    [TmpfsFact]
    public void Publish_into_a_full_store_fails_clearly_and_leaves_no_partial_or_corrupt_chunk()
    {
        using var dir = new TempDir();
        using var mount = Tmpfs.Mount(dir.Folder("store"), "1m");
        using var store = new TestStore(mount.Path);
        var big = new Dictionary<string, byte[]> { ["blob.bin"] = Releases.Bytes(11, 3_000_000) }; // random bytes do not compress
        var e = Assert.ThrowsAny<Exception>(() => store.Publish("1.0", big));
        output.WriteLine(e.ToString());
        Assert.Contains("space", AllMessages(e), StringComparison.OrdinalIgnoreCase);
        AssertStoreClean(mount.Path);
        Assert.Empty(Directory.Exists(Path.Combine(mount.Path, "manifests")) ? Directory.GetFiles(Path.Combine(mount.Path, "manifests"), "*.json", SearchOption.AllDirectories) : []);
    }

    [TmpfsFact]
    public async Task Chunk_upload_into_a_full_store_is_refused_with_a_clear_error_and_no_chunk_is_left()
    {
        using var dir = new TempDir();
        var storeRoot = dir.Folder("store");
        Directory.CreateDirectory(storeRoot);
        using var mount = Tmpfs.Mount(storeRoot, "256k");
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Node:StoreRoot"] = mount.Path });
        var accepted = 0;
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 20 && refused is null; i++)
        {
            var data = RandomNumberGenerator.GetBytes(60_000);
            var id = Convert.ToHexStringLower(SHA256.HashData(data));
            using var req = new HttpRequestMessage(HttpMethod.Put, $"admin/v1/chunks/{id}") { Content = new ByteArrayContent(data) };
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
            var res = await node.Http.SendAsync(req);
            if (res.IsSuccessStatusCode) { accepted++; res.Dispose(); }
            else refused = res;
        }
        Assert.NotNull(refused);
        var body = await refused!.Content.ReadAsStringAsync();
        output.WriteLine($"{accepted} accepted, then HTTP {(int)refused.StatusCode}: {body}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("space", body, StringComparison.OrdinalIgnoreCase);
        Assert.True(accepted > 0);
        AssertStoreClean(mount.Path);
        refused.Dispose();
    }

    private static string AllMessages(Exception e) => e.InnerException is null ? e.Message : e.Message + " | " + AllMessages(e.InnerException);

    /// <summary>Every chunk and pack object in the store is complete (its bytes hash to its name) and no temp file remains.</summary>
    private static void AssertStoreClean(string root)
    {
        foreach (var folder in new[] { StoreLayout.ChunksDirectory, StoreLayout.PacksDirectory })
            AssertObjectsClean(Path.Combine(root, folder));
    }

    private static void AssertObjectsClean(string chunks)
    {
        if (!Directory.Exists(chunks)) return;
        foreach (var f in Directory.EnumerateFiles(chunks, "*", SearchOption.AllDirectories))
        {
            var name = Path.GetFileName(f);
            Assert.False(AtomicFile.IsTempFile(name), $"temp file left behind: {f}");
            Assert.True(ChunkId.IsValid(name), $"unexpected file in the chunk folder: {f}");
            Assert.Equal(name, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))));
        }
    }
}

/// <summary>A tmpfs of a given size mounted on a folder (root only); unmounted on dispose.</summary>
public sealed class Tmpfs : IDisposable
{
    private Tmpfs(string path) => Path = path;

    public string Path { get; }

    public static Tmpfs Mount(string path, string size)
    {
        Directory.CreateDirectory(path);
        var (code, err) = Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", path);
        if (code != 0) throw new InvalidOperationException($"mount -t tmpfs failed ({code}): {err}");
        return new Tmpfs(path);
    }

    /// <summary>Null when a tmpfs can be mounted here; otherwise why not.</summary>
    public static string? WhyNot()
    {
        if (!OperatingSystem.IsLinux()) return "tmpfs mounts need Linux";
        if (Environment.UserName != "root") return "mounting a tmpfs needs root";
        var probe = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "orch-tmpfs-probe-" + Environment.ProcessId);
        try
        {
            using (Mount(probe, "64k")) { }
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return $"this machine does not allow mounting a tmpfs ({e.Message.Trim()})";
        }
        finally
        {
            try { Directory.Delete(probe); } catch (IOException) { }
        }
    }

    private static (int Code, string Error) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, err);
    }

    public void Dispose()
    {
        var (code, err) = Run("umount", Path);
        if (code != 0) Run("umount", "-l", Path);
        _ = err;
    }
}

/// <summary>
/// A fact that needs a tmpfs mount: skipped with the reason when this machine cannot mount one, unless
/// ORCH_REQUIRE_TMPFS=1 (CI), in which case it runs and fails.
/// </summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Reason = new(Tmpfs.WhyNot);

    public TmpfsFactAttribute()
    {
        if (Reason.Value is { } why && Environment.GetEnvironmentVariable("ORCH_REQUIRE_TMPFS") != "1")
            Skip = why + "; the disk-full tests run where a tmpfs can be mounted (root, CAP_SYS_ADMIN); set ORCH_REQUIRE_TMPFS=1 to make this a failure";
    }
}
