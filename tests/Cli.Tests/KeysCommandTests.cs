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
}
