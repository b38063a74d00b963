using Orchestrator.CommandLine;
using Orchestrator.DeviceAgent.Launching;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent;

/// <summary>
/// <c>orch-agent sign-request</c>: prints the Authorization header of one device request, so people can call the device
/// API with curl (docs/protocol.md). The secret is read from a file and never printed.
/// </summary>
public static class SignRequestCommand
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
          orch-agent sign-request --device ID --secret-file FILE --url URL [--method POST] [--body-file FILE] [--seq N]
              print the Authorization header value (Orch-HMAC-SHA256 ...) for one device request; sign again for every
              request (each needs a new, higher seq; the default is the current Unix time in milliseconds)
        """;

    private static readonly CommandGrammar Grammar = new("orch-agent sign-request",
    [
        SwitchSpec.Value("device", "ID", required: true), SwitchSpec.Value("secret-file", "FILE", required: true),
        SwitchSpec.Value("url", "URL", required: true), SwitchSpec.Value("method", "METHOD"), SwitchSpec.Value("body-file", "FILE"),
        SwitchSpec.Value("seq", "N"),
    ]);

    /// <summary>Runs the command on the arguments after <c>sign-request</c>; returns the exit code.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        ParsedArguments options;
        Uri? url;
        long? seq;
        try
        {
            options = Grammar.Parse(args);
            seq = options.OptionalLong("seq", 1);
        }
        catch (UsageException e)
        {
            return Bad(stderr, e.Message);
        }
        if (!Uri.TryCreate(options.Required("url"), UriKind.Absolute, out url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            return Bad(stderr, $"--url '{options.Required("url")}' is not an absolute http(s) URL");
        string secret;
        byte[] body;
        try
        {
            secret = File.ReadAllText(options.Required("secret-file")).Trim();
            body = options.Optional("body-file") is { } bodyFile ? File.ReadAllBytes(bodyFile) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Bad(stderr, e.Message);
        }
        if (secret.Length == 0) return Bad(stderr, $"--secret-file '{options.Required("secret-file")}' is empty; put the secret printed by `orch device provision` in it");
        var method = (options.Optional("method") ?? "POST").ToUpperInvariant();
        var signer = new DeviceRequestSigner(options.Required("device"), secret, seq is { } fixedSeq ? () => fixedSeq : RequestSequence.Shared.Next);
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        signer.Sign(request, body);
        stdout.WriteLine(request.Headers.Authorization!.ToString());
        return ExitCodes.Ok;
    }

    private static int Bad(TextWriter stderr, string message)
    {
        stderr.WriteLine($"orch-agent: {message}");
        stderr.WriteLine(Usage);
        return ExitCodes.BadInput;
    }
}
