namespace Orchestrator.CommandLine;

/// <summary>One <c>--switch</c> a command accepts.</summary>
/// <param name="Name">Name without the dashes, e.g. <c>store</c>.</param>
/// <param name="ValueName">Placeholder for its value (e.g. <c>DIR</c>); null for a flag without value.</param>
/// <param name="Description">One line of help.</param>
/// <param name="Required">Whether the command refuses to run without it.</param>
public sealed record SwitchSpec(string Name, string? ValueName, string Description = "", bool Required = false)
{
    /// <summary>True for flags such as <c>--json</c>.</summary>
    public bool IsFlag => ValueName is null;

    /// <summary>A switch that takes a value.</summary>
    public static SwitchSpec Value(string name, string valueName, string description = "", bool required = false) =>
        new(name, valueName, description, required);

    /// <summary>A flag (no value).</summary>
    public static SwitchSpec Flag(string name, string description = "") => new(name, null, description);
}
