using System.Globalization;
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

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(List<string> args, TextWriter stdout, TextWriter stderr)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] known = ["--device", "--secret-file", "--url", "--method", "--body-file", "--seq"];
        for (var i = 0; i < args.Count; i++)
        {
            if (!known.Contains(args[i]) || i + 1 >= args.Count)
                return Bad(stderr, known.Contains(args[i]) ? $"{args[i]} needs a value" : $"'{args[i]}' is not an option of 'sign-request'");
            options[args[i]] = args[++i];
        }
        foreach (var required in new[] { "--device", "--secret-file", "--url" })
            if (!options.ContainsKey(required)) return Bad(stderr, $"sign-request needs {required}");
        if (!Uri.TryCreate(options["--url"], UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            return Bad(stderr, $"--url '{options["--url"]}' is not an absolute http(s) URL");
        long? seq = null;
        if (options.TryGetValue("--seq", out var s))
        {
            if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1) return Bad(stderr, $"--seq '{s}' must be an integer >= 1");
            seq = n;
        }
        string secret;
        byte[] body;
        try
        {
            secret = File.ReadAllText(options["--secret-file"]).Trim();
            body = options.TryGetValue("--body-file", out var bodyFile) ? File.ReadAllBytes(bodyFile) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Bad(stderr, e.Message);
        }
        if (secret.Length == 0) return Bad(stderr, $"--secret-file '{options["--secret-file"]}' is empty; put the secret printed by `orch device provision` in it");
        var method = (options.GetValueOrDefault("--method") ?? "POST").ToUpperInvariant();
        var signer = new DeviceRequestSigner(options["--device"], secret, seq is { } fixedSeq ? () => fixedSeq : RequestSequence.Shared.Next);
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
