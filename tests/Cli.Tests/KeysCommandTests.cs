using Orchestrator.ChunkStore.Trust;
using Orchestrator.Cli.CommandLine;

namespace Orchestrator.Cli.Tests;

public sealed class KeysCommandTests : IDisposable
{
    private readonly CliHarness _cli = new();

    public void Dispose() => _cli.Dispose();

    [Fact]
    public async Task Init_creates_owner_only_key_files()
    {
        var run = await _cli.Orch("keys", "init", "--dir", _cli.Keys, "--json");
        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Equal(64, run.Json.GetProperty("publicKeyHex").GetString()!.Length);
        foreach (var name in new[] { "release-signing.key", "release-signing.pub", "content.key" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_cli.Keys, name)));
    }

    [Fact]
    public async Task Init_refuses_to_overwrite()
    {
        Assert.Equal(0, (await _cli.Orch("keys", "init", "--dir", _cli.Keys)).ExitCode);
        var before = CliHarness.Snapshot(_cli.Keys);
        var again = await _cli.Orch("keys", "init", "--dir", _cli.Keys);
        Assert.Equal(ExitCodes.InvalidInput, again.ExitCode);
        Assert.Contains("never overwritten", again.Error);
        Assert.Equal(before, CliHarness.Snapshot(_cli.Keys));
    }

    [Fact]
    public async Task Init_without_dir_is_a_usage_error()
    {
        var run = await _cli.Orch("keys", "init");
        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--dir", run.Error);
    }

    [Fact]
    public async Task Init_creates_the_trust_set_and_rotate_extends_the_root_chain_in_the_store()
    {
        var run = await _cli.Orch("keys", "init", "--dir", _cli.Keys, "--store", _cli.Store, "--json");
        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Equal(1, run.Json.GetProperty("rootVersion").GetInt64());
        foreach (var name in new[] { TrustFiles.RootKeyFile, TrustFiles.DirectorKeyFile, TrustFiles.RootDocumentFile })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_cli.Keys, name)));
        var root1 = TrustAnchor.Load(File.ReadAllBytes(Path.Combine(_cli.Store, "root", "1.root.json")), "root 1");
        Assert.True(root1.RequiresDirectives);

        var rotated = await _cli.Orch("keys", "rotate", "director", "--dir", _cli.Keys, "--store", _cli.Store, "--json");
        Assert.Equal(ExitCodes.Success, rotated.ExitCode);
        Assert.Equal(2, rotated.Json.GetProperty("rootVersion").GetInt64());
        var root2 = root1.Next(File.ReadAllBytes(Path.Combine(_cli.Store, "root", "2.root.json")));
        Assert.NotEqual(root1.Root!.Roles[TrustRoles.Director].KeyIds, root2.Root!.Roles[TrustRoles.Director].KeyIds);
        Assert.Equal(root1.Root.Roles[TrustRoles.Release].KeyIds, root2.Root.Roles[TrustRoles.Release].KeyIds);

        var bad = await _cli.Orch("keys", "rotate", "admin", "--dir", _cli.Keys);
        Assert.Equal(ExitCodes.InvalidInput, bad.ExitCode);
        Assert.Contains("Unknown role 'admin'", bad.Error);
    }

    [Fact]
    public async Task Release_floor_signs_a_published_version_and_refuses_an_unknown_one()
    {
        Assert.Equal(0, (await _cli.Orch("keys", "init", "--dir", _cli.Keys)).ExitCode);
        var tree = _cli.Tree("v1", CliHarness.RandomBytes(1000, 1));
        Assert.Equal(0, (await _cli.Orch("publish", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--version", "1.0", tree)).ExitCode);
        var floor = await _cli.Orch("release", "floor", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--min", "1.0", "--json");
        Assert.Equal(ExitCodes.Success, floor.ExitCode);
        var anchor = TrustFiles.LoadRoot(_cli.Keys);
        Assert.Equal(1, ProductFloor.Verify(File.ReadAllBytes(Path.Combine(_cli.Store, "floors", "acme", "floor.json")), anchor, "acme").MinVersionId);

        var unknown = await _cli.Orch("release", "floor", "--store", _cli.Store, "--keys", _cli.Keys, "--product", "acme", "--min", "9.9");
        Assert.Equal(ExitCodes.InvalidInput, unknown.ExitCode);
        Assert.Contains("--min '9.9' is not a published version of 'acme'", unknown.Error);
    }
}
