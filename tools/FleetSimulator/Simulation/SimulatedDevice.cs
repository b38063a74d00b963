using System.Security.Cryptography;
using System.Text;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Simulation;

/// <summary>
/// One simulated device: real zone folders on disk (virtual with agent.json, updater and trust root; hidden with
/// sealed items; free with the installed client), its own machine secret and device key, exactly as a real device
/// has them. Only the process is shared with the other simulated devices.
/// </summary>
public sealed class SimulatedDevice : IDisposable
{
    private SimulatedDevice(string folder, AgentConfig config)
    {
        Folder = folder;
        Config = config;
        Layout = new ZoneLayout(config.Zones);
        Key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
        Hidden = new HiddenZone(Layout, Key);
    }

    /// <summary>The device's folder (holds virtual/, hidden/, free/, machine-secret).</summary>
    public string Folder { get; }

    /// <summary>Configuration as loaded from the device's agent.json.</summary>
    public AgentConfig Config { get; }

    /// <summary>The device's zone paths.</summary>
    public ZoneLayout Layout { get; }

    /// <summary>The device key derived from its machine secret.</summary>
    public DeviceKey Key { get; }

    /// <summary>Sealed items of the hidden zone.</summary>
    public HiddenZone Hidden { get; }

    /// <summary>Device id.</summary>
    public string DeviceId => Config.DeviceId;

    /// <summary>Whether the hidden zone holds a readable device credential.</summary>
    public bool HasCredential => Hidden.Read(HiddenItem.DeviceCredential).State == HiddenItemState.Ok;

    /// <summary>Installed version ID from the hidden zone (0 when nothing is installed or the record is damaged).</summary>
    public long InstalledVersionId
    {
        get
        {
            try { return Hidden.ReadInstalledVersion().VersionId; }
            catch (HiddenZoneException) { return 0; }
        }
    }

    /// <summary>
    /// Opens the device in <paramref name="folder"/>, creating its virtual zone (agent.json, a small updater,
    /// the trust root) and machine secret when the folder is new. An existing device keeps its secret and zones.
    /// </summary>
    public static SimulatedDevice Open(string folder, string deviceId, string product, string gateway, byte[] trustRoot, DownloadSettings download)
    {
        var virtualZone = Path.Combine(folder, "virtual");
        var configPath = Path.Combine(virtualZone, "agent.json");
        if (!File.Exists(configPath))
        {
            Directory.CreateDirectory(Path.Combine(virtualZone, "updater"));
            File.WriteAllText(Path.Combine(virtualZone, "updater", "orch-agent.version"), UpdateSessionVersion());
            File.WriteAllBytes(Path.Combine(virtualZone, "trust-root.pub"), trustRoot);
            var secret = Path.Combine(folder, "machine-secret");
            if (!File.Exists(secret)) File.WriteAllBytes(secret, RandomNumberGenerator.GetBytes(32));
            var config = new AgentConfig
            {
                DeviceId = deviceId,
                Product = product,
                Zones = new ZonePaths("../virtual", "../hidden", "../free"),
                MachineSecretFile = "../machine-secret",
                Gateway = gateway,
                Download = download,
            };
            config.Validate();
            var temp = configPath + ".tmp";
            File.WriteAllText(temp, config.ToJson());
            File.Move(temp, configPath, overwrite: true);
        }
        var loaded = AgentConfig.Load(configPath);
        // The gateway and download tuning come from this run, so a fleet folder can be pointed at another node.
        return new SimulatedDevice(folder, loaded with { Gateway = gateway, Download = download });
    }

    /// <summary>Seals the credential, content key and trust root and installs the updater copy (orch-agent provision).</summary>
    public void Provision(string credential, byte[] contentKey, byte[] trustRoot) =>
        new ZoneProvisioner(Layout, Hidden).Provision(Encoding.UTF8.GetBytes(credential), contentKey, trustRoot);

    /// <summary>
    /// Damages the installed client the way disks and users do: flips bytes in one file, or deletes one.
    /// Returns a description, or null when nothing is installed yet.
    /// </summary>
    public string? DamageClient(Random random)
    {
        if (!Directory.Exists(Layout.Client)) return null;
        var files = TreeInventory.Files(Layout.Client).ToList();
        if (files.Count == 0) return null;
        var (path, full) = files[random.Next(files.Count)];
        var info = new FileInfo(full);
        if (random.Next(4) == 0 || info.Length == 0)
        {
            File.Delete(full);
            return $"{DeviceId}: deleted {path}";
        }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(full, File.GetUnixFileMode(full) | UnixFileMode.UserWrite);
        using (var fs = new FileStream(full, FileMode.Open, FileAccess.ReadWrite))
        {
            var at = random.NextInt64(info.Length);
            fs.Seek(at, SeekOrigin.Begin);
            var b = fs.ReadByte();
            fs.Seek(at, SeekOrigin.Begin);
            fs.WriteByte((byte)(b ^ 0x5A));
        }
        return $"{DeviceId}: flipped a byte in {path}";
    }

    private static string UpdateSessionVersion() => "orch-agent " + Session.UpdateSession.AgentVersion + " (simulated device)\n";

    /// <inheritdoc />
    public void Dispose() => Key.Dispose();
}
