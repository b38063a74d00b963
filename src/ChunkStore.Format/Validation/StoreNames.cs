using System.Text.RegularExpressions;

namespace Orchestrator.ChunkStore.Validation;

/// <summary>
/// The naming rules of the store (docs/store-format.md): product and channel names, version strings, version
/// IDs. Names become path segments of the static mirror, so they are restricted to characters that are safe in
/// file names and URLs without escaping.
/// </summary>
public static partial class StoreNames
{
    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex ProductPattern();

    [GeneratedRegex(@"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex VersionPattern();

    /// <summary>True when <paramref name="name"/> is a valid product (or channel) name.</summary>
    public static bool IsValidProduct(string? name) => name is not null && ProductPattern().IsMatch(name);

    /// <summary>True when <paramref name="version"/> is a valid version string.</summary>
    public static bool IsValidVersion(string? version) =>
        version is not null && VersionPattern().IsMatch(version) && version != ReservedVersion;

    /// <summary>"index" is not a version: <c>manifests/&lt;product&gt;/index.json</c> is the release index.</summary>
    public const string ReservedVersion = "index";

    /// <summary>Throws <see cref="InvalidInputException"/> unless <paramref name="name"/> is a valid product name.</summary>
    public static void RequireProduct(string? name)
    {
        if (!IsValidProduct(name))
            throw new InvalidInputException(
                $"Product name '{name}' is invalid: use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit (e.g. 'acme-client').");
    }

    /// <summary>Throws <see cref="InvalidInputException"/> unless <paramref name="name"/> is a valid channel name.</summary>
    public static void RequireChannel(string? name)
    {
        if (!IsValidProduct(name))
            throw new InvalidInputException(
                $"Channel name '{name}' is invalid: use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit (e.g. 'stable').");
    }

    /// <summary>Throws <see cref="InvalidInputException"/> unless <paramref name="version"/> is a valid version string.</summary>
    public static void RequireVersion(string? version)
    {
        if (!IsValidVersion(version))
            throw new InvalidInputException(
                $"Version '{version}' is invalid: use 1-64 characters of A-Z, a-z, 0-9, '.', '_', '+' or '-', starting with a letter or digit, and not 'index' (e.g. '2.1.0').");
    }

    /// <summary>Throws <see cref="InvalidInputException"/> unless <paramref name="versionId"/> is at least 1.</summary>
    public static void RequireVersionId(long versionId)
    {
        if (versionId < 1)
            throw new InvalidInputException($"Version ID {versionId} is invalid: version IDs are integers >= 1 that increase with every release.");
    }
}
