using Orchestrator.DeviceAgent.Launching;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>The launcher's self-repair and recovery, through the real orch-agent binary.</summary>
public sealed class AgentLauncherTests(TwoReleases r, ITestOutputHelper output) : IClassFixture<TwoReleases>
{
    [Fact]
    public async Task Repairs_the_updater_from_hidden_then_from_the_virtual_copy_when_hidden_is_gone_too()
    {
        using var d = new TestDevice(r.Gateway.BaseUrl, contentKey: r.Store.ContentKey.ToBytes(), trustRoot: r.Store.SigningKey.PublicKey.ToBytes());
        r.Gateway.Decide = FakeGateway.Assign(r.V1.VersionId, r.V1.Version, r.V1.ManifestPath, r.V1.InventoryDigest);
        string[] run = ["run", "--config", d.Config.SourcePath!, "--no-client"];
        var updater = Path.Combine(d.Layout.FreeUpdater, "updater.bin");

        File.WriteAllText(updater, "tampered");
        var repaired = await AgentProcess.RunAsync(run);
        output.WriteLine(repaired.Output + repaired.Error);
        Assert.Equal(ExitCodes.Ok, repaired.ExitCode);
        Assert.Contains("updater restored from the hidden backup", repaired.Output);
        Assert.Equal("updater program v1", File.ReadAllText(updater));
        Assert.Equal(r.V1.InventoryDigest, Releases.ClientDigest(d));

        File.Delete(updater);
        File.WriteAllBytes(d.Layout.Hidden(HiddenItem.UpdaterBackup), [0, 1, 2]);
        var fromVirtual = await AgentProcess.RunAsync(run);
        output.WriteLine(fromVirtual.Output + fromVirtual.Error);
        Assert.Equal(ExitCodes.Ok, fromVirtual.ExitCode);
        Assert.Contains("updater restored from the virtual zone's plain copy", fromVirtual.Output);
        Assert.Equal("updater program v1", File.ReadAllText(updater));

        var again = await AgentProcess.RunAsync(run);
        Assert.Equal(ExitCodes.Ok, again.ExitCode);
        Assert.Contains("updater intact", again.Output);
        Assert.DoesNotContain("warning", again.Output);
    }

    [Fact]
    public async Task Starts_the_client_program_after_the_session()
    {
        var files = Releases.V1();
        files["bin/start.sh"] = "#!/bin/sh\necho started > \"$1\"\n"u8.ToArray();
        var rel = r.Store.Publish("1.0-client", files,
            modes: new Dictionary<string, UnixFileMode> { ["bin/start.sh"] = (UnixFileMode)0b111_101_101 });
        using var d = new TestDevice(r.Gateway.BaseUrl, contentKey: r.Store.ContentKey.ToBytes(), trustRoot: r.Store.SigningKey.PublicKey.ToBytes());
        var marker = Path.Combine(d.Dir.Path, "client-ran");
        var config = d.Config with { ClientCommand = "bin/start.sh", ClientArguments = [marker] };
        File.WriteAllText(d.Config.SourcePath!, config.ToJson());
        r.Gateway.Decide = FakeGateway.Assign(rel.VersionId, rel.Version, rel.ManifestPath, rel.InventoryDigest);
        var result = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!]);
        output.WriteLine(result.Output + result.Error);
        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.Exists(marker) && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal("started", File.ReadAllText(marker).Trim());
    }

    [Fact]
    public async Task Bad_command_line_and_config_are_named()
    {
        var bad = await AgentProcess.RunAsync(["run", "--bogus"]);
        Assert.Equal(ExitCodes.BadInput, bad.ExitCode);
        Assert.Contains("'--bogus' is not an option of 'orch-agent run'", bad.Error);

        using var dir = new TempDir();
        var cfg = Path.Combine(dir.Path, "agent.json");
        File.WriteAllText(cfg, """{"deviceId":"d 1","product":"acme","zones":{"virtual":"v","hidden":"h","free":"f"},"machineSecretFile":"s","gateway":"http://127.0.0.1:1/"}""");
        var badConfig = await AgentProcess.RunAsync(["status", "--config", cfg]);
        Assert.Equal(ExitCodes.BadInput, badConfig.ExitCode);
        Assert.Contains("deviceId 'd 1' is invalid", badConfig.Error);
    }
}
