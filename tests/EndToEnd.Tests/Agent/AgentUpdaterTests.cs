using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>One real node with release 1.0 of the client product, shared by the updater tests (each uses its own device).</summary>
public sealed class UpdaterNode : IAsyncLifetime
{
    public NodeUnderTest Node { get; private set; } = null!;
    public TestStore Store { get; private set; } = null!;
    public ChunkStore.Publishing.PublishResult V1 { get; private set; } = null!;
    /// <summary>Updater product release 2.0: a working updater program.</summary>
    public ChunkStore.Publishing.PublishResult Updater2 { get; private set; } = null!;
    /// <summary>Updater product release 3.0: an updater program that fails its self-test.</summary>
    public ChunkStore.Publishing.PublishResult Updater3 { get; private set; } = null!;
    public const string UpdaterProduct = "orch-updater";
    /// <summary>Client 2.1: declares a health check that fails.</summary>
    public ChunkStore.Publishing.PublishResult Sick { get; private set; } = null!;
    /// <summary>Client 2.2: declares a health check that passes.</summary>
    public ChunkStore.Publishing.PublishResult Healthy { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:RetryBase"] = "00:00:00.100",
            ["Devices:RetryCap"] = "00:00:00.500",
        });
        Store = new TestStore(Node.StoreRoot);
        var files = Releases.V1();
        files["bin/start.sh"] = "#!/bin/sh\necho started > \"$1\"\n"u8.ToArray();
        V1 = Store.Publish("1.0", files, modes: new Dictionary<string, UnixFileMode> { ["bin/start.sh"] = (UnixFileMode)0b111_101_101 });
        Dictionary<string, byte[]> WithHealth(string script)
        {
            var f = Releases.V2();
            f["bin/start.sh"] = files["bin/start.sh"];
            f[".orch/health.json"] = """{"command": "bin/health.sh", "arguments": ["--probe"], "timeoutSeconds": 20}"""u8.ToArray();
            f["bin/health.sh"] = System.Text.Encoding.UTF8.GetBytes(script);
            return f;
        }
        var runnable = new Dictionary<string, UnixFileMode> { ["bin/start.sh"] = (UnixFileMode)0b111_101_101, ["bin/health.sh"] = (UnixFileMode)0b111_101_101 };
        Sick = Store.Publish("2.1", WithHealth("#!/bin/sh\necho \"probe $1 in $(basename \"$PWD\"): cannot bind port 8080\" >&2\nexit 3\n"), modes: runnable);
        // Healthy only where it is installed: a program that reads its own location must be checked there, not in staging.
        Healthy = Store.Publish("2.2", WithHealth("#!/bin/sh\ncase \"$PWD\" in */client) ;; *) echo \"not at the installed path: $PWD\" >&2; exit 9;; esac\n" +
            "test \"$ORCH_RELEASE_ROOT\" = \"$PWD\" && test -f \"$ORCH_RELEASE_ROOT/lib/plugin.so\" && echo \"probe $1: healthy in $(basename \"$PWD\")\"\n"), modes: runnable);
        var exec = new Dictionary<string, UnixFileMode> { ["orch-agent"] = (UnixFileMode)0b111_101_101 };
        Updater2 = Store.Publish("2.0", new Dictionary<string, byte[]>
        {
            ["orch-agent"] = System.Text.Encoding.UTF8.GetBytes(UpdaterScript("release-2.0")),
            ["updater.bin"] = "updater program v2"u8.ToArray(),
            ["lib/helper.so"] = Releases.Bytes(77, 50_000),
        }, product: UpdaterProduct, modes: exec);
        Updater3 = Store.Publish("3.0", new Dictionary<string, byte[]>
        {
            ["orch-agent"] = "#!/bin/sh\necho \"broken updater 3.0 cannot open anything\" >&2\nexit 7\n"u8.ToArray(),
            ["updater.bin"] = "updater program v3"u8.ToArray(),
        }, product: UpdaterProduct, modes: exec);
    }

    /// <summary>
    /// A device whose image carries a real updater program and whose updater has its own release track
    /// (<c>&lt;id&gt;.updater</c>, product orch-updater), provisioned through the real agent's <c>provision</c>; 1.0 installed.
    /// </summary>
    public async Task<TestDevice> DeviceWithUpdaterTrackAsync(string id, ITestOutputHelper output)
    {
        var d = await DeviceAsync(id);
        await UseUpdaterProgramAsync(d, edit: c => c with { UpdaterDeviceId = id + ".updater", UpdaterProduct = UpdaterProduct });
        var trackSecret = await Node.ProvisionAsync(id + ".updater");
        var files = Path.Combine(d.Dir.Path, "provisioning");
        Directory.CreateDirectory(files);
        File.WriteAllBytes(Path.Combine(files, "credential"), d.Hidden.ReadRequired(HiddenItem.DeviceCredential));
        File.WriteAllBytes(Path.Combine(files, "content.key"), Store.ContentKey.ToBytes());
        File.WriteAllText(Path.Combine(files, "updater-credential"), trackSecret);
        var p = await AgentProcess.RunAsync(["provision", "--config", d.Config.SourcePath!, "--credential-file", Path.Combine(files, "credential"),
            "--content-key-file", Path.Combine(files, "content.key"), "--updater-credential-file", Path.Combine(files, "updater-credential")]);
        output.WriteLine(p.Output + p.Error);
        Assert.Equal(0, p.ExitCode);
        Assert.Contains($"provisioned the updater release track {id}.updater (orch-updater)", p.Output);
        var first = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(first.Output + first.Error);
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("updater release: up to date at version ID 0", first.Output);
        Assert.Equal(V1.InventoryDigest, Releases.ClientDigest(d));
        return d;
    }

    /// <summary>
    /// Makes the device image carry a real updater program (<c>orch-agent</c> in the virtual zone's updater folder: a
    /// script that says which updater it is and runs this build of the agent) and names it in agent.json, then rebuilds
    /// the hidden backup and the free copy from the image as a device maker's first boot would.
    /// </summary>
    public static async Task UseUpdaterProgramAsync(TestDevice d, string name = "image-updater", string? clientMarker = null,
        Func<DeviceAgent.Configuration.AgentConfig, DeviceAgent.Configuration.AgentConfig>? edit = null)
    {
        var exe = Path.Combine(d.Layout.VirtualUpdater, "orch-agent");
        File.WriteAllText(exe, UpdaterScript(name));
        UpdaterTree.SetMode(exe, (UnixFileMode)0b111_101_101);
        var config = d.Config with
        {
            UpdaterCommand = "orch-agent",
            ClientCommand = clientMarker is null ? null : "bin/start.sh",
            ClientArguments = clientMarker is null ? [] : [clientMarker],
        };
        File.WriteAllText(d.Config.SourcePath!, (edit?.Invoke(config) ?? config).ToJson());
        var r = await AgentProcess.RunAsync(["recover", "--from-virtual", "--config", d.Config.SourcePath!]);
        Assert.True(r.ExitCode == 0, r.Output + r.Error);
    }

    /// <summary>An updater program: prints its name, then runs this build of orch-agent with the launcher's arguments.</summary>
    public static string UpdaterScript(string name, string? beforeExec = null) =>
        $"#!/bin/sh\necho \"updater program {name} (pid $$): $*\"\n{beforeExec}exec dotnet '{typeof(DeviceAgent.AgentCommandLine).Assembly.Location}' \"$@\"\n";

    /// <summary>A provisioned device with 1.0 assigned.</summary>
    public async Task<TestDevice> DeviceAsync(string id)
    {
        var secret = await Node.ProvisionAsync(id);
        var d = new TestDevice(Node.BaseUrl, credential: secret, deviceId: id,
            contentKey: Store.ContentKey.ToBytes(), trustRoot: Store.SigningKey.PublicKey.ToBytes());
        await Node.AssignAsync(id, "acme", V1.Version, V1.VersionId, V1.ManifestPath);
        return d;
    }

    public async Task DisposeAsync()
    {
        Store.Dispose();
        await Node.DisposeAsync();
    }
}

