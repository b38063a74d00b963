namespace Orchestrator.Cli.CommandLine;

/// <summary>
/// Process exit codes of <c>orch</c>; scripts may rely on them (also listed by <c>orch help</c>).
/// </summary>
public static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Success = 0;

    /// <summary>Unexpected failure (I/O error, bug); the message says what happened.</summary>
    public const int Failure = 1;

    /// <summary>The command line is wrong: unknown palette, command or switch, missing or malformed value.</summary>
    public const int Usage = 2;

    /// <summary>An input was rejected (names, tree, version ID, keys, store path); nothing was changed.</summary>
    public const int InvalidInput = 3;

    /// <summary>Stored data failed an integrity check (<c>store verify</c> found problems).</summary>
    public const int IntegrityProblem = 4;

    /// <summary>The store is locked by another writer; nothing was changed, retry later.</summary>
    public const int Busy = 5;

    /// <summary>(code, meaning) pairs for help output.</summary>
    public static IReadOnlyList<(int Code, string Meaning)> All { get; } =
    [
        (Success, "success"),
        (Failure, "unexpected failure (I/O error, bug)"),
        (Usage, "bad command line (unknown command or switch, missing or malformed value)"),
        (InvalidInput, "input rejected (names, tree, version ID, keys, store); nothing changed"),
        (IntegrityProblem, "integrity problem found (store verify)"),
        (Busy, "store locked by another writer; nothing changed, retry later"),
    ];
}
