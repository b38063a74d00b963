using System.Collections.Immutable;
using System.Text.RegularExpressions;

namespace Orchestrator.Messages.Protocol;

/// <summary>
/// Device attributes: <c>key=value</c> facts about a device that rollout selectors and saved groups match on. The agent
/// reports some (<c>arch</c>, <c>os</c> and whatever the device maker configured, e.g. <c>site</c> or <c>hardware</c>);
/// operators set others. Where both name a key the operator's value wins, so an operator can correct a device that
/// reports the wrong site without touching it. Attribute maps are kept sorted by key, so two equal maps are equal
/// element by element and a device that reports the same facts again writes nothing.
/// </summary>
public static partial class DeviceAttributeRules
{
    /// <summary>Key grammar: a lower-case letter, then up to 63 of lower-case letters, digits, <c>. _ -</c>.</summary>
    public const string KeyPattern = "^[a-z][a-z0-9._-]{0,63}$";

    /// <summary>Longest value.</summary>
    public const int MaxValueLength = 256;

    /// <summary>Most attributes from one source (the device, or operators).</summary>
    public const int MaxCount = 32;

    /// <summary>The empty map.</summary>
    public static ImmutableSortedDictionary<string, string> Empty { get; } = ImmutableSortedDictionary.Create<string, string>(StringComparer.Ordinal);

    [GeneratedRegex(KeyPattern, RegexOptions.CultureInvariant)]
    private static partial Regex KeyRegex();

    /// <summary>True when <paramref name="key"/> matches <see cref="KeyPattern"/>.</summary>
    public static bool IsValidKey(string? key) => key is not null && KeyRegex().IsMatch(key);

    /// <summary>What is wrong with one attribute (naming <paramref name="field"/> and the fix), or null when it is valid.</summary>
    /// <param name="field">Name of the input, for the message.</param>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    public static string? Problem(string field, string? key, string? value)
    {
        if (!IsValidKey(key))
            return $"{field}: attribute key '{key}' is invalid: it must match {KeyPattern} (e.g. site, hw.model, os-version).";
        if (string.IsNullOrWhiteSpace(value) || value.Length > MaxValueLength || value.Any(char.IsControl) || value.Trim() != value)
            return $"{field}: the value of attribute '{key}' must be 1-{MaxValueLength} characters without control characters or " +
                   "leading/trailing spaces (remove an attribute instead of setting it empty).";
        return null;
    }

    /// <summary>What is wrong with a whole map (the first broken rule), or null when it is valid.</summary>
    /// <param name="field">Name of the input, for the message.</param>
    /// <param name="attributes">The map (null is valid: nothing).</param>
    public static string? Problem(string field, IReadOnlyDictionary<string, string>? attributes)
    {
        if (attributes is null) return null;
        if (attributes.Count > MaxCount)
            return $"{field}: {attributes.Count} attributes given; at most {MaxCount} are kept per device and source.";
        foreach (var (k, v) in attributes)
            if (Problem(field, k, v) is { } bad) return bad;
        return null;
    }

    /// <summary>A sorted copy of <paramref name="attributes"/>, or throws an <see cref="ArgumentException"/> naming the broken rule.</summary>
    /// <param name="attributes">The map (null: empty).</param>
    /// <param name="parameterName">Name of the input, for the message.</param>
    public static ImmutableSortedDictionary<string, string> Validate(IReadOnlyDictionary<string, string>? attributes, string parameterName)
    {
        if (Problem(parameterName, attributes) is { } bad) throw new ArgumentException(bad, parameterName);
        return attributes is null or { Count: 0 } ? Empty : ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, attributes);
    }

    /// <summary>The attributes a device has: those it reports, overridden key by key by those operators set.</summary>
    /// <param name="reported">Reported by the device (null: none).</param>
    /// <param name="operatorSet">Set by operators (null: none).</param>
    public static ImmutableSortedDictionary<string, string> Effective(IReadOnlyDictionary<string, string>? reported, IReadOnlyDictionary<string, string>? operatorSet)
    {
        if (operatorSet is null or { Count: 0 }) return reported is null or { Count: 0 } ? Empty : ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, reported);
        var b = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        if (reported is not null) foreach (var (k, v) in reported) b[k] = v;
        foreach (var (k, v) in operatorSet) b[k] = v;
        return b.ToImmutable();
    }

    /// <summary>True when both maps hold the same keys with the same values (null and empty are equal).</summary>
    public static bool SameAs(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b)
    {
        if ((a?.Count ?? 0) != (b?.Count ?? 0)) return false;
        if (a is null || b is null) return true;
        foreach (var (k, v) in a)
            if (!b.TryGetValue(k, out var other) || !string.Equals(v, other, StringComparison.Ordinal)) return false;
        return true;
    }

    /// <summary>True when <paramref name="attributes"/> holds every pair of <paramref name="required"/>.</summary>
    public static bool HasAll(IReadOnlyDictionary<string, string>? attributes, IReadOnlyDictionary<string, string> required) =>
        HasAll(attributes, null, required);

    /// <summary>
    /// True when the effective attributes of a device (<paramref name="reported"/> overridden by <paramref name="operatorSet"/>,
    /// as <see cref="Effective"/>) hold every pair of <paramref name="required"/>, without building them.
    /// </summary>
    public static bool HasAll(IReadOnlyDictionary<string, string>? reported, IReadOnlyDictionary<string, string>? operatorSet,
        IReadOnlyDictionary<string, string> required)
    {
        foreach (var (k, v) in required)
        {
            string? have = null;
            if (operatorSet?.TryGetValue(k, out have) != true) reported?.TryGetValue(k, out have);
            if (!string.Equals(have, v, StringComparison.Ordinal)) return false;
        }
        return true;
    }

    /// <summary>Splits <c>key=value</c> (the command line's form); null when there is no <c>=</c>.</summary>
    public static (string Key, string Value)? ParsePair(string text)
    {
        var eq = text.IndexOf('=', StringComparison.Ordinal);
        return eq <= 0 ? null : (text[..eq].Trim(), text[(eq + 1)..].Trim());
    }
}