/// <summary>The updater's zones (free copy, hidden backup, virtual copy), through the real orch-agent binary against a real node.</summary>
public sealed class AgentUpdaterTests(UpdaterNode n, ITestOutputHelper output) : IClassFixture<UpdaterNode>
{
    private const UnixFileMode Rwxr_xr_x = (UnixFileMode)0b111_101_101;

    private async Task<AgentProcess.Result> Run(TestDevice d, int expectedExit = 0, params string[] extra)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client", .. extra]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task A_setuid_mode_is_damage_and_a_restored_updater_gets_its_recorded_modes_back()
    {
        using var d = await n.DeviceAsync("upd-modes");
        var exe = Path.Combine(d.Layout.FreeUpdater, "updater.bin");
        Assert.Equal(Rwxr_xr_x, UpdaterTree.ModeOf(exe));

        UpdaterTree.SetMode(exe, (UnixFileMode)0b100_111_111_111); // chmod 4777: same bytes, setuid and world-writable
        var r = await Run(d);
        Assert.Contains("updater restored from the hidden backup", r.Output);
        Assert.Contains("updater.bin", r.Output);
        Assert.Equal(Rwxr_xr_x, UpdaterTree.ModeOf(exe));
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d)); // and the session ran

        File.Delete(exe);
        UpdaterTree.SetMode(Path.Combine(d.Layout.FreeUpdater, "lib", "helper.so"), (UnixFileMode)0b110_000_000);
        r = await Run(d);
        Assert.Contains("updater restored from the hidden backup", r.Output);
        Assert.Equal("updater program v1", File.ReadAllText(exe));
        Assert.Equal(Rwxr_xr_x, UpdaterTree.ModeOf(exe)); // executable again, not 0644
        Assert.Equal((UnixFileMode)0b110_100_100, UpdaterTree.ModeOf(Path.Combine(d.Layout.FreeUpdater, "lib", "helper.so")));

        r = await Run(d);
        Assert.Contains("updater intact", r.Output);
        var status = await AgentProcess.RunAsync(["status", "--config", d.Config.SourcePath!]);
        output.WriteLine(status.Output + status.Error);
        Assert.Equal(0, status.ExitCode);
    }

    /// <summary>Peak RSS (KiB, from /usr/bin/time) of one idle start of the real agent.</summary>
    private async Task<long> IdlePeakRssKiB(TestDevice d)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/time")
            { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-f", "maxrss=%M", "dotnet", typeof(DeviceAgent.AgentCommandLine).Assembly.Location, "run", "--config", d.Config.SourcePath!, "--no-client" })
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("ORCH_AGENT_CRASH_AT");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        output.WriteLine(await stdout + await stderr);
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("updater intact", await stdout);
        var m = System.Text.RegularExpressions.Regex.Match(await stderr, @"maxrss=(\d+)");
        Assert.True(m.Success, await stderr);
        return long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task An_idle_start_streams_the_updater_and_backup_checks_in_bounded_memory()
    {
        if (!File.Exists("/usr/bin/time")) throw new InvalidOperationException("this test measures peak RSS with /usr/bin/time (Debian package 'time')");
        using var small = await n.DeviceAsync("upd-idle-small");
        using var big = await n.DeviceAsync("upd-idle-big");
        // A 96 MiB updater file: reading the free copy or decrypting the backup whole would each add about that much.
        // Random throughout, so the backup (sealed compressed) is as large as the file.
        using (var f = File.Create(Path.Combine(big.Layout.VirtualUpdater, "big.bin")))
        {
            for (var i = 0; i < 96; i++) f.Write(Releases.Bytes(42 + i, 1 << 20));
        }
        Assert.Equal(0, (await AgentProcess.RunAsync(["recover", "--from-virtual", "--config", big.Config.SourcePath!])).ExitCode);
        Assert.True(new FileInfo(big.Layout.Hidden(HiddenItem.UpdaterBackup)).Length > 96 << 20);
        await Run(small); // install 1.0, so the measured starts find nothing to do
        await Run(big);

        var smallRss = await IdlePeakRssKiB(small);
        var bigRss = await IdlePeakRssKiB(big);
        output.WriteLine($"idle start peak RSS: {smallRss} KiB with a 2-file updater, {bigRss} KiB with a 96 MiB updater");
        Assert.True(bigRss - smallRss < 24 * 1024, $"idle start with a 96 MiB updater peaked at {bigRss} KiB vs {smallRss} KiB: the check is not streaming");

        // The same device repairing: only now is the backup decrypted, which shows what the idle path avoids.
        File.Delete(Path.Combine(big.Layout.FreeUpdater, "big.bin"));
        var repaired = await Run(big);
        Assert.Contains("updater restored from the hidden backup", repaired.Output);
        Assert.Equal(UpdaterTree.DigestOf(big.Layout.VirtualUpdater), UpdaterTree.DigestOf(big.Layout.FreeUpdater));
    }

    [Fact]
    public async Task The_launcher_starts_the_verified_free_zone_updater_which_runs_the_session()
    {
        using var d = await n.DeviceAsync("upd-run");
        var marker = Path.Combine(d.Dir.Path, "client-ran");
        await UpdaterNode.UseUpdaterProgramAsync(d, clientMarker: marker);
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("updater intact (version image)", r.Output);
        Assert.Matches(@"started the updater 'orch-agent' \(version image, pid \d+\)", r.Output);
        Assert.Contains($"updater program image-updater (pid ", r.Output);
        Assert.Contains($": update --config {d.Config.SourcePath}", r.Output);
        Assert.Contains("upgrade done: version 1.0", r.Output);
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(n.V1.VersionId, (await n.Node.StateAsync("upd-run")).InstalledVersionId);
        await WaitForFileAsync(marker);
    }

    private static async Task WaitForFileAsync(string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!File.Exists(path) && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.True(File.Exists(path), $"'{path}' was not written: the client program did not run");
    }

    public enum Damage { Free, Backup, Virtual, Seal }

    private static void Apply(TestDevice d, Damage damage)
    {
        switch (damage)
        {
            case Damage.Free:
                File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "orch-agent"), "#!/bin/sh\necho hijacked\n");
                File.Delete(Path.Combine(d.Layout.FreeUpdater, "lib", "helper.so"));
                break;
            case Damage.Backup:
                var backup = d.Layout.Hidden(HiddenItem.UpdaterBackup);
                var bytes = File.ReadAllBytes(backup);
                bytes[bytes.Length / 2] ^= 0x40;
                File.WriteAllBytes(backup, bytes);
                break;
            case Damage.Virtual:
                File.WriteAllText(Path.Combine(d.Layout.VirtualUpdater, "lib", "helper.so"), "rotten image");
                break;
            case Damage.Seal:
                File.Delete(d.Layout.Hidden(HiddenItem.UpdaterDigest));
                break;
        }
    }

    [Theory]
    [InlineData("upd-d-free", new[] { Damage.Free }, "updater restored from the hidden backup")]
    [InlineData("upd-d-backup", new[] { Damage.Backup }, "hidden backup rebuilt from it")]
    [InlineData("upd-d-both", new[] { Damage.Free, Damage.Backup }, "updater restored from the virtual zone's plain copy")]
    [InlineData("upd-d-virtual", new[] { Damage.Virtual }, "updater intact (version image)")]
    [InlineData("upd-d-free-virtual", new[] { Damage.Free, Damage.Virtual }, "updater restored from the hidden backup")]
    [InlineData("upd-d-backup-virtual", new[] { Damage.Backup, Damage.Virtual }, "hidden backup rebuilt from it")]
    [InlineData("upd-d-seal", new[] { Damage.Seal }, "updater restored from the virtual zone's plain copy")]
    public async Task Each_damage_of_the_updater_zones_is_repaired_from_the_next_source_and_the_updater_runs(string id, Damage[] damage, string expected)
    {
        using var d = await n.DeviceAsync(id);
        await UpdaterNode.UseUpdaterProgramAsync(d);
        foreach (var x in damage) Apply(d, x);
        var before = await Status(d, 3);
        foreach (var x in damage)
            Assert.Contains(x switch
            {
                Damage.Free => "free-zone updater (damaged)",
                Damage.Backup => "hidden updater backup (damaged)",
                Damage.Virtual => "virtual updater copy (damaged)",
                _ => "updater record (missing)",
            }, before.Error);
        var r = await Run(d);
        Assert.Contains(expected, r.Output);
        Assert.Contains("updater program image-updater (pid ", r.Output);
        Assert.Contains("upgrade done: version 1.0", r.Output);
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal((UnixFileMode)0b111_101_101, UpdaterTree.ModeOf(Path.Combine(d.Layout.FreeUpdater, "orch-agent")));

        var again = await Run(d);
        Assert.Contains("updater intact (version image)", again.Output);
        Assert.DoesNotContain("warning", again.Output);
        // The launcher cannot write the read-only virtual zone: status keeps reporting a damaged image until it is reinstalled.
        var after = await Status(d, damage.Contains(Damage.Virtual) ? 3 : 0);
        Assert.Contains("updater   version image", after.Output);
        if (damage.Contains(Damage.Virtual)) Assert.Contains("damaged: virtual updater copy (damaged)", after.Error);
        else Assert.Contains("record ok, free copy ok, hidden backup ok, virtual copy ok", after.Output);
    }

    private async Task<AgentProcess.Result> Status(TestDevice d, int expectedExit)
    {
        var r = await AgentProcess.RunAsync(["status", "--config", d.Config.SourcePath!]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task With_all_three_copies_damaged_the_client_still_starts_with_a_warning()
    {
        using var d = await n.DeviceAsync("upd-d-all");
        var marker = Path.Combine(d.Dir.Path, "client-ran");
        await UpdaterNode.UseUpdaterProgramAsync(d, clientMarker: marker);
        await Run(d); // 1.0 installed
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
        foreach (var x in new[] { Damage.Free, Damage.Backup, Damage.Virtual }) Apply(d, x);
        var hijacked = File.ReadAllText(Path.Combine(d.Layout.FreeUpdater, "orch-agent"));

        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("differs from the image sealed at provisioning (damaged image)", r.Output);
        Assert.Contains("WARNING: no working updater on this device: the update session is skipped until the updater is repaired; starting the installed client program anyway", r.Output);
        Assert.DoesNotContain("hijacked", r.Output); // the damaged free copy is never run
        Assert.Equal(hijacked, File.ReadAllText(Path.Combine(d.Layout.FreeUpdater, "orch-agent"))); // nor "repaired" from a damaged image
        await WaitForFileAsync(marker);
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
    }

    [Fact]
    public async Task A_device_without_a_working_updater_reports_it_to_the_node_and_its_first_check_in_after_a_repair_clears_it()
    {
        const string id = "upd-lost";
        using var d = await n.DeviceAsync(id);
        var marker = Path.Combine(d.Dir.Path, "client-ran");
        await UpdaterNode.UseUpdaterProgramAsync(d, clientMarker: marker);
        await Run(d); // 1.0 installed, the device checked in with a working updater
        var imageFile = Path.Combine(d.Layout.VirtualUpdater, "lib", "helper.so");
        var image = File.ReadAllBytes(imageFile);
        foreach (var x in new[] { Damage.Free, Damage.Backup, Damage.Virtual }) Apply(d, x);

        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("reported to the node that this device has no working updater", r.Output);
        await WaitForFileAsync(marker); // the client runs all the same
        var lost = (await n.Node.StateAsync(id)).UpdaterLost;
        Assert.NotNull(lost);
        Assert.Contains("differs from the image sealed at provisioning (damaged image)", lost.Reason);
        var show = await OrchProcess.OkAsync(n.Node, output, "device", "show", id);
        Assert.Matches(@"updater\s+NONE WORKING since .*damaged image", show.Output);
        var history = await OrchProcess.OkAsync(n.Node, output, "device", "history", id);
        Assert.Contains("reported NO WORKING UPDATER (client started without an update session)", history.Output);
        await Until("device list marks upd-lost", async () => (await OrchProcess.OkAsync(n.Node, output, "device", "list", "--json")).Json,
            j => j.GetProperty("devices").EnumerateArray().Any(e => e.GetProperty("deviceId").GetString() == id && e.GetProperty("updaterLost").GetBoolean()));
        var events = (await n.Node.StateAsync(id)).EventCount;

        // The same damage on the next start: reported again, journaled once.
        r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("reported to the node that this device has no working updater", r.Output);
        Assert.Equal(events, (await n.Node.StateAsync(id)).EventCount);

        // The operator reinstalls the image and rebuilds the zones from it; the next start's check-in clears the report.
        File.WriteAllBytes(imageFile, image);
        var recovered = await AgentProcess.RunAsync(["recover", "--from-virtual", "--config", d.Config.SourcePath!]);
        output.WriteLine(recovered.Output + recovered.Error);
        Assert.Equal(0, recovered.ExitCode);
        r = await Run(d);
        Assert.Contains("updater intact (version image)", r.Output);
        Assert.Contains("updater program image-updater (pid ", r.Output);
        Assert.Null((await n.Node.StateAsync(id)).UpdaterLost);
        show = await OrchProcess.OkAsync(n.Node, output, "device", "show", id);
        Assert.Matches(@"updater\s+working", show.Output);
        history = await OrchProcess.OkAsync(n.Node, output, "device", "history", id);
        Assert.Contains("checked in with a working updater again", history.Output);
    }

    [Fact]
    public async Task A_report_of_a_lost_updater_marks_only_the_signing_device_and_bad_input_is_named()
    {
        using var a = await n.DeviceAsync("upd-lost-a");
        using var b = await n.DeviceAsync("upd-lost-b");
        var secretA = System.Text.Encoding.UTF8.GetString(a.Hidden.ReadRequired(HiddenItem.DeviceCredential));
        var body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Messages.Protocol.UpdaterLostReport("forged"),
            Messages.Protocol.ProtocolJsonContext.Default.UpdaterLostReport);

        // Device A signs a report addressed to device B: refused, B's record unchanged.
        using var http = new HttpClient();
        var forged = new HttpRequestMessage(HttpMethod.Post, $"{n.Node.BaseUrl.TrimEnd('/')}/v1/devices/upd-lost-b/updater-lost")
            { Content = new ByteArrayContent(body) { Headers = { ContentType = new("application/json") } } };
        await TestSupport.DeviceSigning.SignAsync(forged, "upd-lost-a", secretA);
        var answer = await http.SendAsync(forged);
        var text = await answer.Content.ReadAsStringAsync();
        output.WriteLine($"{(int)answer.StatusCode} {text}");
        Assert.Equal(403, (int)answer.StatusCode);
        Assert.Contains("credential_wrong_device", text);
        Assert.Null((await n.Node.StateAsync("upd-lost-b")).UpdaterLost);

        // An empty reason is named and changes nothing.
        var empty = System.Text.Encoding.UTF8.GetBytes("""{"reason":""}""");
        var bad = new HttpRequestMessage(HttpMethod.Post, $"{n.Node.BaseUrl.TrimEnd('/')}/v1/devices/upd-lost-a/updater-lost")
            { Content = new ByteArrayContent(empty) { Headers = { ContentType = new("application/json") } } };
        await TestSupport.DeviceSigning.SignAsync(bad, "upd-lost-a", secretA);
        answer = await http.SendAsync(bad);
        text = await answer.Content.ReadAsStringAsync();
        output.WriteLine($"{(int)answer.StatusCode} {text}");
        Assert.Equal(400, (int)answer.StatusCode);
        Assert.Contains("invalid_reason", text);
        Assert.Null((await n.Node.StateAsync("upd-lost-a")).UpdaterLost);
    }

    private static string TrackClient(TestDevice d) => Path.Combine(d.Layout.UpdaterReleaseZones.Free, "client");

    private static UpdaterSeal Seal(TestDevice d) => UpdaterSeal.Read(d.Hidden)!;

    [Fact]
    public async Task An_updater_release_is_rolled_out_self_tested_and_switched_in_and_a_failing_one_is_kept_out()
    {
        using var d = await n.DeviceWithUpdaterTrackAsync("upd-rel", output);
        var imageDigest = UpdaterTree.DigestOf(d.Layout.FreeUpdater);
        var generation = Seal(d).Generation;

        await OrchProcess.OkAsync(n.Node, output, "rollout", "create", "--id", "ro-upd2", "--product", UpdaterNode.UpdaterProduct, "--version", "2.0",
            "--devices", "upd-rel.updater", "--waves", "100%");
        await Until("upd-rel.updater assigned by ro-upd2", () => n.Node.StateAsync("upd-rel.updater"), s => s.Target?.RolloutId == "ro-upd2");
        var r = await Run(d);
        Assert.Matches(@"started the updater 'orch-agent' \(version image, pid \d+\)", r.Output);
        Assert.Contains("updater release: upgrade done: version 2.0", r.Output);
        Assert.Contains($"updater 2.0 (id {n.Updater2.VersionId}) passed its self-test and is now the free-zone updater and the hidden backup (generation {generation + 1}", r.Output);
        Assert.Equal(UpdaterTree.DigestOf(TrackClient(d)), UpdaterTree.DigestOf(d.Layout.FreeUpdater));
        Assert.NotEqual(imageDigest, UpdaterTree.DigestOf(d.Layout.FreeUpdater));
        Assert.Equal("updater program v2", File.ReadAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin")));
        Assert.Equal(("2.0", generation + 1), (Seal(d).Version, Seal(d).Generation));
        Assert.Equal((UnixFileMode)0b111_101_101, UpdaterTree.ModeOf(Path.Combine(d.Layout.FreeUpdater, "orch-agent")));
        await Until("ro-upd2 completed", async () => (await OrchProcess.OkAsync(n.Node, output, "rollout", "show", "ro-upd2", "--json")).Json,
            j => j.GetProperty("status").GetString() == "Completed");

        // From now on the launcher verifies and starts the new updater; its backup restores it with its version.
        r = await Run(d);
        Assert.Contains("updater intact (version 2.0)", r.Output);
        Assert.Contains("updater program release-2.0 (pid ", r.Output);
        File.Delete(Path.Combine(d.Layout.FreeUpdater, "orch-agent"));
        r = await Run(d);
        Assert.Contains("updater restored from the hidden backup (version 2.0", r.Output);
        Assert.Contains("updater program release-2.0 (pid ", r.Output);

        // A release whose updater fails its self-test: reported, counted by the rollout, never switched in.
        var before = UpdaterTree.DigestOf(d.Layout.FreeUpdater);
        await OrchProcess.OkAsync(n.Node, output, "rollout", "create", "--id", "ro-upd3", "--product", UpdaterNode.UpdaterProduct, "--version", "3.0",
            "--devices", "upd-rel.updater", "--waves", "100%");
        await Until("upd-rel.updater assigned by ro-upd3", () => n.Node.StateAsync("upd-rel.updater"), s => s.Target?.RolloutId == "ro-upd3");
        r = await Run(d);
        Assert.Contains("refused after staging: self-test exited with code 7: broken updater 3.0 cannot open anything", r.Output);
        Assert.Contains("WARNING: updater release session gave up after 3 attempt(s), the previous updater is kept", r.Output);
        Assert.Equal(before, UpdaterTree.DigestOf(d.Layout.FreeUpdater));
        Assert.Equal("2.0", Seal(d).Version);
        Assert.Equal(UpdaterTree.DigestOf(TrackClient(d)), before); // the refused release was never committed either
        var state = await n.Node.StateAsync("upd-rel.updater");
        Assert.Equal(3, state.FailedAttempts);
        Assert.Contains("self-test exited with code 7", state.LastFailure!.Reason);
        var shown = await Until("ro-upd3 counts the failing device", async () => (await OrchProcess.OkAsync(n.Node, output, "rollout", "show", "ro-upd3", "--json")).Json,
            j => j.GetProperty("waves").EnumerateArray().Sum(w => w.GetProperty("failing").GetInt32() + w.GetProperty("failed").GetInt32()) >= 1);
        output.WriteLine(shown.ToString());
        r = await Run(d);
        Assert.Contains("updater intact (version 2.0)", r.Output);
        Assert.Contains("updater program release-2.0 (pid ", r.Output);
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
    }

    private static Task<T> Until<T>(string what, Func<Task<T>> read, Func<T, bool> done) => FleetSteps.UntilAsync(what, read, done);

    // The first updater release has no previous tree in its track, so old-retired is not on its path.
    public static IEnumerable<object[]> SwapPoints =>
        new[] { "file-staged", "journal-written", "new-in-place", "version-recorded", "journal-removed" }
            .Concat(DeviceAgent.Install.CrashPoints.UpdaterSwap).Append(DeviceAgent.Install.CrashPoints.UpdaterFileRestored + "#2").Select(p => new object[] { p });

    [Theory]
    [MemberData(nameof(SwapPoints))]
    public async Task A_kill_at_each_step_of_an_updater_swap_leaves_a_device_whose_launcher_starts_a_working_updater(string point)
    {
        var id = "upd-kill-" + point.Replace('#', '-');
        using var d = await n.DeviceWithUpdaterTrackAsync(id, output);
        await n.Node.AssignAsync(id + ".updater", UpdaterNode.UpdaterProduct, n.Updater2.Version, n.Updater2.VersionId, n.Updater2.ManifestPath);
        var killed = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"],
            new Dictionary<string, string> { [DeviceAgent.Install.CrashPoints.EnvironmentVariable] = point });
        output.WriteLine(killed.Output + killed.Error);
        Assert.Contains($"crash injected at {(point.Contains('#') ? point : point + "#1")}", killed.Error);
        Assert.Equal(4, killed.ExitCode);
        Assert.Contains("ended with exit code 137", killed.Output);

        // Every following start verifies an updater (old or new), starts it, and converges on 2.0.
        for (var i = 0; ; i++)
        {
            var r = await Run(d);
            Assert.Matches(@"updater program (image-updater|release-2\.0) \(pid \d+\)", r.Output);
            // Repairs come from the newest sealed updater: never the older backup, never the image over a sealed 2.0.
            Assert.DoesNotContain("restored from the hidden backup (version image", r.Output);
            Assert.DoesNotContain("virtual zone's plain copy", r.Output);
            if (r.Output.Contains("updater program release-2.0 (pid ") && r.Output.Contains("updater intact (version 2.0)")) break;
            Assert.True(i < 2, "the device did not converge on updater 2.0 within three starts");
        }
        Assert.Equal(UpdaterTree.DigestOf(TrackClient(d)), UpdaterTree.DigestOf(d.Layout.FreeUpdater));
        Assert.Equal("2.0", Seal(d).Version);
        await Status(d, 0);
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
    }

    [Fact]
    public async Task A_release_that_fails_its_health_check_is_reported_and_counted_and_the_previous_version_stays()
    {
        using var d = await n.DeviceAsync("upd-health");
        await Run(d); // 1.0
        await OrchProcess.OkAsync(n.Node, output, "rollout", "create", "--id", "ro-sick", "--product", "acme", "--version", "2.1",
            "--devices", "upd-health", "--waves", "100%");
        await Until("upd-health assigned by ro-sick", () => n.Node.StateAsync("upd-health"), s => s.Target?.RolloutId == "ro-sick");
        var r = await Run(d, 1);
        Assert.Contains("health check: bin/health.sh --probe (limit 20 s)", r.Output);
        Assert.Contains("2.1 (id " + n.Sick.VersionId + ") failed after install: health check 'bin/health.sh' failed with exit code 3: probe --probe in client: cannot bind port 8080; the previous version is restored", r.Output);
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d));
        Assert.False(Directory.Exists(d.Layout.Retired));
        Assert.False(File.Exists(d.Layout.Journal));
        Assert.Equal(n.V1.VersionId, d.Hidden.ReadInstalledVersion().VersionId);
        var state = await n.Node.StateAsync("upd-health");
        Assert.Contains("cannot bind port 8080", state.LastFailure!.Reason);
        await Until("ro-sick counts the failing device", async () => (await OrchProcess.OkAsync(n.Node, output, "rollout", "show", "ro-sick", "--json")).Json,
            j => j.GetProperty("waves").EnumerateArray().Sum(w => w.GetProperty("failing").GetInt32() + w.GetProperty("failed").GetInt32()) >= 1);

        await OrchProcess.OkAsync(n.Node, output, "rollout", "abort", "ro-sick", "--reason", "unhealthy");
        await n.Node.AssignAsync("upd-health", "acme", n.Healthy.Version, n.Healthy.VersionId, n.Healthy.ManifestPath);
        r = await Run(d);
        Assert.Contains("health check passed: probe --probe: healthy in client", r.Output);
        Assert.Equal(n.Healthy.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(n.Healthy.VersionId, (await n.Node.StateAsync("upd-health")).InstalledVersionId);
    }

    // Every point a health-checked install passes: a healthy release reaches all but the last, a failing one stops at new-in-place and then removes itself.
    public static IEnumerable<object[]> HealthPoints =>
        DeviceAgent.Install.CrashPoints.HealthCheckedInstall.Where(p => p != DeviceAgent.Install.CrashPoints.UnhealthyRemoved).Select(p => new object[] { p, true })
            .Concat(new[] { "file-staged", "journal-written", "old-retired", "new-in-place", DeviceAgent.Install.CrashPoints.UnhealthyRemoved }.Select(p => new object[] { p, false }));

    [Theory]
    [MemberData(nameof(HealthPoints))]
    public async Task A_kill_at_each_step_of_a_health_checked_install_leaves_exactly_one_healthy_version(string point, bool healthy)
    {
        var id = $"upd-hk-{point}-{(healthy ? "ok" : "sick")}";
        using var d = await n.DeviceAsync(id);
        await Run(d); // 1.0
        var target = healthy ? n.Healthy : n.Sick;
        await n.Node.AssignAsync(id, "acme", target.Version, target.VersionId, target.ManifestPath);
        var killed = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"],
            new Dictionary<string, string> { [DeviceAgent.Install.CrashPoints.EnvironmentVariable] = point });
        output.WriteLine(killed.Output + killed.Error);
        Assert.Contains($"crash injected at {point}#1", killed.Error);

        // The launcher alone (no gateway, so no session) finishes or undoes the interrupted install before the client
        // starts: the client path then holds 1.0 or, once its check passed and was journaled, the healthy 2.2; never
        // the unchecked or failing release.
        var marker = Path.Combine(d.Dir.Path, "client-ran");
        File.WriteAllText(d.Config.SourcePath!, (d.Config with { Gateway = null, Mirrors = ["http://127.0.0.1:9/"], ClientCommand = "bin/start.sh", ClientArguments = [marker] }).ToJson());
        var launcherOnly = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!]);
        output.WriteLine(launcherOnly.Output + launcherOnly.Error);
        Assert.Equal(0, launcherOnly.ExitCode);
        Assert.Equal(healthy && point is "version-recorded" or "journal-removed" ? n.Healthy.InventoryDigest : n.V1.InventoryDigest, Releases.ClientDigest(d));
        Assert.False(File.Exists(d.Layout.Journal));
        Assert.False(Directory.Exists(d.Layout.Retired));
        await WaitForFileAsync(marker);
        File.WriteAllText(d.Config.SourcePath!, d.Config.ToJson());

        var r = await Run(d, healthy ? 0 : 1);
        Assert.Equal(healthy ? n.Healthy.InventoryDigest : n.V1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(healthy ? n.Healthy.VersionId : n.V1.VersionId, d.Hidden.ReadInstalledVersion().VersionId);
        Assert.False(File.Exists(d.Layout.Journal));
    }
}
