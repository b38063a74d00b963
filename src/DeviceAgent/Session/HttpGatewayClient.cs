using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// Device API over HTTP: JSON bodies (web defaults, camelCase), <c>/v1/devices/{id}/check-in|progress|failure|completion|updater-lost</c>,
/// each request signed (<see cref="DeviceCredential"/>). Calls are made one at a time: the device actor refuses a
/// sequence number at or below the last it accepted, so two requests in flight could overtake each other and the later
/// signed one would be refused as a replay.
/// </summary>
public sealed class HttpGatewayClient : IGatewayClient
{
    private readonly HttpClient _http;
    private readonly Uri _deviceBase;
    private readonly DeviceRequestSigner _signer;
    private readonly TimeSpan _timeout;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    /// <summary>
    /// Creates a client for one device. <paramref name="sequence"/> supplies request sequence numbers; the agent passes one
    /// with a persisted ceiling (<see cref="RequestSequence"/>), the default is the process-wide in-memory one.
    /// </summary>
    public HttpGatewayClient(HttpClient http, string gatewayBaseUrl, string deviceId, string credential, TimeSpan timeout, RequestSequence? sequence = null)
    {
        _http = http;
        var root = new Uri(gatewayBaseUrl.EndsWith('/') ? gatewayBaseUrl : gatewayBaseUrl + "/");
        _deviceBase = new Uri(root, $"v1/devices/{Uri.EscapeDataString(deviceId)}/");
        _signer = DeviceCredential.Signer(deviceId, credential, sequence ?? RequestSequence.Shared);
        _timeout = timeout;
    }

    /// <inheritdoc />
    public async Task<CheckInResponse> CheckInAsync(CheckInRequest request, CancellationToken ct)
    {
        using var response = await PostAsync("check-in", request, ProtocolJsonContext.Default.CheckInRequest, ct);
        try
        {
            return await response.Content.ReadFromJsonAsync(ProtocolJsonContext.Default.CheckInResponse, ct)
                   ?? throw new GatewayException("gateway answered check-in with an empty body");
        }
        catch (JsonException e)
        {
            throw new GatewayException($"gateway answered check-in with malformed JSON: {e.Message}");
        }
    }

    /// <inheritdoc />
    public async Task ReportProgressAsync(ProgressReport report, CancellationToken ct) => (await PostAsync("progress", report, ProtocolJsonContext.Default.ProgressReport, ct)).Dispose();

    /// <inheritdoc />
    public async Task<TimeSpan?> ReportFailureAsync(FailureReport report, CancellationToken ct)
    {
        using var response = await PostAsync("failure", report, ProtocolJsonContext.Default.FailureReport, ct);
        return response.Headers.RetryAfter?.Delta;
    }

    /// <inheritdoc />
    public async Task ReportCompletionAsync(CompletionReport report, CancellationToken ct) => (await PostAsync("completion", report, ProtocolJsonContext.Default.CompletionReport, ct)).Dispose();

    /// <inheritdoc />
    public async Task ReportUpdaterLostAsync(UpdaterLostReport report, CancellationToken ct) =>
        (await PostAsync("updater-lost", report, ProtocolJsonContext.Default.UpdaterLostReport, ct)).Dispose();

    private async Task<HttpResponseMessage> PostAsync<T>(string what, T body, JsonTypeInfo<T> type, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_timeout);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body, type);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_deviceBase, what))
        {
            Content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" } } },
        };
        HttpResponseMessage response;
        await _oneAtATime.WaitAsync(ct);
        try
        {
            try
            {
                _signer.Sign(request, bytes);
            }
            catch (IOException e)
            {
                throw new GatewayException($"cannot sign {what}: the request sequence ceiling could not be written ({e.Message})");
            }
            response = await _http.SendAsync(request, timeout.Token);
        }
        catch (HttpRequestException e)
        {
            throw new GatewayException($"gateway unreachable for {what}: {e.Message}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new GatewayException($"gateway did not answer {what} within {_timeout.TotalSeconds:0.#}s");
        }
        finally
        {
            _oneAtATime.Release();
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var retryAfter = response.Headers.RetryAfter?.Delta
                             ?? (response.Headers.RetryAfter?.Date is { } d ? d - DateTimeOffset.UtcNow : null);
            string detail;
            string? error = null;
            try
            {
                var problem = await response.Content.ReadFromJsonAsync(ProtocolJsonContext.Default.ProblemResponse, ct);
                error = problem?.Error;
                detail = problem is null ? "" : $"{problem.Error}: {problem.Message}";
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
            {
                detail = "(no problem body)";
            }
            throw new GatewayException(
                $"gateway refused {what} with HTTP {(int)response.StatusCode}{(detail.Length > 0 ? " " + detail : "")}",
                (int)response.StatusCode,
                response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable ? retryAfter ?? TimeSpan.FromSeconds(1) : null, error);
        }
    }
}
