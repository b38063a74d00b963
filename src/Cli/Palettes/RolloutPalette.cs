using System.Globalization;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Rollouts;
using Spectre.Console;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch rollout ...</c>: phased rollouts over <c>/admin/v1/rollouts</c>, including a live <c>watch</c>.</summary>
public static class RolloutPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Rollout, new Dictionary<string, ServerHandler>
        {
            ["list"] = ListAsync,
            ["show"] = ShowAsync,
            ["create"] = CreateAsync,
            ["pause"] = (call, client, ct) => ActionAsync(call, client, "pause", ct),
            ["resume"] = (call, client, ct) => ActionAsync(call, client, "resume", ct),
            ["abort"] = (call, client, ct) => ActionAsync(call, client, "abort", ct),
            ["rollback"] = (call, client, ct) => ActionAsync(call, client, "rollback", ct),
            ["retry"] = (call, client, ct) => ActionAsync(call, client, "retry-failed", ct),
            ["watch"] = WatchAsync,
        });

    private static string Id(CommandInvocation call)
    {
        var id = call.Positionals[0];
        return RolloutRules.IsValidId(id) ? id : throw new UsageException($"ROLLOUT '{id}' is not a rollout id: it must match {RolloutRules.IdPattern}.");
    }

    private static bool IsFinal(RolloutStatus s) => s is RolloutStatus.Completed or RolloutStatus.Aborted or RolloutStatus.RolledBack;

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var list = await client.GetAsync<RolloutList>($"/admin/v1/rollouts?all={(call.Has("active") ? "false" : "true")}", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, list);
        else
        {
            Render.Table(call.Console, ["rollout", "product", "version", "status", "wave", "devices", "succeeded", "failed"],
                list.Rollouts.Select(r => (IReadOnlyList<string?>)[r.RolloutId, r.Product, r.Version, r.Status.ToString(), $"{r.CurrentWave}/{r.WaveCount}",
                    r.Total.ToString(), r.Succeeded.ToString(), r.Failed.ToString()]));
            call.Console.Out.WriteLine($"{list.Rollouts.Count} rollout(s).");
        }
        return ExitCodes.Success;
    }

    private static Task<RolloutView> GetAsync(AdminClient client, string id, CancellationToken ct) =>
        client.GetAsync<RolloutView>($"/admin/v1/rollouts/{id}", ct);

    private static async Task<int> ShowAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var view = await GetAsync(client, Id(call), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else WriteView(call, view);
        return ExitCodes.Success;
    }

    private static void WriteView(CommandInvocation call, RolloutView v)
    {
        var o = call.Console.Out;
        var s = v.Spec;
        o.WriteLine($"Rollout {s.RolloutId}: {s.Target.Product} {s.Target.Version} (version ID {s.Target.VersionId}) on channel {s.Channel} - {v.Status}, wave {v.CurrentWave} of {v.Waves.Count}");
        Render.Fields(o,
        [
            ("reason", v.PauseReason),
            ("selector", string.Join("; ", new[]
            {
                s.Selector.Tags.Count > 0 ? "tags " + string.Join(",", s.Selector.Tags) : null,
                s.Selector.DeviceIds.Count > 0 ? "devices " + string.Join(",", s.Selector.DeviceIds) : null,
                s.Selector.Groups.Count > 0 ? "groups " + string.Join(",", s.Selector.Groups.Select(g => g.Name)) : null,
                s.Selector.Attributes is { Count: > 0 } a ? "attributes " + string.Join(",", a.Select(kv => $"{kv.Key}={kv.Value}")) : null,
                s.Selector.InstalledVersionIds is { Count: > 0 } iv ? "installed version IDs " + string.Join(",", iv) : null,
            }.OfType<string>())),
            ("thresholds", $"success {s.SuccessThreshold.ToString("0.##", CultureInfo.InvariantCulture)}, error {s.ErrorThreshold.ToString("0.##", CultureInfo.InvariantCulture)}, " +
                (s.MaxAttemptsPerDevice > 0 ? $"max {s.MaxAttemptsPerDevice} attempts/device" : "devices retry until success") +
                $", failing after {s.FailingAfterAttempts} attempts, {s.MaxConcurrent} concurrent, soak {s.SoakSeconds} s" +
                (s.DeviceTimeoutSeconds > 0 ? $", device timeout {s.DeviceTimeoutSeconds} s" : "")),
            ("created", $"{Render.Time(v.CreatedAt)} by {s.CreatedBy}"),
            ("updated", Render.Time(v.UpdatedAt) + (v.CommandsPending ? " (commands still being delivered to devices)" : "")),
            ("rollback", v.Rollback is { } rb ? $"{rb.Restored} of {rb.Total} devices back on their previous version, {rb.InProgress} in progress, {rb.Failed} failed" : null),
        ]);
        Render.Table(call.Console, ["wave", "progress", "total", "succeeded", "in progress", "failed", "pending"],
            v.Waves.Select(w => (IReadOnlyList<string?>)[w.Wave.ToString(), TextBar(w), w.Total.ToString(), w.Succeeded.ToString(), w.InProgress.ToString(),
                w.Failed.ToString(), w.Pending.ToString()]));
        if (v.Failures.Count > 0)
            Render.Table(call.Console, ["failed device", "wave", "reason"], v.Failures.Select(f => (IReadOnlyList<string?>)[f.DeviceId, f.Wave.ToString(), f.Reason]));
    }

    /// <summary>A 20-character bar: '#' succeeded, '>' in progress, 'x' failed, '.' pending.</summary>
    public static string TextBar(WaveCounters w)
    {
        if (w.Total == 0) return new string('.', 20);
        int Cells(int n) => (int)Math.Round(20.0 * n / w.Total);
        var ok = Cells(w.Succeeded);
        var run = Math.Min(20 - ok, Cells(w.InProgress));
        var bad = Math.Min(20 - ok - run, Cells(w.Failed));
        return new string('#', ok) + new string('>', run) + new string('x', bad) + new string('.', 20 - ok - run - bad);
    }


    private static double? Fraction(CommandInvocation call, string name)
    {
        var text = call.Optional(name);
        if (text is null) return null;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && f is >= 0 and <= 1
            ? f
            : throw new UsageException($"--{name} '{text}' is not a fraction between 0 and 1, e.g. 0.95.");
    }

    /// <summary>Parses <c>--waves 5,25%,100%</c> into the API's wave list.</summary>
    internal static List<RolloutWaveRequest>? Waves(string? spec)
    {
        if (spec is null) return null;
        var waves = new List<RolloutWaveRequest>();
        foreach (var part in spec.Split(',', StringSplitOptions.TrimEntries))
        {
            if (part.EndsWith('%') && double.TryParse(part[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var pct) && pct is > 0 and <= 100)
                waves.Add(new RolloutWaveRequest(null, pct));
            else if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count > 0)
                waves.Add(new RolloutWaveRequest(count, null));
            else throw new UsageException($"--waves part '{part}' is neither a device count (e.g. 10) nor a percentage in (0,100] (e.g. 25%).");
        }
        return waves;
    }

    private static async Task<int> CreateAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        RolloutWindowRequest? window = null;
        if (call.Optional("window") is { } w)
        {
            var parts = w.Split('-');
            if (parts.Length != 2) throw new UsageException($"--window '{w}' must be HH:mm-HH:mm (UTC), e.g. 22:00-04:00.");
            window = new RolloutWindowRequest(parts[0], parts[1]);
        }
        DateTimeOffset? startAt = null;
        if (call.Optional("start-at") is { } s)
            startAt = DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
                ? t
                : throw new UsageException($"--start-at '{s}' is not a time; use ISO-8601, e.g. 2026-12-01T22:00:00Z.");
        var tags = ServerCommands.List(call, "tags");
        var devices = ServerCommands.List(call, "devices");
        var groups = ServerCommands.List(call, "groups");
        var attributes = ServerCommands.Attributes(call, "attributes");
        var installed = ServerCommands.List(call, "installed");
        if (tags is null && devices is null && groups is null && attributes is null && installed is null)
            throw new UsageException("Select devices with --tags, --attributes, --installed, --devices or --groups (a rollout to nobody is refused).");
        var body = new RolloutCreateRequest(
            Id: call.Optional("id"),
            Product: call.Required("product"),
            Version: call.Required("version"),
            Selector: new RolloutSelectorRequest(tags, devices, groups, attributes, installed),
            Waves: Waves(call.Optional("waves")),
            RandomizeOrder: call.Has("randomize") ? true : null,
            Seed: (int?)call.OptionalLong("seed", 0, int.MaxValue),
            MaxConcurrent: (int?)call.OptionalLong("max-concurrent", 1, 1_000_000),
            BandwidthBytesPerSecond: call.OptionalLong("bandwidth", 0),
            SuccessThreshold: Fraction(call, "success-threshold"),
            ErrorThreshold: Fraction(call, "error-threshold"),
            SoakSeconds: (int?)call.OptionalLong("soak", 0, 30 * 86_400),
            MaxAttemptsPerDevice: (int?)call.OptionalLong("max-attempts", 0, 1000),
            DeviceTimeoutSeconds: (int?)call.OptionalLong("device-timeout", 0, 30 * 86_400),
            StartAt: startAt,
            MaintenanceWindow: window,
            Operator: call.Optional("operator"),
            Channel: call.Optional("channel"),
            FailingAfterAttempts: (int?)call.OptionalLong("failing-after", 1, 1000));
        if (call.Has("dry-run"))
        {
            var preview = await client.PostAsync<RolloutPreview>("/admin/v1/rollouts/preview", body, ct).ConfigureAwait(false);
            if (call.Json) Render.Json(call.Console.Out, preview);
            else
            {
                var o = call.Console.Out;
                o.WriteLine($"Would roll {preview.Product} {preview.Version} (version ID {preview.VersionId}) out to {preview.Devices} device(s) of channel {preview.Channel}; nothing was created.");
                o.WriteLine($"  waves      {string.Join(", ", preview.WaveSizes)}");
                o.WriteLine($"  running    {string.Join(", ", preview.Installed.Select(i => $"{(i.VersionId is { } v ? $"version ID {v}" : "not checked in")}: {i.Devices}"))}");
                if (preview.AlreadyOnTarget > 0) o.WriteLine($"  on target  {preview.AlreadyOnTarget} already run {preview.Version}");
                o.WriteLine($"  devices    {string.Join(", ", preview.Sample)}{(preview.Devices > preview.Sample.Count ? ", ..." : "")}");
            }
            return ExitCodes.Success;
        }
        var view = await client.PostAsync<RolloutView>("/admin/v1/rollouts", body, ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            call.Console.Out.WriteLine($"Created rollout {view.Spec.RolloutId}. Follow it with: orch rollout watch {view.Spec.RolloutId}");
            WriteView(call, view);
        }
        return ExitCodes.Success;
    }

    private static async Task<int> ActionAsync(CommandInvocation call, AdminClient client, string action, CancellationToken ct)
    {
        var id = Id(call);
        var reason = call.Optional("reason");
        var view = await client.PostAsync<RolloutView>($"/admin/v1/rollouts/{id}/{action}", new RolloutActionRequest(reason), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            call.Console.Out.WriteLine($"Rollout {id}: {action} accepted; now {view.Status}.");
            WriteView(call, view);
        }
        return ExitCodes.Success;
    }

    private static string Line(RolloutView v) =>
        $"{Render.Time(v.UpdatedAt)} {v.Spec.RolloutId} {v.Status} wave {v.CurrentWave}/{v.Waves.Count} " +
        string.Join(" ", v.Waves.Select(w => $"[{w.Wave}: {w.Succeeded} ok, {w.InProgress} running{(w.Failing > 0 ? $" ({w.Failing} failing)" : "")}, {w.Failed} failed, {w.Pending} pending of {w.Total}]")) +
        (v.Rollback is { } rb ? $" [rollback: {rb.Restored} restored, {rb.InProgress} in progress, {rb.Failed} failed of {rb.Total}]" : "") +
        (v.PauseReason is null ? "" : $" reason: {v.PauseReason}");

    /// <summary>
    /// Polls the rollout every --interval seconds and streams each change: one text line (or one JSON object per
    /// line with --json) when piped, live progress bars per wave on a terminal. Ends with the rollout: exit 0 when it
    /// completed, 10 when it was aborted or rolled back; Ctrl+C ends the watch (exit 0) and leaves the rollout alone.
    /// </summary>
    private static async Task<int> WatchAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var id = Id(call);
        var interval = TimeSpan.FromSeconds(call.OptionalLong("interval", 1, 3600) ?? 2);
        RolloutView? last = null;
        try
        {
            if (call.Console.IsTerminal && !call.Json)
            {
                await Render.Ansi(call.Console).Progress().AutoClear(false).HideCompleted(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
                    .StartAsync(async ctx =>
                    {
                        var tasks = new Dictionary<int, ProgressTask>();
                        while (true)
                        {
                            last = await GetAsync(client, id, ct).ConfigureAwait(false);
                            foreach (var w in last.Waves)
                            {
                                if (!tasks.TryGetValue(w.Wave, out var task)) tasks[w.Wave] = task = ctx.AddTask($"wave {w.Wave}", maxValue: Math.Max(1, w.Total));
                                task.MaxValue = Math.Max(1, w.Total);
                                task.Value = w.Succeeded + w.Failed;
                                task.Description = Markup.Escape($"{id} wave {w.Wave}: {w.Succeeded} ok {w.InProgress} running {w.Failed} failed - {last.Status}");
                            }
                            if (IsFinal(last.Status)) return;
                            await Task.Delay(interval, ct).ConfigureAwait(false);
                        }
                    }).ConfigureAwait(false);
            }
            else
            {
                string? previous = null;
                while (true)
                {
                    last = await GetAsync(client, id, ct).ConfigureAwait(false);
                    var line = Line(last);
                    // Stream only changes (the timestamp is part of the line, so a new event prints again).
                    if (line != previous)
                    {
                        if (call.Json) call.Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(last, CliJson.TypeInfo<RolloutView>(CliJson.Wire)));
                        else call.Console.Out.WriteLine(line);
                        call.Console.Out.Flush();
                        previous = line;
                    }
                    if (IsFinal(last.Status)) break;
                    await Task.Delay(interval, ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            if (!call.Json) call.Console.Out.WriteLine($"Stopped watching {id}; the rollout itself continues{(last is null ? "" : $" ({last.Status})")}.");
            return ExitCodes.Success;
        }
        if (!call.Json && call.Console.IsTerminal) call.Console.Out.WriteLine(Line(last!));
        return last!.Status == RolloutStatus.Completed ? ExitCodes.Success : ExitCodes.WatchedFailed;
    }
}
