namespace Orchestrator.DeviceAgent.Session;

/// <summary>Stage names used in failure reports (docs/protocol.md).</summary>
public static class FailureStage
{
    /// <summary>Fetching the manifest or chunks.</summary>
    public const string Download = "download";
    /// <summary>Manifest or content verification.</summary>
    public const string Verify = "verify";
    /// <summary>Staging or swapping the tree.</summary>
    public const string Install = "install";
}

/// <summary>One session attempt failed at a stage; nothing was installed. The agent reports it and retries.</summary>
/// <param name="stage">One of <see cref="FailureStage"/>.</param>
/// <param name="message">What failed, naming the input.</param>
/// <param name="inner">Underlying error, if any.</param>
public sealed class SessionFailedException(string stage, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>One of <see cref="FailureStage"/>.</summary>
    public string Stage { get; } = stage;
}
