using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// A check-in storm beyond <c>Admission:MaxConcurrentCheckIns</c> + <c>Admission:MaxQueuedCheckIns</c> is answered 503
/// <c>node_busy</c> with Retry-After at once, reaches no device actor, and the node keeps answering the admitted ones.
/// </summary>
public sealed class CheckInAdmissionTests
{
    [Fact]
    public async Task Check_ins_beyond_the_limit_and_the_queue_are_refused_at_once_with_retry_after_and_the_rest_are_answered()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "2",
            ["Admission:MaxQueuedCheckIns"] = "3",
            ["Admission:RetryAfterSeconds"] = "5",
        });
        node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var secrets = new Dictionary<string, string>();
        for (var i = 0; i < 10; i++) secrets[$"storm-{i}"] = await node.ProvisionAsync($"storm-{i}");

        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Devices.Hold = hold.Task;
        async Task<(HttpStatusCode Status, string? Error, string? RetryAfter)> CheckInAsync(string device)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{device}/check-in")
            {
                Content = JsonContent.Create(new CheckInRequest("acme", 1, "digest-1", null, "1.0.0")),
            };
            DeviceSigning.SignAs(req, device, secrets[device]);
            using var res = await node.Http.SendAsync(req);
            var error = res.IsSuccessStatusCode ? null : (await res.Content.ReadFromJsonAsync<ProblemResponse>())?.Error;
            return (res.StatusCode, error, res.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        // Two are admitted and held inside the device actor; three wait; the other five are refused without waiting.
        var storm = secrets.Keys.Select(CheckInAsync).ToList();
        var refused = new List<(HttpStatusCode Status, string? Error, string? RetryAfter)>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (refused.Count < 5 && DateTime.UtcNow < deadline)
        {
            await Task.WhenAny(storm.Where(t => !t.IsCompleted).Append(Task.Delay(200)));
            refused = storm.Where(t => t.IsCompleted).Select(t => t.Result).ToList();
        }
        Assert.Equal(5, refused.Count);
        Assert.All(refused, r =>
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.Status);
            Assert.Equal("node_busy", r.Error);
            Assert.InRange(double.Parse(r.RetryAfter!, System.Globalization.CultureInfo.InvariantCulture), 5, 10);
        });
        // The two admitted ones reach the device gateway (refusals may come back before they get there) and no more do.
        while (node.Devices.Calls.Count < 2 && DateTime.UtcNow < deadline) await Task.Delay(50);
        await Task.Delay(500);
        Assert.Equal(2, node.Devices.Calls.Count);

        hold.SetResult();
        var admitted = (await Task.WhenAll(storm)).Where(r => r.Status != HttpStatusCode.ServiceUnavailable).ToList();
        Assert.Equal(5, admitted.Count);
        Assert.All(admitted, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Equal(5, node.Devices.Calls.Count);

        node.Devices.Hold = null;
        Assert.Equal(HttpStatusCode.OK, (await CheckInAsync("storm-0")).Status);
    }

    [Fact]
    public void Admission_settings_out_of_range_are_refused_with_the_setting_named()
    {
        Assert.Empty(new AdmissionOptions().Validate());
        var problems = new AdmissionOptions { MaxConcurrentCheckIns = 0, MaxQueuedCheckIns = -1, RetryAfterSeconds = 0 }.Validate().ToList();
        Assert.Equal(3, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("Admission:MaxConcurrentCheckIns 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:MaxQueuedCheckIns -1 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:RetryAfterSeconds 0 is out of range", StringComparison.Ordinal));
    }
}
