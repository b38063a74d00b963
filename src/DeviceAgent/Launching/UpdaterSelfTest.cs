using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Launching;

/// <summary>
/// <c>orch-agent update --self-test</c>: what a candidate updater must manage before it replaces the working one: read
/// this device's configuration, derive the device key and open every hidden item a session needs. It changes nothing.
/// </summary>
public static class UpdaterSelfTest
{
    /// <summary>The line a passing self-test prints (the installer looks for it as well as for exit code 0).</summary>
    public const string PassedLine = "updater self-test passed";

    /// <summary>Runs the checks; returns <see cref="ExitCodes.Ok"/> when they pass.</summary>
    public static int Run(AgentConfig config, ZoneLayout layout, Action<string> log)
    {
        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
        var hidden = new HiddenZone(layout, key);
        foreach (var item in new[] { HiddenItem.DeviceCredential, HiddenItem.TrustRoot, HiddenItem.ContentKey })
            hidden.ReadRequired(item);
        log($"{PassedLine} (device {config.DeviceId}, product {config.Product})");
        return ExitCodes.Ok;
    }
}
