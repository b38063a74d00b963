using Orchestrator.Cli.CommandLine;

namespace Orchestrator.Cli.Tests;

public sealed class PublishCommandTests : IDisposable
{
    private readonly CliHarness _cli = new();

    public PublishCommandTests() => Assert.Equal(0, _cli.Orch("keys", "init", "--dir", _cli.Keys).GetAwaiter().GetResult().ExitCode);

    public void Dispose() => _cli.Dispose();

    private Task<CliHarness.Run> Publish(string version, string tree, params string[] extra) =>
        _cli.Orch(["publish", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--version", version, .. extra, tree]);

    [Fact]
    public async Task Publish_prints_totals_and_second_version_writes_only_new_chunks()
    {
        var binary = CliHarness.RandomBytes(600_000, 1);
        var first = await Publish("1.0.0", _cli.Tree("v1", binary), "--json");
        Assert.Equal(ExitCodes.Success, first.ExitCode);
        var j1 = first.Json;
        Assert.Equal(1, j1.GetProperty("versionId").GetInt64());
        Assert.Equal(j1.GetProperty("chunksDistinct").GetInt64(), j1.GetProperty("chunksNew").GetInt64());
        Assert.True(j1.GetProperty("bytesNew").GetInt64() > 600_000);
        Assert.Equal("manifests/acme/1.0.0.json", j1.GetProperty("manifestPath").GetString());
        Assert.True(j1.GetProperty("elapsedSeconds").GetDouble() >= 0);

        var changed = binary.ToArray();
        changed[300_000] ^= 0xFF;
        var second = await _cli.Orch("release", "publish", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme",
            "--version", "1.1.0", "--channel", "stable", _cli.Tree("v2", changed, "a=2\n"));
        Assert.Equal(ExitCodes.Success, second.ExitCode);
        Assert.Contains("Published acme 1.1.0 (version ID 2), channel stable", second.Out);
        Assert.Matches(@"chunks\s+\d+ total, \d+ distinct, [1-3] new", second.Out);
        Assert.Contains("bytes new", second.Out);
        Assert.Contains("elapsed", second.Out);
        Assert.True(File.Exists(Path.Combine(_cli.Store, "channels/acme/stable.json")));
    }

    [Fact]
    public async Task Packs_are_written_only_when_asked_for_and_not_onto_a_node()
    {
        Assert.Equal(ExitCodes.Success, (await Publish("1.0.0", _cli.Tree("v1", CliHarness.RandomBytes(300_000, 4)))).ExitCode);
        Assert.False(File.Exists(Path.Combine(_cli.Store, "manifests/acme/1.0.0.packs")));
        Assert.False(Directory.Exists(Path.Combine(_cli.Store, "packs")));

        Assert.Equal(ExitCodes.Success, (await Publish("2.0.0", _cli.Tree("v2", CliHarness.RandomBytes(300_000, 5)), "--packs")).ExitCode);
        Assert.True(File.Exists(Path.Combine(_cli.Store, "manifests/acme/2.0.0.packs")));
        Assert.NotEmpty(Directory.EnumerateFiles(Path.Combine(_cli.Store, "packs"), "*", SearchOption.AllDirectories));

        var upload = await _cli.Orch("release", "publish", "--server", "http://127.0.0.1:9", "--keys", _cli.Keys, "--product", "acme",
            "--version", "3.0.0", "--packs", _cli.Tree("v3", CliHarness.RandomBytes(1000, 6)));
        Assert.Equal(ExitCodes.Usage, upload.ExitCode);
        Assert.Contains("--packs is for a local --store", upload.Error);
    }

    [Fact]
    public async Task Small_files_below_writes_a_schema_2_manifest_that_store_verify_decrypts_and_is_refused_onto_a_node()
    {
        var tree = _cli.Tree("v1", CliHarness.RandomBytes(300_000, 7));
        for (var i = 0; i < 40; i++) File.WriteAllBytes(Path.Combine(tree, $"lib{i:D2}.js"), CliHarness.RandomBytes(100 + i * 50, 100 + i));
        Assert.Equal(ExitCodes.Success, (await Publish("1.0.0", tree, "--packs", "--small-files-below", "4096")).ExitCode);
        var manifest = File.ReadAllText(Path.Combine(_cli.Store, "manifests/acme/1.0.0.json"));
        Assert.StartsWith("{\"schema\":2,", manifest);
        Assert.Contains("\"path\":\"lib00.js\",\"mode\":", manifest);
        var app = manifest[manifest.IndexOf("{\"path\":\"bin/app\"", StringComparison.Ordinal)..];
        Assert.Contains("\"chunks\":[{", app[..(app.IndexOf('}') + 2)]); // the 300 kB binary keeps its own chunks
        var verify = await _cli.Orch("store", "verify", "--store", _cli.Store, "--keys", _cli.Keys, "--decrypt", "--json");
        Assert.Equal(ExitCodes.Success, verify.ExitCode);
        Assert.Equal(42, verify.Json.GetProperty("filesDecrypted").GetInt32());

        var upload = await _cli.Orch("release", "publish", "--server", "http://127.0.0.1:9", "--keys", _cli.Keys, "--product", "acme",
            "--version", "2.0.0", "--small-files-below", "4096", tree);
        Assert.Equal(ExitCodes.Usage, upload.ExitCode);
        Assert.Contains("--small-files-below is for a local --store", upload.Error);
    }

    [Fact]
    public async Task Version_id_not_greater_than_latest_is_rejected_with_the_fix_and_no_change()
    {
        var tree = _cli.Tree("v1", CliHarness.RandomBytes(50_000, 2));
        Assert.Equal(0, (await Publish("1.0.0", tree, "--version-id", "5")).ExitCode);
        var before = CliHarness.Snapshot(_cli.Store);
        var run = await Publish("1.1.0", tree, "--version-id", "5", "--json");
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Contains("--version-id 6", run.Error);
        Assert.Equal("invalid_input", run.Json.GetProperty("error").GetString());
        Assert.Equal(before, CliHarness.Snapshot(_cli.Store));
    }

    [Theory]
    [InlineData("product", "Bad Name", "Product name")]
    [InlineData("version", "../x", "Version")]
    public async Task Bad_names_are_rejected_without_creating_the_store(string which, string value, string expected)
    {
        var tree = _cli.Tree("v1", CliHarness.RandomBytes(1000, 3));
        var args = new List<string> { "publish", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--version", "1.0", tree };
        args[args.IndexOf("--" + which) + 1] = value;
        var run = await _cli.Orch([.. args]);
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Contains(expected, run.Error);
        Assert.False(Directory.Exists(_cli.Store));
    }

    [Fact]
    public async Task Escaping_symlink_and_missing_tree_and_missing_keys_are_input_errors()
    {
        var tree = _cli.Tree("v1", CliHarness.RandomBytes(1000, 4));
        File.CreateSymbolicLink(Path.Combine(tree, "escape"), "../../etc/shadow");
        var run = await Publish("1.0", tree);
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Contains("points outside the tree", run.Error);

        run = await Publish("1.0", Path.Combine(_cli.Root, "nope"));
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Contains("is not a directory", run.Error);

        run = await _cli.Orch("publish", "--store", _cli.Store, "--keys", Path.Combine(_cli.Root, "nokeys"), "--product", "acme", "--version", "1.0", tree);
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Contains("orch keys init", run.Error);
        Assert.False(Directory.Exists(_cli.Store));
    }

    [Theory]
    [InlineData(new[] { "publish", "--keys", "k", "--product", "p", "--version", "1", "tree" }, "--store")]
    [InlineData(new[] { "publish", "--store", "s", "--keys", "k", "--product", "p", "--version", "1" }, "TREE")]
    [InlineData(new[] { "publish", "--store", "s", "--keys", "k", "--product", "p", "--version", "1", "--frobnicate", "tree" }, "--frobnicate")]
    [InlineData(new[] { "publish", "--store", "s", "--store", "t", "--keys", "k", "--product", "p", "--version", "1", "tree" }, "more than once")]
    [InlineData(new[] { "publish", "--store", "s", "--keys", "k", "--product", "p", "--version", "1", "--version-id", "abc", "tree" }, "--version-id")]
    [InlineData(new[] { "nonsense" }, "Unknown palette")]
    [InlineData(new[] { "store", "explode" }, "Unknown command")]
    public async Task Command_line_mistakes_are_usage_errors_naming_the_problem(string[] args, string expected)
    {
        var run = await _cli.Orch(args);
        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains(expected, run.Error);
    }

    [Fact]
    public async Task Invalid_chunking_is_rejected()
    {
        var run = await Publish("1.0", _cli.Tree("v1", CliHarness.RandomBytes(1000, 5)), "--chunk-avg", "50000");
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Contains("power of two", run.Error);
    }

    [Fact]
    public async Task Busy_store_gives_exit_code_5()
    {
        var tree = _cli.Tree("v1", CliHarness.RandomBytes(1000, 6));
        Assert.Equal(0, (await Publish("1.0", tree)).ExitCode);
        using (var store = File.Open(Path.Combine(_cli.Store, ".orch-store.lock"), FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            var run = await Publish("1.1", tree);
            Assert.Equal(ExitCodes.Busy, run.ExitCode);
            Assert.Contains("retry", run.Error);
        }
        Assert.Equal(0, (await Publish("1.1", tree)).ExitCode);
    }

    [Fact]
    public async Task Help_lists_palettes_commands_and_exit_codes()
    {
        var run = await _cli.Orch("help");
        Assert.Equal(0, run.ExitCode);
        foreach (var word in new[] { "keys", "release", "store", "publish", "verify", "gc", "Exit codes" })
            Assert.Contains(word, run.Out);
        var cmd = await _cli.Orch("store", "gc", "--help");
        Assert.Contains("--keep-last", cmd.Out);
    }
}
