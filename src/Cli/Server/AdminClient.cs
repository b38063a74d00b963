using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;

namespace Orchestrator.Cli.Server;

/// <summary>
/// HTTP client of the node's admin API. The server comes from <c>--server</c>, else <c>ORCH_SERVER</c>, else
/// <see cref="DefaultServer"/>; the bearer token from <c>--token</c>, else <c>ORCH_TOKEN</c>. Every failure becomes an
/// <see cref="AdminApiException"/> with an exit code from <see cref="ExitCodes"/> and the server's message.
/// </summary>
public sealed class AdminClient : IDisposable
{
    /// <summary>The node's default HTTP address (appsettings.json <c>Urls</c>).</summary>
    public const string DefaultServer = "http://127.0.0.1:5080";

    private readonly HttpClient _http;

    /// <summary>Creates a client for <paramref name="server"/> with <paramref name="token"/>.</summary>
    public AdminClient(Uri server, string token, TimeSpan? timeout = null)
    {
        Server = server;
        _http = new HttpClient { BaseAddress = server, Timeout = timeout ?? TimeSpan.FromSeconds(60) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>The node's base address.</summary>
    public Uri Server { get; }

    /// <summary>Builds a client from the command's switches and the environment; usage errors name the fix.</summary>
    public static AdminClient FromInvocation(CommandInvocation call) => Resolve(call.Optional("server"), call.Optional("token"), call.Console);

    /// <summary>Builds a client from explicit values, falling back to ORCH_SERVER / ORCH_TOKEN and the default server.</summary>
    public static AdminClient Resolve(string? serverSwitch, string? tokenSwitch, CliConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var serverText = serverSwitch ?? console.GetEnvironment("ORCH_SERVER") ?? DefaultServer;
        if (!Uri.TryCreate(serverText, UriKind.Absolute, out var server) || (server.Scheme != "http" && server.Scheme != "https"))
            throw new UsageException($"--server '{serverText}' is not an http(s) URL; give the node's address, e.g. {DefaultServer}.");
        var token = tokenSwitch ?? console.GetEnvironment("ORCH_TOKEN");
        if (string.IsNullOrWhiteSpace(token))
            throw new AdminApiException(ExitCodes.Unauthorized, "token_missing",
                "No admin token: pass --token TOKEN or set ORCH_TOKEN (a fresh node writes its bootstrap token to <Node:DataDirectory>/admin-token).");
        return new AdminClient(server, token.Trim());
    }

    /// <summary>GET and parse JSON.</summary>
    public Task<T> GetAsync<T>(string path, CancellationToken ct) => SendAsync<T>(HttpMethod.Get, path, null, ct);

    /// <summary>POST <paramref name="body"/> as JSON (or nothing) and parse the answer.</summary>
    public Task<T> PostAsync<T>(string path, object? body, CancellationToken ct) => SendAsync<T>(HttpMethod.Post, path, body, ct);

    /// <summary>PUT <paramref name="bytes"/> as <c>application/octet-stream</c>; throws <see cref="AdminApiException"/> unless it succeeded.</summary>
    public async Task PutBytesAsync(string path, byte[] bytes, CancellationToken ct)
    {
        using var content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } };
        using var response = await SendCheckedAsync(HttpMethod.Put, path, content, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
    }

    /// <summary>Sends and parses; throws <see cref="AdminApiException"/> for every non-success outcome.</summary>
    public Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct) =>
        ReadAsync<T>(method, path, body is null ? null : JsonContent.Create(body, CliJson.TypeInfo(CliJson.Wire, body.GetType())), ct);

    private async Task<T> ReadAsync<T>(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var response = await SendCheckedAsync(method, path, content, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
        if (typeof(T) == typeof(JsonElement) && response.StatusCode == HttpStatusCode.NoContent) return default!;
        try
        {
            return (await response.Content.ReadFromJsonAsync(CliJson.TypeInfo<T>(CliJson.Wire), ct).ConfigureAwait(false))!;
        }
        catch (JsonException ex)
        {
            throw new AdminApiException(ExitCodes.Failure, "bad_answer",
                $"{Server} answered {method} {path} with JSON this orch cannot read ({ex.Message}); is orch the same version as the node?");
        }
    }

    /// <summary>
    /// Sends and returns the successful response once its headers arrived, for answers read as a stream (the caller
    /// disposes it); throws <see cref="AdminApiException"/> for every non-success outcome.
    /// </summary>
    public Task<HttpResponseMessage> OpenStreamAsync(HttpMethod method, string path, object? body, CancellationToken ct) =>
        SendCheckedAsync(method, path, body is null ? null : JsonContent.Create(body, CliJson.TypeInfo(CliJson.Wire, body.GetType())),
            HttpCompletionOption.ResponseHeadersRead, ct);

    private async Task<HttpResponseMessage> SendCheckedAsync(HttpMethod method, string path, HttpContent? content, HttpCompletionOption completion, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, completion, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex) when (ex.InnerException is SocketException || ex.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
        {
            throw new AdminApiException(ExitCodes.Unavailable, "unreachable",
                $"Cannot reach the node at {Server}: {ex.Message} (is it running? pass --server URL or set ORCH_SERVER).");
        }
        catch (HttpRequestException ex)
        {
            throw new AdminApiException(ExitCodes.Unavailable, "http_error", $"Request to {Server} failed: {ex.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new AdminApiException(ExitCodes.Unavailable, "timeout", $"The node at {Server} did not answer within {_http.Timeout.TotalSeconds:0} s.");
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var (error, message) = await ReadProblemAsync(response, ct).ConfigureAwait(false);
            var code = (int)response.StatusCode switch
            {
                401 or 403 => ExitCodes.Unauthorized,
                404 when error is "route_missing" => ExitCodes.Unavailable,
                404 => ExitCodes.NotFound,
                400 or 413 or 415 or 422 => ExitCodes.InvalidInput,
                409 => ExitCodes.Conflict,
                _ => ExitCodes.Unavailable,
            };
            throw new AdminApiException(code, error, message);
        }
    }

    private async Task<(string Error, string Message)> ReadProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var status = (int)response.StatusCode;
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind == JsonValueKind.Object
                && doc.RootElement.TryGetProperty("error", out var e) && doc.RootElement.TryGetProperty("message", out var m))
            {
                var hint = status switch
                {
                    401 => " Check --token / ORCH_TOKEN.",
                    403 => " Use a token with that scope (Admin:Tokens in the node's configuration).",
                    _ => "",
                };
                return (e.GetString() ?? "error", $"{m.GetString()}{hint} (HTTP {status})");
            }
        }
        catch (JsonException) { }
        // No problem body: the route does not exist on this node (older node) or a proxy answered.
        return status == 404
            ? ("route_missing", $"{Server} has no route {response.RequestMessage?.RequestUri?.AbsolutePath}; is it an Orchestrator node of the same version? (HTTP 404)")
            : ($"http_{status}", $"{Server} answered HTTP {status} {response.ReasonPhrase}: {Truncate(text)}");
    }

    private static string Truncate(string s) => s.Length <= 300 ? s : s[..300] + "...";

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();
}
