using System.Text.RegularExpressions;

namespace Orchestrator.Messages.Channels;

/// <summary>
/// Channel names and device membership. A device belongs to the channel named by its tag <c>channel:NAME</c>
/// (at most one such tag), else to <see cref="DefaultChannel"/>; membership is changed by re-registering the device's
/// tags (<c>orch device set-channel</c> does exactly that), so rollout selectors, the registry and the device actor
/// all read it from the one place tags already live.
/// </summary>
public static partial class ChannelRules
{
    /// <summary>The channel of a device without a channel tag, and of a rollout that names none.</summary>
    public const string DefaultChannel = "stable";

    /// <summary>Prefix of the membership tag.</summary>
    public const string TagPrefix = "channel:";

    /// <summary>Channel and product names, as in docs/store-format.md.</summary>
    public const string NamePattern = "^[a-z0-9][a-z0-9._-]{0,63}$";

    [GeneratedRegex(NamePattern, RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();

    /// <summary>True when <paramref name="name"/> is a valid channel (or product) name.</summary>
    public static bool IsValidName(string? name) => name is not null && NameRegex().IsMatch(name);

    /// <summary>The channel a device with <paramref name="tags"/> belongs to.</summary>
    public static string ChannelOf(IReadOnlyList<string> tags)
    {
        foreach (var t in tags)
            if (t.StartsWith(TagPrefix, StringComparison.Ordinal) && NameRegex().IsMatch(t.AsSpan(TagPrefix.Length)))
                return t[TagPrefix.Length..];
        return DefaultChannel;
    }

    /// <summary><paramref name="tags"/> with every channel tag replaced by the one of <paramref name="channel"/> (none for the default channel).</summary>
    public static IReadOnlyList<string> WithChannel(IReadOnlyList<string> tags, string channel)
    {
        var rest = tags.Where(t => !t.StartsWith(TagPrefix, StringComparison.Ordinal));
        return channel == DefaultChannel ? rest.ToList() : rest.Append(TagPrefix + channel).ToList();
    }

    /// <summary>Null when <paramref name="name"/> is valid, else a message naming the input and the rule.</summary>
    public static string? Problem(string field, string? name) => IsValidName(name)
        ? null
        : $"{field} '{name}' is not a valid name: use lower-case letters, digits, '.', '_', '-' (at most 64, starting with a letter or digit).";
}
