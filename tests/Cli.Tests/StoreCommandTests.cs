using Orchestrator.Cli.CommandLine;

namespace Orchestrator.Cli.Tests;

public sealed class StoreCommandTests : IDisposable
{
    private readonly CliHarness _cli = new();

    public StoreCommandTests()
    {
        Assert.Equal(0, _cli.Orch("keys", "init", "--dir", _cli.Keys).GetAwaiter().GetResult().ExitCode);
        var shared = CliHarness.RandomBytes(100_000, 50);
        for (var v = 1; v <= 3; v++)
        {
            var tree = _cli.Tree($"v{v}", CliHarness.RandomBytes(200_000, v));
            File.WriteAllBytes(Path.Combine(tree, "shared.bin"), shared);
            var run = _cli.Orch("publish", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--version", $"{v}.0", tree)
                .GetAwaiter().GetResult();
            Assert.Equal(0, run.ExitCode);
        }
    }

    public void Dispose() => _cli.Dispose();

    [Fact]
    public async Task Stats_reports_counts_as_json_and_text()
    {
        var json = await _cli.Orch("store", "stats", "--store", _cli.Store, "--json");
        Assert.Equal(0, json.ExitCode);
        var chunks = json.Json.GetProperty("chunks").GetInt64();
        Assert.True(chunks > 10);
        Assert.Equal(chunks, json.Json.GetProperty("referencedChunks").GetInt64());
        var product = json.Json.GetProperty("products")[0];
        Assert.Equal(3, product.GetProperty("versions").GetInt32());
        Assert.Equal("3.0", product.GetProperty("latestVersion").GetString());
        var text = await _cli.Orch("store", "stats", "--store", _cli.Store);
        Assert.Contains($"chunks        {chunks}", text.Out);
    }

    [Fact]
    public async Task Verify_is_clean_then_reports_a_corrupted_chunk_with_exit_code_4()
    {
        var ok = await _cli.Orch("store", "verify", "--store", _cli.Store, "--keys", _cli.Keys);
        Assert.Equal(ExitCodes.Success, ok.ExitCode);
        Assert.Contains("signatures verified", ok.Out);

        var chunk = Directory.EnumerateFiles(Path.Combine(_cli.Store, "chunks"), "*", SearchOption.AllDirectories).First();
        var bytes = File.ReadAllBytes(chunk);
        bytes[^1] ^= 1;
        File.WriteAllBytes(chunk, bytes);
        var bad = await _cli.Orch("store", "verify", "--store", _cli.Store, "--json");
        Assert.Equal(ExitCodes.IntegrityProblem, bad.ExitCode);
        Assert.False(bad.Json.GetProperty("ok").GetBoolean());
        Assert.Contains(Path.GetFileName(chunk), bad.Json.GetProperty("problems")[0].GetString());
    }

    [Fact]
    public async Task Verify_decrypt_checks_every_file_with_the_content_key_and_needs_keys()
    {
        var ok = await _cli.Orch("store", "verify", "--store", _cli.Store, "--keys", _cli.Keys, "--decrypt", "--json");
        Assert.Equal(ExitCodes.Success, ok.ExitCode);
        Assert.True(ok.Json.GetProperty("filesDecrypted").GetInt64() > 0);
        var text = await _cli.Orch("store", "verify", "--store", _cli.Store, "--keys", _cli.Keys, "--decrypt");
        Assert.Contains("files decrypted and checked", text.Out);

        var noKeys = await _cli.Orch("store", "verify", "--store", _cli.Store, "--decrypt");
        Assert.Equal(ExitCodes.Usage, noKeys.ExitCode);
        Assert.Contains("--decrypt needs --keys DIR", noKeys.Error);
    }

    [Fact]
    public async Task Gc_keep_last_removes_old_versions_and_their_unshared_chunks()
    {
        var dry = await _cli.Orch("store", "gc", "--store", _cli.Store, "--keep-last", "1", "--dry-run", "--json");
        Assert.Equal(0, dry.ExitCode);
        Assert.True(dry.Json.GetProperty("dryRun").GetBoolean());
        var wouldDelete = dry.Json.GetProperty("chunksDeleted").GetInt64();
        Assert.True(wouldDelete > 0);

        var run = await _cli.Orch("store", "gc", "--store", _cli.Store, "--keep-last", "1", "--json");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(wouldDelete, run.Json.GetProperty("chunksDeleted").GetInt64());
        Assert.Equal(2, run.Json.GetProperty("versionsRemoved").GetArrayLength());
        Assert.Equal(0, (await _cli.Orch("store", "verify", "--store", _cli.Store, "--keys", _cli.Keys)).ExitCode);
        var stats = await _cli.Orch("store", "stats", "--store", _cli.Store, "--json");
        Assert.Equal(1, stats.Json.GetProperty("products")[0].GetProperty("versions").GetInt32());

        var again = await _cli.Orch("store", "gc", "--store", _cli.Store);
        Assert.Contains("Deleted 0 chunks", again.Out);
    }

    [Fact]
    public async Task Missing_store_and_bad_keep_last_are_rejected()
    {
        var missing = await _cli.Orch("store", "stats", "--store", Path.Combine(_cli.Root, "nope"));
        Assert.Equal(ExitCodes.InvalidInput, missing.ExitCode);
        Assert.Contains("does not exist", missing.Error);
        var bad = await _cli.Orch("store", "gc", "--store", _cli.Store, "--keep-last", "0");
        Assert.Equal(ExitCodes.Usage, bad.ExitCode);
        Assert.Contains("--keep-last", bad.Error);
    }
}
