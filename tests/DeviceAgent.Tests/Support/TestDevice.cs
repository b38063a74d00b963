using System.Security.Cryptography;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Tests.Support;

/// <summary>A provisioned device on disk: three zone folders, a machine secret, a config file and sealed secrets.</summary>
public sealed class TestDevice : IDisposable
{
    public TempDir Dir { get; } = new();
    public AgentConfig Config { get; }
    public ZoneLayout Layout { get; }
    public DeviceKey Key { get; }
    public HiddenZone Hidden { get; }
    public byte[] ContentKey { get; }
    public byte[] TrustRoot { get; }
    public const string Credential = "device-secret-1";

    public TestDevice(string gateway = "http://127.0.0.1:9/", IReadOnlyList<string>? mirrors = null, byte[]? contentKey = null,
        byte[]? trustRoot = null, DownloadSettings? download = null, string product = "acme", string credential = Credential,
        string deviceId = "dev-1", IReadOnlyDictionary<string, string>? attributes = null)
    {
        var virtualZone = Dir.Folder("virtual");
        Directory.CreateDirectory(Path.Combine(virtualZone, "updater", "lib"));
        File.WriteAllText(Path.Combine(virtualZone, "updater", "updater.bin"), "updater program v1");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(Path.Combine(virtualZone, "updater", "updater.bin"), (UnixFileMode)0b111_101_101);
        File.WriteAllText(Path.Combine(virtualZone, "updater", "lib", "helper.so"), "helper library");
        var secret = Path.Combine(Dir.Path, "machine-secret");
        File.WriteAllBytes(secret, RandomNumberGenerator.GetBytes(32));
        ContentKey = contentKey ?? RandomNumberGenerator.GetBytes(32);
        TrustRoot = trustRoot ?? RandomNumberGenerator.GetBytes(32);
        File.WriteAllBytes(Path.Combine(virtualZone, "trust-root.pub"), TrustRoot);
        var config = new AgentConfig
        {
            DeviceId = deviceId,
            Product = product,
            Zones = new ZonePaths("../virtual", "../hidden", "../free"),
            MachineSecretFile = "../machine-secret",
            Gateway = gateway,
            Mirrors = mirrors ?? [],
            Download = download ?? FastDownloads,
            Attributes = attributes ?? new Dictionary<string, string>(),
        };
        File.WriteAllText(Path.Combine(virtualZone, "agent.json"), config.ToJson());
        Config = AgentConfig.Load(Path.Combine(virtualZone, "agent.json"));
        Layout = new ZoneLayout(Config.Zones);
        Key = DeviceKey.Derive(Config.MachineSecretFile, Config.DeviceId);
        Hidden = new HiddenZone(Layout, Key);
        new ZoneProvisioner(Layout, Hidden).Provision(System.Text.Encoding.UTF8.GetBytes(credential), ContentKey, TrustRoot);
    }

    /// <summary>
    /// Short backoff so retry paths run in milliseconds; a rate window generous enough that a loaded 2-core CI
    /// machine running tests in parallel does not look like a stalled server.
    /// </summary>
    public static DownloadSettings FastDownloads => new()
    {
        BackoffBaseMilliseconds = 20,
        BackoffCapMilliseconds = 200,
        MaxSessionAttempts = 5,
        MinBytesPerSecond = 1024,
        MinRateWindowSeconds = 2,
        RequestTimeoutSeconds = 5,
        Parallelism = 2,
    };

    public void Dispose()
    {
        Key.Dispose();
        Dir.Dispose();
    }
}
