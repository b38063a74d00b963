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

    /// <summary>An input was rejected (names, tree, version ID, keys, store path, or by the server: 400); nothing was changed.</summary>
    public const int InvalidInput = 3;

    /// <summary>Stored data failed an integrity check (<c>store verify</c>, <c>chunks verify</c> found problems).</summary>
    public const int IntegrityProblem = 4;

    /// <summary>The store is locked by another writer; nothing was changed, retry later.</summary>
    public const int Busy = 5;

    /// <summary>No admin token, the server does not know it (401), or it lacks the scope (403).</summary>
    public const int Unauthorized = 6;

    /// <summary>The server has no such thing (device, release, member, rollout): 404.</summary>
    public const int NotFound = 7;

    /// <summary>The server cannot be reached, timed out, or failed (5xx); retrying later may help.</summary>
    public const int Unavailable = 8;

    /// <summary>The server refused the change in the current state (409), e.g. credential exists, rollout already finished.</summary>
    public const int Conflict = 9;

    /// <summary>A watch ended because the watched thing failed or was aborted (e.g. <c>rollout watch</c> of a failed rollout).</summary>
    public const int WatchedFailed = 10;

    /// <summary>Interrupted by Ctrl+C (the shell convention 128 + SIGINT).</summary>
    public const int Interrupted = 130;

    /// <summary>(code, meaning) pairs for help output.</summary>
    public static IReadOnlyList<(int Code, string Meaning)> All { get; } =
    [
        (Success, "success"),
        (Failure, "unexpected failure (I/O error, bug)"),
        (Usage, "bad command line (unknown command or switch, missing or malformed value)"),
        (InvalidInput, "input rejected (locally or by the server); nothing changed"),
        (IntegrityProblem, "integrity problem found (store verify, chunks verify)"),
        (Busy, "store locked by another writer; nothing changed, retry later"),
        (Unauthorized, "admin token missing, unknown, or lacking the needed scope"),
        (NotFound, "no such device, release, member or rollout on the server"),
        (Unavailable, "server unreachable, timed out or failing; retry later"),
        (Conflict, "server refused the change in the current state; nothing changed"),
        (WatchedFailed, "the watched rollout ended failed or aborted"),
        (Interrupted, "interrupted with Ctrl+C"),
    ];
}
