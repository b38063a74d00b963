using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.DeviceAgent.Tests.Configuration;

public sealed class AgentConfigTests
{
    private static string Write(TempDir dir, string json)
    {
        var path = Path.Combine(dir.Path, "agent.json");
        File.WriteAllText(path, json);
        return path;
    }

    private const string Valid = """
        {"deviceId":"dev-1","product":"acme","zones":{"virtual":"v","hidden":"h","free":"f"},
         "machineSecretFile":"secret","gateway":"http://127.0.0.1:5080/"}
        """;

    [Fact]
    public void Relative_paths_are_resolved_against_the_config_folder()
    {
        using var dir = new TempDir();
        var config = AgentConfig.Load(Write(dir, Valid));
        Assert.Equal(Path.Combine(dir.Path, "v"), config.Zones.Virtual);
        Assert.Equal(Path.Combine(dir.Path, "secret"), config.MachineSecretFile);
        Assert.Equal(1024, config.Download.MinBytesPerSecond);
    }

    [Theory]
    [InlineData("\"deviceId\":\"dev-1\"", "\"deviceId\":\"../x\"", "deviceId '../x' is invalid")]
    [InlineData("\"free\":\"f\"", "\"free\":\"h\"", "must be different folders")]
    [InlineData("\"gateway\":\"http://127.0.0.1:5080/\"", "\"gateway\":\"ftp://x/\"", "gateway 'ftp://x/' is not an absolute http(s) URL")]
    [InlineData("\"product\":\"acme\"", "\"product\":\"acme\",\"prodcut\":\"x\"", "prodcut")]
    [InlineData("\"gateway\":\"http://127.0.0.1:5080/\"", "\"gateway\":\"http://127.0.0.1:5080/\",\"clientCommand\":\"../../bin/sh\"", "clientCommand '../../bin/sh' must be a path inside")]
    [InlineData("\"gateway\":\"http://127.0.0.1:5080/\"", "\"gateway\":\"http://127.0.0.1:5080/\",\"download\":{\"parallelism\":0}", "parallelism must be between 1 and 64")]
    [InlineData("\"gateway\":\"http://127.0.0.1:5080/\"", "\"gateway\":\"http://127.0.0.1:5080/\",\"download\":{\"maxDeltaApplyBytes\":-1}", "download.maxDeltaApplyBytes must be >= 0")]
    [InlineData("\"gateway\":\"http://127.0.0.1:5080/\"", "\"gateway\":\"http://127.0.0.1:5080/\",\"download\":{\"partialCheckpointMilliseconds\":0}", "download.partialCheckpointMilliseconds must be > 0")]
    public void Invalid_values_are_named(string from, string to, string expected)
    {
        using var dir = new TempDir();
        var e = Assert.Throws<AgentConfigException>(() => AgentConfig.Load(Write(dir, Valid.Replace(from, to))));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Missing_file_says_how_to_pass_one()
    {
        var e = Assert.Throws<AgentConfigException>(() => AgentConfig.Load("/nonexistent/agent.json"));
        Assert.Contains("--config", e.Message);
    }

    [Fact]
    public async Task Status_command_reports_zone_health()
    {
        using var d = new TestDevice();
        File.WriteAllBytes(d.Layout.Hidden(Orchestrator.DeviceAgent.Zones.HiddenItem.ContentKey), [9, 9]);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await AgentCommandLine.RunAsync(["status", "--config", d.Config.SourcePath!], stdout, stderr);
        Assert.Equal(3, code); // a damaged zone item is an exit code, not only a line
        Assert.Contains("damaged: hidden content-key.sealed (damaged)", stderr.ToString());
        Assert.Contains("record ok, free copy ok, hidden backup ok, virtual copy ok", stdout.ToString());
        Assert.Matches(@"content-key\.sealed\s+Damaged", stdout.ToString());
        Assert.Matches(@"credential\.sealed\s+Ok", stdout.ToString());
        Assert.Contains("journal   none", stdout.ToString());
    }

    [Fact]
    public async Task Provision_command_seals_the_secrets()
    {
        using var d = new TestDevice();
        Directory.Delete(d.Config.Zones.Hidden, recursive: true);
        var cred = Path.Combine(d.Dir.Path, "cred");
        var key = Path.Combine(d.Dir.Path, "content.key");
        File.WriteAllText(cred, "new-secret");
        File.WriteAllBytes(key, d.ContentKey);
        var stderr = new StringWriter();
        var code = await AgentCommandLine.RunAsync(["provision", "--config", d.Config.SourcePath!, "--credential-file", cred, "--content-key-file", key], new StringWriter(), stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Equal("new-secret"u8.ToArray(), d.Hidden.ReadRequired(Orchestrator.DeviceAgent.Zones.HiddenItem.DeviceCredential));
        Assert.Equal(d.TrustRoot, d.Hidden.ReadRequired(Orchestrator.DeviceAgent.Zones.HiddenItem.TrustRoot));
    }
}
