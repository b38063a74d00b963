using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Launching;
using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// A release's health check, declared by the release itself in <c>.orch/health.json</c> inside its tree:
/// <c>{"command": "bin/app", "arguments": ["--health"], "timeoutSeconds": 10}</c>. The file is part of the release, so
/// the signed manifest pins its bytes: only whoever may sign the release may set or change its health check (a
/// gateway, mirror or the device's configuration cannot).
/// </summary>
/// <param name="Command">Program to run, relative to the release tree.</param>
/// <param name="Arguments">Its arguments.</param>
/// <param name="TimeoutSeconds">Time limit, 1..600; a check still running then has failed.</param>
public sealed record HealthDeclaration(string Command, IReadOnlyList<string>? Arguments = null, int TimeoutSeconds = 30);

/// <summary>Source-generated JSON of <see cref="HealthDeclaration"/> (no reflection in the AOT agent).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(HealthDeclaration))]
internal sealed partial class HealthJsonContext : JsonSerializerContext;

/// <summary>
/// Runs a new release's health check at the installed path, after the swap and before its version is recorded
/// (<see cref="UpdateSession.CheckInstalledTree"/>): the previous version stays parked until the new one is healthy and
/// is put back on failure, so a kill at any step leaves exactly one version that passed its checks, and a failure is
/// reported with the check's output (verify stage) and counted by the rollout. The command runs in the installed
/// tree (working directory, and <c>ORCH_RELEASE_ROOT</c>), so a program that reads its own location sees the real
/// one; a release without the file is accepted.
/// </summary>
public sealed class ClientHealthCheck(Action<string> log, CrashPoints? crash = null)
{
    /// <summary>Where a release declares its health check, relative to its tree.</summary>
    public const string DeclarationPath = ".orch/health.json";

    /// <summary>Environment variable naming the tree under test.</summary>
    public const string RootVariable = "ORCH_RELEASE_ROOT";

    /// <summary>True when the release in <paramref name="tree"/> declares a health check.</summary>
    public static bool IsDeclared(string tree) => File.Exists(Path.Combine(tree, DeclarationPath));

    /// <summary>Checks the tree at <paramref name="tree"/>; null when healthy (or nothing is declared), else why not.</summary>
    public async Task<string?> CheckAsync(string tree, CancellationToken ct)
    {
        if (!IsDeclared(tree)) return null;
        var file = Path.Combine(tree, DeclarationPath);
        HealthDeclaration? health;
        try
        {
            health = JsonSerializer.Deserialize(File.ReadAllBytes(file), HealthJsonContext.Default.HealthDeclaration);
        }
        catch (JsonException e)
        {
            return $"the release's {DeclarationPath} is not a health declaration ({e.Message}); expected {{\"command\": \"bin/app\", \"arguments\": [...], \"timeoutSeconds\": 30}}";
        }
        if (health is null || string.IsNullOrWhiteSpace(health.Command) || !TreeInventory.IsSafeRelativePath(health.Command))
            return $"the release's {DeclarationPath} names no command inside the release (relative path, no '..')";
        if (health.TimeoutSeconds is < 1 or > 600)
            return $"the release's {DeclarationPath} has timeoutSeconds {health.TimeoutSeconds}; use 1..600";
        var exe = Path.Combine(tree, health.Command);
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = tree };
        foreach (var a in health.Arguments ?? []) psi.ArgumentList.Add(a);
        psi.Environment[RootVariable] = tree;
        psi.Environment.Remove(CrashPoints.EnvironmentVariable);
        log($"health check: {health.Command} {string.Join(' ', health.Arguments ?? [])} (limit {health.TimeoutSeconds} s)");
        BoundedProcess.Outcome run;
        try
        {
            run = await BoundedProcess.RunAsync(psi, TimeSpan.FromSeconds(health.TimeoutSeconds), ct);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"health check '{health.Command}' could not be started: {e.Message}";
        }
        if (run.ExitCode is not { } code) return $"health check '{health.Command}' did not finish within {health.TimeoutSeconds} s";
        var output = BoundedProcess.Clip(run.Output, 600);
        if (code != 0) return $"health check '{health.Command}' failed with exit code {code}: {output}";
        log($"health check passed: {output}");
        crash?.Reached(CrashPoints.HealthChecked);
        return null;
    }
}
