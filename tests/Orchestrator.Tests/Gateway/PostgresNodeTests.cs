using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Messages.Chunks;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>The scale-out configuration: credentials and chunks in PostgreSQL, no shared volume.</summary>
public sealed class PostgresNodeTests
{
    [PostgresFact]
    public async Task Credentials_and_chunks_live_in_postgresql()
    {
        Assert.False(string.IsNullOrEmpty(PostgresFactAttribute.ConnectionString), "ORCH_REQUIRE_POSTGRES=1 but ORCH_TEST_POSTGRES is unset.");
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgresql",
            ["Database:ConnectionString"] = PostgresFactAttribute.ConnectionString,
            ["ChunkStore:Backend"] = "postgresql",
        });
        var deviceId = "pg-" + Guid.NewGuid().ToString("N")[..12];
        var secret = await node.ProvisionAsync(deviceId);

        var data = new byte[30_000];
        new Random(11).NextBytes(data);
        var id = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(data));
        var chunks = node.Services.GetRequiredService<ChunkClient>();
        var stored = await chunks.PutAsync(id, data, CancellationToken.None);
        Assert.IsType<ChunkStored>(stored);
        Assert.False(Directory.Exists(Path.Combine(node.StoreRoot, "chunks", id[..2])));

        using var req = new HttpRequestMessage(HttpMethod.Get, $"/v1/store/chunks/{id[..2]}/{id}");
        DeviceSigning.SignAs(req, deviceId, secret);
        using var res = await node.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal(data, await res.Content.ReadAsByteArrayAsync());
    }
}
