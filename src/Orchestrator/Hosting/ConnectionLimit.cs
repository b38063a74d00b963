using System.Globalization;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// The connection limit the node runs with: <c>Admission:MaxConnections</c>, lowered when the process's open-file limit
/// would run out first. Every connection holds a file descriptor; a node that runs out of them cannot open its database,
/// its store files or a thread's handles, and the runtime may end the process, so connections beyond what the limit
/// leaves after <see cref="Reserve"/> are closed at once (Kestrel's connection limit) instead, and the node accepts no
/// connection while it holds <see cref="AcceptLimit"/> (the kernel's listen backlog keeps the rest), so closing them under a
/// flood cannot take the last descriptors either.
/// </summary>
/// <param name="Configured">Admission:MaxConnections.</param>
/// <param name="Effective">The limit applied.</param>
/// <param name="OpenFiles">The process's open-file limit (soft), or null where it could not be read.</param>
public sealed record ConnectionLimit(int Configured, int Effective, long? OpenFiles)
{
    /// <summary>Fewest connections the node is ever limited to.</summary>
    public const int Minimum = 16;

    /// <summary>
    /// Accepted connections the node holds at most, open or closing (<see cref="ConnectionAcceptGate"/>): <see cref="Effective"/>
    /// plus half the <see cref="Reserve"/>, so the connections Kestrel closes at its limit have room to be closed while the
    /// other half of the reserve stays for the database, the store and the runtime. Null where the open-file limit is unknown.
    /// </summary>
    public int? AcceptLimit
    {
        get
        {
            if (OpenFiles is not { } files) return null;
            var half = Reserve(files) / 2;
            // At least Effective even where the minimum took from the reserve; never more than Effective + half (nor an int).
            return (int)Math.Min(int.MaxValue, Math.Max(Effective, Math.Min(Effective + half, files - half)));
        }
    }

    /// <summary>Whether the open-file limit lowered the configured one.</summary>
    public bool Lowered => Effective < Configured;

    /// <summary>
    /// Descriptors kept for everything but connections (database, journal, store files served, logs, cluster peers, the
    /// runtime): an eighth of the limit, at least 1024.
    /// </summary>
    public static long Reserve(long openFiles) => Math.Max(1024, openFiles / 8);

    /// <summary>The limit for <paramref name="configured"/> connections under an open-file limit of <paramref name="openFiles"/>.</summary>
    public static ConnectionLimit For(int configured, long? openFiles)
    {
        if (openFiles is not { } files) return new ConnectionLimit(configured, configured, null);
        var room = Math.Max(Minimum, files - Reserve(files));
        return new ConnectionLimit(configured, (int)Math.Min(configured, room), files);
    }

    /// <summary>The limit for <paramref name="configured"/> connections in this process.</summary>
    public static ConnectionLimit ForThisProcess(int configured) => For(configured, ReadOpenFilesLimit("/proc/self/limits"));

    /// <summary>
    /// The soft "Max open files" of a Linux <c>/proc/&lt;pid&gt;/limits</c> file; null when there is none (not Linux) or it
    /// says unlimited.
    /// </summary>
    public static long? ReadOpenFilesLimit(string limitsFile)
    {
        try
        {
            if (!File.Exists(limitsFile)) return null;
            foreach (var line in File.ReadLines(limitsFile))
            {
                if (!line.StartsWith("Max open files", StringComparison.Ordinal)) continue;
                var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) ? soft : null;
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
