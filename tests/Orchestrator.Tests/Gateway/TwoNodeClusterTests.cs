using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;
using Orchestrator.TestSupport;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// A gateway-only node in front of a node with the chunks and devices roles: chunk bytes and device commands cross
/// Akka remoting through our serializers, and the gateway never touches the chunk files itself.
/// </summary>
public sealed class TwoNodeClusterTests
{

    [Fact]
    public async Task Gateway_only_node_serves_chunks_and_check_ins_from_the_backend_node()
    {
        var port = LoopbackPort.Free();
        await using var backend = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Node:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Node:Roles:0"] = "chunks",
            ["Node:Roles:1"] = "devices",
            ["Node:Roles:2"] = "rollouts",
        }, realDevices: true);
        await using var gateway = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Node:Roles:0"] = "gateway",
            ["Node:SeedNodes:0"] = $"akka.tcp://orchestrator@127.0.0.1:{port}",
            // Manifests are files the gateway reads; chunks come only through the backend's shard actors.
            ["Node:StoreRoot"] = backend.StoreRoot,
        }, realDevices: true);

        var data = new byte[200_000];
        new Random(3).NextBytes(data);
        var id = backend.WriteChunk(data);
        var secret = await gateway.ProvisionAsync("remote-1");

        using (var req = new HttpRequestMessage(HttpMethod.Get, $"/v1/store/chunks/{id[..2]}/{id}"))
        {
            DeviceSigning.SignAs(req, "remote-1", secret);
            using var res = await gateway.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.OK, res.StatusCode);
            Assert.Equal(data, await res.Content.ReadAsByteArrayAsync());
        }

        Directory.CreateDirectory(Path.Combine(backend.StoreRoot, "manifests", "acme"));
        await File.WriteAllTextAsync(Path.Combine(backend.StoreRoot, "manifests", "acme", "index.json"), "{\"schema\":1,\"product\":\"acme\",\"versions\":[]}");
        using (var req = new HttpRequestMessage(HttpMethod.Post, "/v1/devices/remote-1/check-in") { Content = JsonContent.Create(new CheckInRequest("acme", 0, "d", null, "1.0")) })
        {
            DeviceSigning.SignAs(req, "remote-1", secret);
            using var res = await gateway.Http.SendAsync(req);
            Assert.True(res.StatusCode == HttpStatusCode.OK, await res.Content.ReadAsStringAsync());
            Assert.Equal(UpdateAction.None, (await res.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json))!.Action);
        }

        // Cluster membership as the admin API (and so orch cluster show and the dashboard) reports it.
        using var clusterReq = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/cluster");
        clusterReq.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
        using var clusterRes = await gateway.Http.SendAsync(clusterReq);
        var cluster = (await clusterRes.Content.ReadFromJsonAsync<Orchestrator.Messages.Admin.ClusterView>(Orchestrator.Messages.Admin.AdminJson.Options))!;
        Assert.Equal(2, cluster.Members.Count(m => m.Status == "Up"));
    }
}
