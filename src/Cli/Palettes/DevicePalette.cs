using System.Text.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch device ...</c>: registry listing, one device's state and history, provisioning, bulk registration.</summary>
public static class DevicePalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Device, new Dictionary<string, ServerHandler>
        {
            ["list"] = ListAsync,
            ["show"] = ShowAsync,
            ["history"] = HistoryAsync,
            ["provision"] = ProvisionAsync,
            ["register-batch"] = RegisterBatchAsync,
            ["set-product"] = SetProductAsync,
            ["decommission"] = DecommissionAsync,
            ["set-channel"] = SetChannelAsync,
            ["attributes"] = AttributesAsync,
        });

    private static async Task<int> AttributesAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var id = Id(call);
        var set = ServerCommands.Attributes(call, "set");
        var remove = ServerCommands.List(call, "remove");
        if (remove is { Length: 0 }) throw new UsageException("--remove is empty; give attribute keys, e.g. --remove site,ring.");
        var s = set is null && remove is null
            ? await client.GetAsync<DeviceState>($"/admin/v1/devices/{id}", ct).ConfigureAwait(false)
            : await client.PostAsync<DeviceState>($"/admin/v1/devices/{id}/attributes", new DeviceAttributesRequest(set, remove), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, s);
        else
        {
            var attributes = s.Attributes;
            Render.Table(call.Console, ["key", "value", "source"], attributes.Select(kv => (IReadOnlyList<string?>)[kv.Key, kv.Value,
                s.OperatorAttributes?.ContainsKey(kv.Key) == true
                    ? s.ReportedAttributes?.TryGetValue(kv.Key, out var reported) == true ? $"operator (device reports {reported})" : "operator"
                    : "device"]), $"attributes of {s.DeviceId}");
            if (attributes.Count == 0) call.Console.Out.WriteLine($"Device {s.DeviceId} has no attributes yet (its agent reports them when it checks in).");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> SetChannelAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var id = Id(call);
        var channel = call.Positionals[1];
        if (Orchestrator.Messages.Channels.ChannelRules.Problem("CHANNEL", channel) is { } bad) throw new UsageException(bad);
        var s = await client.PostAsync<DeviceState>($"/admin/v1/devices/{id}/channel", new DeviceChannelRequest(channel), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, s);
        else call.Console.Out.WriteLine($"Device {s.DeviceId} is now in channel {s.Channel} ({s.Product}); it converges to that channel's release on its next check-in.");
        return ExitCodes.Success;
    }

    private static string Id(CommandInvocation call) => ServerCommands.DeviceId(call.Positionals[0]);

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var query = new List<string>();
        if (call.Optional("status") is { } status)
        {
            if (!DeviceStatusNames.All.Contains(status, StringComparer.OrdinalIgnoreCase))
                throw new UsageException($"--status '{status}' is not a device status; use one of {string.Join(", ", DeviceStatusNames.All)}.");
            query.Add("status=" + Uri.EscapeDataString(status));
        }
        if (call.OptionalLong("version-id", 0) is { } versionId) query.Add($"versionId={versionId}");
        if (call.Optional("tag") is { } tag) query.Add("tag=" + Uri.EscapeDataString(tag));
        if (call.Optional("rollout") is { } rollout) query.Add("rollout=" + Uri.EscapeDataString(rollout));
        foreach (var (k, v) in ServerCommands.Attributes(call, "attributes") ?? []) query.Add("attribute=" + Uri.EscapeDataString($"{k}={v}"));
        query.Add($"limit={call.OptionalLong("limit", 1, 100_000) ?? 100}");
        var list = await client.GetAsync<DeviceList>("/admin/v1/devices?" + string.Join("&", query), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, list);
        else
        {
            // A stale device (no valid director-signed directive for too long) and one without a working updater say so in their status cell.
            Render.Table(call.Console, ["device", "status", "product", "installed", "target", "rollout", "failures", "tags", "last seen"],
                list.Devices.Select(d => (IReadOnlyList<string?>)[d.DeviceId, d.Status + (d.Stale ? " STALE" : "") + (d.UpdaterLost ? " NO-UPDATER" : ""), d.Product, d.InstalledVersionId.ToString(),
                    d.TargetVersionId?.ToString(), d.RolloutId, d.FailedAttempts.ToString(), string.Join(",", d.Tags), Render.Time(d.LastSeen)]));
            call.Console.Out.WriteLine($"{list.Devices.Count} of {list.Total} matching device(s) shown.");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> ShowAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var s = await client.GetAsync<DeviceState>($"/admin/v1/devices/{Id(call)}", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, s);
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Device {s.DeviceId}: {s.Status}");
            Render.Fields(o,
            [
                ("product", s.Product),
                ("channel", s.Channel),
                ("tags", s.Tags.Count == 0 ? null : string.Join(",", s.Tags)),
                ("attributes", s.Attributes.Count == 0 ? null : string.Join(", ", s.Attributes.Select(kv => $"{kv.Key}={kv.Value}"))),
                ("installed", s.InstalledVersionId.ToString()),
                ("digest", s.InventoryDigest),
                ("agent", s.AgentVersion),
                ("target", s.Target is null ? null : $"{s.Target.Product} {s.Target.Version} (id {s.Target.VersionId}) from rollout {s.Target.RolloutId}"),
                ("work", s.Work is null ? null : $"{s.Work.Kind} to {s.Work.Version} (id {s.Work.VersionId})" +
                    (s.Work.RepairFiles.Count > 0 ? $", files {string.Join(",", s.Work.RepairFiles)}" : "")),
                ("progress", s.Progress is null ? null
                    : $"{s.Progress.Phase} {Render.Bytes(s.Progress.BytesDone)} of {Render.Bytes(s.Progress.BytesTotal)}, {s.Progress.ChunksDone}/{s.Progress.ChunksTotal} chunks"),
                ("failures", s.FailedAttempts.ToString()),
                ("last failure", s.LastFailure is null ? null : $"{s.LastFailure.Stage}: {s.LastFailure.Reason} at {Render.Time(s.LastFailure.At)}"),
                ("last seen", Render.Time(s.LastSeen)),
                ("floor", s.FloorVersionId.ToString()),
                ("trust", s.Stale ? "STALE: the agent reports no valid director-signed directive for too long" : "fresh"),
                ("updater", s.UpdaterLost is { } lost
                    ? $"NONE WORKING since {Render.Time(lost.At)}: {lost.Reason} (repair the device's image if needed, then run `orch-agent recover --from-virtual` on it)"
                    : "working"),
                ("decommissioned", s.Decommissioned is { } retired ? $"{Render.Time(retired)} (history kept; nothing it sends is taken)" : null),
                ("events", s.EventCount.ToString()),
            ]);
        }
        return ExitCodes.Success;
    }

    private static async Task<int> HistoryAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var last = call.OptionalLong("last", 1, int.MaxValue);
        var view = await client.GetAsync<DeviceHistoryView>($"/admin/v1/devices/{Id(call)}/history{(last is null ? "" : $"?last={last}")}", ct)
            .ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else Render.Table(call.Console, ["#", "at", "event", "what happened"],
            view.Events.Select(e => (IReadOnlyList<string?>)[e.SequenceNr.ToString(), Render.Time(e.At), e.Type, e.Summary]),
            $"history of {view.DeviceId}");
        return ExitCodes.Success;
    }

    private static async Task<int> SetProductAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var id = Id(call);
        var product = call.Required("product");
        var ok = await client.PostAsync<DeviceCommandAccepted>($"/admin/v1/devices/{id}/product", new DeviceProductRequest(product), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, ok);
        else call.Console.Out.WriteLine($"Device {id} now runs product {product} (status {ok.Status}); its assignment and floor were reset.");
        return ExitCodes.Success;
    }

    private static async Task<int> DecommissionAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var id = Id(call);
        var ok = await client.PostAsync<DeviceCommandAccepted>($"/admin/v1/devices/{id}/decommission",
            new DeviceDecommissionRequest(call.Required("reason")), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, ok);
        else call.Console.Out.WriteLine($"Device {id} is decommissioned: its credential is revoked and it left the fleet views; `orch device history {id}` keeps its past.");
        return ExitCodes.Success;
    }

    private static async Task<int> ProvisionAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var batch = call.Has("count") || call.Has("prefix") || call.Has("csv") || call.Has("start") || call.Has("out");
        if (call.Positionals.Count == 0 && !batch)
            throw new UsageException($"Give DEVICE, or --count N --prefix P, or --csv FILE for many devices. Usage: {call.Spec.Usage}");
        if (call.Positionals.Count > 0 && batch)
            throw new UsageException("--count, --prefix, --start, --csv and --out provision many devices; give them without DEVICE.");
        if (batch) return await ProvisionManyAsync(call, client, ct).ConfigureAwait(false);
        var id = Id(call);
        var product = call.Optional("product");
        var tags = ServerCommands.List(call, "tags") ?? [];
        if (tags.Length > 0 && product is null)
            throw new UsageException("--tags needs --product: tags are recorded when the device is registered with its product.");
        var credential = await client.PostAsync<JsonElement>($"/admin/v1/devices/{id}/credential", new CredentialRequest(call.Has("rotate")), ct).ConfigureAwait(false);
        DeviceCommandAccepted? registered = null;
        if (product is not null)
            registered = await client.PostAsync<DeviceCommandAccepted>($"/admin/v1/devices/{id}/register", new DeviceRegistrationRequest(product, tags), ct)
                .ConfigureAwait(false);
        var secret = credential.GetProperty("secret").GetString();
        if (call.Json)
            Render.Json(call.Console.Out, new DeviceProvisionOutput(id, secret, credential.GetProperty("createdUtc").GetDateTimeOffset(),
                registered is not null, product, tags, registered?.Status));
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Provisioned device {id}{(call.Has("rotate") ? " (credential rotated; the old secret no longer works)" : "")}.");
            o.WriteLine($"  secret  {secret}");
            o.WriteLine("  This secret is shown only now: put it in the device agent's configuration.");
            if (registered is not null) o.WriteLine($"  registered for {product}{(tags.Length > 0 ? $" with tags {string.Join(",", tags)}" : "")}; status {registered.Status}");
        }
        return ExitCodes.Success;
    }

    // Everything is checked here before the request, and the node checks it again in full before it writes anything;
    // the secrets then arrive once, streamed, and are written as they come so none is held longer than a batch.
    private static async Task<int> ProvisionManyAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        if (call.Has("rotate")) throw new UsageException("--rotate replaces one device's credential; give DEVICE (many devices are provisioned only when none has a credential).");
        var product = call.Optional("product");
        var tags = Tags(call);
        if (tags.Length > 0 && product is null)
            throw new UsageException("--tags needs --product: tags are recorded when the devices are registered with their product.");
        DeviceBatchProvisionRequest request;
        if (call.Optional("csv") is { } csv)
        {
            if (call.Has("count") || call.Has("prefix") || call.Has("start"))
                throw new UsageException("--csv lists the devices; leave out --count, --prefix and --start (or use those instead of --csv).");
            request = new DeviceBatchProvisionRequest(DeviceIds: await ReadCsvIdsAsync(csv, ct).ConfigureAwait(false));
        }
        else
        {
            if (!call.Has("count") || !call.Has("prefix"))
                throw new UsageException($"--count N and --prefix P go together (ids P1..PN); or give --csv FILE. Usage: {call.Spec.Usage}");
            var count = (int)call.OptionalLong("count", 1, DeviceBatchProvisionRequest.MaxDevices)!.Value;
            request = new DeviceBatchProvisionRequest(call.Required("prefix"), count, call.OptionalLong("start", 0, int.MaxValue) ?? 1);
            foreach (var probe in new[] { request.GeneratedId(0), request.GeneratedId(count - 1) })
                if (!DeviceIdRules.IsValid(probe))
                    throw new UsageException($"--prefix '{request.Prefix}' gives the id '{probe}', which is not a device id ({DeviceIdRules.Pattern}); choose another prefix.");
        }

        var outPath = call.Optional("out");
        if (outPath is not null && (File.Exists(outPath) || Directory.Exists(outPath)))
            throw new UsageException($"--out '{outPath}' exists; name a new file (credentials are never written over another file).");
        using var response = await client.OpenStreamAsync(HttpMethod.Post, "/admin/v1/devices/provision-batch", request, ct).ConfigureAwait(false);
        Stream? file = null;
        TextWriter output;
        if (outPath is not null)
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            file = new FileStream(outPath, options);
            output = new StreamWriter(file);
        }
        else output = call.Console.Out;
        var provisioned = new List<string>();
        DeviceProvisionLine? last = null;
        string? cut = null;
        try
        {
            if (!call.Json) output.WriteLine("device,secret");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false));
            while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } text)
            {
                if (text.Length == 0) continue;
                var line = JsonSerializer.Deserialize(text, CliJson.TypeInfo<DeviceProvisionLine>(CliJson.Wire))
                    ?? throw new AdminApiException(ExitCodes.Failure, "bad_answer", $"{client.Server} sent an empty provisioning line.");
                if (line.DeviceId is not null && line.Secret is not null)
                {
                    provisioned.Add(line.DeviceId);
                    output.WriteLine(call.Json ? text : $"{line.DeviceId},{line.Secret}");
                    continue;
                }
                last = line;
                break;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            cut = $"reading the answer from {client.Server} or writing the credentials stopped ({ex.Message}).";
        }
        finally
        {
            await output.FlushAsync(ct).ConfigureAwait(false);
            if (file is not null) { await output.DisposeAsync().ConfigureAwait(false); }
        }
        var where = outPath is null ? "above" : $"in {outPath}";
        if (last is not { Done: true })
            throw new AdminApiException(ExitCodes.Unavailable, last?.Error ?? "stream_cut",
                $"{provisioned.Count} of {request.DeviceIds?.Count ?? request.Count} devices were provisioned (credentials {where}), then " +
                (last?.Message ?? cut ?? $"the answer from {client.Server} ended early.") + " Provision the rest again (those already done are refused as credential_exists).");
        var status = outPath is null ? call.Console.Error : call.Console.Out;
        if (!call.Json) status.WriteLine($"Provisioned {last.Devices} device(s); their secrets are {where} and shown only this once.");
        if (product is not null)
        {
            var total = await RegisterAllAsync(client, provisioned, product, tags, ct).ConfigureAwait(false);
            if (!call.Json) status.WriteLine($"Registered them for {product}{(tags.Length > 0 ? $" with tags {string.Join(",", tags)}" : "")}: {total.Registered} registered, {total.Unchanged} already so.");
        }
        return ExitCodes.Success;
    }

    private static string[] Tags(CommandInvocation call) =>
        ServerCommands.List(call, "tags") ?? [];

    // First column of each line; a header whose first cell is no valid id (device, deviceId, id) is skipped, and so are
    // blank and # lines. A bad id or a repeat names its line: nothing is sent.
    private static async Task<List<string>> ReadCsvIdsAsync(string file, CancellationToken ct)
    {
        if (!File.Exists(file)) throw new UsageException($"--csv '{file}' does not exist; give a file with one device id per line (first column).");
        var ids = new List<string>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var lineNo = 0;
        var first = true;
        foreach (var raw in await File.ReadAllLinesAsync(file, ct).ConfigureAwait(false))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var id = line.Split(',', 2)[0].Trim().Trim('"');
            if (first && id.ToLowerInvariant() is "device" or "deviceid" or "device_id" or "id") { first = false; continue; }
            first = false;
            if (!DeviceIdRules.IsValid(id))
                throw new UsageException($"{file}:{lineNo}: '{id}' is not a valid device id ({DeviceIdRules.Pattern}); fix the line. Nothing was provisioned.");
            if (!seen.TryAdd(id, lineNo))
                throw new UsageException($"{file}:{lineNo}: device '{id}' is already listed on line {seen[id]}; list each device once. Nothing was provisioned.");
            ids.Add(id);
        }
        if (ids.Count == 0) throw new UsageException($"--csv '{file}' names no device (one id per line in the first column).");
        if (ids.Count > DeviceBatchProvisionRequest.MaxDevices)
            throw new UsageException($"--csv '{file}' lists {ids.Count} devices; at most {DeviceBatchProvisionRequest.MaxDevices} per run: split the file. Nothing was provisioned.");
        return ids;
    }

    private static async Task<DeviceBatchRegistered> RegisterAllAsync(AdminClient client, IReadOnlyList<string> ids, string product, string[] tags, CancellationToken ct)
    {
        var total = new DeviceBatchRegistered(0, 0, 0);
        foreach (var chunk in ids.Chunk(DeviceBatchRegistrationRequest.MaxDevices))
        {
            var request = new DeviceBatchRegistrationRequest(chunk.Select(id => new DeviceBatchEntry(id, product, tags)).ToList());
            var done = await client.PostAsync<DeviceBatchRegistered>("/admin/v1/devices/register-batch", request, ct).ConfigureAwait(false);
            total = new DeviceBatchRegistered(total.Devices + done.Devices, total.Registered + done.Registered, total.Unchanged + done.Unchanged);
        }
        return total;
    }

    // The file is read and every id checked here first, so a typo on line 90 000 changes nothing; the server then checks
    // each request of up to DeviceBatchRegistrationRequest.MaxDevices in full before writing any of it.
    private static async Task<int> RegisterBatchAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var file = call.Positionals[0];
        if (!File.Exists(file)) throw new UsageException($"Device list '{file}' does not exist; give a file with one device id per line.");
        var product = call.Required("product");
        var tags = ServerCommands.List(call, "tags") ?? [];
        var ids = new List<string>();
        var lineNo = 0;
        foreach (var raw in await File.ReadAllLinesAsync(file, ct).ConfigureAwait(false))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (!DeviceIdRules.IsValid(line))
                throw new UsageException($"{file}:{lineNo}: '{line}' is not a valid device id ({DeviceIdRules.Pattern}); fix the line. Nothing was registered.");
            ids.Add(line);
        }
        if (ids.Count == 0) throw new UsageException($"Device list '{file}' names no device (one id per line; blank lines and # comments are skipped).");
        var total = new DeviceBatchRegistered(0, 0, 0);
        foreach (var chunk in ids.Chunk(DeviceBatchRegistrationRequest.MaxDevices))
        {
            var request = new DeviceBatchRegistrationRequest(chunk.Select(id => new DeviceBatchEntry(id, product, tags)).ToList());
            var done = await client.PostAsync<DeviceBatchRegistered>("/admin/v1/devices/register-batch", request, ct).ConfigureAwait(false);
            total = new DeviceBatchRegistered(total.Devices + done.Devices, total.Registered + done.Registered, total.Unchanged + done.Unchanged);
        }
        if (call.Json) Render.Json(call.Console.Out, total);
        else call.Console.Out.WriteLine($"{total.Devices} device(s) for {product}{(tags.Length > 0 ? $" with tags {string.Join(",", tags)}" : "")}: " +
                                        $"{total.Registered} registered, {total.Unchanged} already so.");
        return ExitCodes.Success;
    }
}
