using Orchestrator.Cli.CommandLine;

namespace Orchestrator.Cli.Tests;

public sealed class DeltaCommandTests : IDisposable
{
    private readonly CliHarness _cli = new();

    public DeltaCommandTests()
    {
        Assert.Equal(0, _cli.Orch("keys", "init", "--dir", _cli.Keys).GetAwaiter().GetResult().ExitCode);
        var app = CliHarness.RandomBytes(300_000, 7);
        for (var v = 1; v <= 2; v++)
        {
            // A patch release: a version stamp every 4 KiB changes nearly every chunk.
            for (var at = 64; at + 4 < app.Length; at += 4096) BitConverter.GetBytes(v * 7919 + at).CopyTo(app, at);
            var tree = _cli.Tree($"v{v}", app);
            var run = _cli.Orch("publish", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--version", $"{v}.0", tree)
                .GetAwaiter().GetResult();
            Assert.Equal(0, run.ExitCode);
        }
    }

    public void Dispose() => _cli.Dispose();

    [Fact]
    public async Task Auto_build_reports_what_it_priced_and_keeps_the_cheaper_delta()
    {
        var run = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0", "--level", "9", "--json");
        Assert.Equal(ExitCodes.Success, run.ExitCode);
        var auto = run.Json.GetProperty("auto");
        Assert.Equal(1, auto.GetProperty("probeLevel").GetInt32());
        var release = auto.GetProperty("releaseBytes").GetInt64();
        var probe = auto.GetProperty("probeBytes").GetInt64();
        Assert.True(release > 0 && probe > 0, run.Out);
        var method = run.Json.GetProperty("method").GetString();
        if (auto.GetProperty("filesBytes").ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            // Per-file patches were not coded at level 9: only when the whole-release delta is under half the probe's price.
            Assert.True(release < 0.5 * probe, run.Out);
            Assert.Equal("release", method);
            Assert.Equal(0, auto.GetProperty("filesSeconds").GetDouble());
        }
        else
            Assert.Equal(release < auto.GetProperty("filesBytes").GetInt64() ? "release" : "files", method);

        var text = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0", "--level", "8");
        Assert.Equal(ExitCodes.Success, text.ExitCode);
        Assert.Contains("compared   whole-release", text.Out);
    }

    [Fact]
    public async Task Build_writes_a_signed_delta_once_and_reports_it()
    {
        var run = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0", "--level", "3", "--json");
        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Equal("deltas/acme/1.0/2.0.json", run.Json.GetProperty("manifestPath").GetString());
        Assert.False(run.Json.GetProperty("alreadyBuilt").GetBoolean());
        Assert.Equal(1, run.Json.GetProperty("filesPatched").GetInt32());
        var patch = run.Json.GetProperty("patchBytes").GetInt64();
        Assert.True(patch > 0 && patch * 10 < run.Json.GetProperty("chunkBytesReplaced").GetInt64(), run.Out);
        Assert.True(File.Exists(Path.Combine(_cli.Store, "deltas/acme/1.0/2.0.json.sig")));
        Assert.Equal(0, (await _cli.Orch("store", "verify", "--store", _cli.Store, "--keys", _cli.Keys)).ExitCode);

        var again = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0", "--level", "3");
        Assert.Equal(ExitCodes.Success, again.ExitCode);
        Assert.Contains("already built", again.Out);
        var stats = await _cli.Orch("store", "stats", "--store", _cli.Store, "--json");
        Assert.Equal(0, stats.Json.GetProperty("unreferencedChunks").GetInt64());
    }

    [Fact]
    public async Task Bad_versions_and_switches_are_rejected_with_their_exit_codes()
    {
        var backwards = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "2.0", "--to", "1.0", "--json");
        Assert.Equal(ExitCodes.InvalidInput, backwards.ExitCode);
        Assert.Contains("not older", backwards.Error);
        var unknown = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "0.5", "--to", "2.0");
        Assert.Equal(ExitCodes.InvalidInput, unknown.ExitCode);
        Assert.Contains("--from", unknown.Error);
        var missing = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0");
        Assert.Equal(ExitCodes.Usage, missing.ExitCode);
        var level = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0", "--level", "30");
        Assert.Equal(ExitCodes.Usage, level.ExitCode);
        Assert.False(Directory.Exists(Path.Combine(_cli.Store, "deltas")));
    }

    [Fact]
    public async Task Release_plan_reports_what_a_device_fetches_by_either_path_and_method_switches_are_checked()
    {
        string[] plan = ["release", "plan", "--store", _cli.Store, "--product", "acme", "--from", "1.0", "--to", "2.0", "--json"];
        var noDelta = await _cli.Orch([.. plan, "--method", "delta"]);
        Assert.Equal(ExitCodes.InvalidInput, noDelta.ExitCode);
        Assert.Contains("run 'orch delta build' first", noDelta.Error);
        var chunks = await _cli.Orch([.. plan, "--method", "chunks"]);
        Assert.Equal(ExitCodes.Success, chunks.ExitCode);
        Assert.Equal("chunks", chunks.Json.GetProperty("method").GetString());
        Assert.Equal("chunks", (await _cli.Orch(plan)).Json.GetProperty("method").GetString()); // auto without a delta

        var bogus = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0", "--method", "bogus");
        Assert.Equal(ExitCodes.Usage, bogus.ExitCode);
        Assert.Contains("--method 'bogus' is not auto, release or files", bogus.Error);
        var built = await _cli.Orch("delta", "build", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--from", "1.0", "--to", "2.0",
            "--level", "3", "--method", "release", "--json");
        Assert.Equal(ExitCodes.Success, built.ExitCode);
        Assert.Equal("release", built.Json.GetProperty("method").GetString());

        var delta = await _cli.Orch(plan);
        Assert.Equal("delta", delta.Json.GetProperty("method").GetString());
        // Target manifest + signature, delta manifest + signature, and the frame(s).
        var objects = delta.Json.GetProperty("objects").GetInt32();
        Assert.Equal(4 + objects, delta.Json.GetProperty("requests").GetInt32());
        Assert.True(delta.Json.GetProperty("bytes").GetInt64() * 5 < chunks.Json.GetProperty("bytes").GetInt64(), delta.Out + chunks.Out);
        var wrong = await _cli.Orch([.. plan, "--method", "fastest"]);
        Assert.Equal(ExitCodes.InvalidInput, wrong.ExitCode);
        Assert.Contains("--method 'fastest' is not auto, delta or chunks", wrong.Error);
    }
}
