using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.DeviceAgent.Tests.Simulation;

public sealed class SimulateCommandTests
{
    [Fact]
    public async Task A_missing_admin_token_file_is_a_clear_usage_error_and_creates_no_device()
    {
        using var dir = new TempDir();
        var key = Path.Combine(dir.Path, "key");
        await File.WriteAllBytesAsync(key, new byte[32]);
        var root = Path.Combine(dir.Path, "fleet");
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        var code = await SimulateCommand.RunAsync(
            ["--devices", "2", "--gateway", "http://127.0.0.1:1/", "--product", "acme", "--content-key-file", key, "--trust-root-file", key,
             "--root", root, "--admin-token-file", Path.Combine(dir.Path, "no-such-token"), "--once"], stdout, stderr);

        Assert.Equal(2, code);
        Assert.Contains("--admin-token-file", stderr.ToString());
        Assert.Contains("does not exist", stderr.ToString());
        Assert.False(Directory.Exists(root));
    }

    [Fact]
    public async Task A_bad_prefix_is_a_usage_error_naming_the_option()
    {
        using var dir = new TempDir();
        var key = Path.Combine(dir.Path, "key");
        await File.WriteAllBytesAsync(key, new byte[32]);
        var stderr = new StringWriter();

        var code = await SimulateCommand.RunAsync(
            ["--devices", "2", "--gateway", "http://127.0.0.1:1/", "--product", "acme", "--content-key-file", key, "--trust-root-file", key,
             "--root", Path.Combine(dir.Path, "fleet"), "--prefix", "../up-", "--once"], new StringWriter(), stderr);

        Assert.Equal(2, code);
        Assert.Contains("--prefix '../up-'", stderr.ToString());
    }
}
