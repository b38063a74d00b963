using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Trust;

namespace Orchestrator.Node.Tests.Trust;

/// <summary>
/// The node's batch signer under concurrency: every caller gets the envelope of its own payload, which verifies through
/// the trust anchor for its own device and nonce, no batch exceeds the bound, and a failing signature fails every
/// waiting caller instead of leaving it waiting or ending the process.
/// </summary>
public sealed class DirectiveBatcherTests : IDisposable
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private readonly TempDir _trust = new();
    private readonly TrustAnchor _anchor;

    // A trust root as 'orch keys init' writes it: the director key signs, the root document names it.
    public DirectiveBatcherTests()
    {
        KeyFiles.Generate(_trust.Path);
        TrustFiles.Init(_trust.Path, Now);
        _anchor = TrustAnchor.Load(File.ReadAllBytes(_trust.Sub(TrustFiles.VersionFile(1))), "root 1");
    }

    public void Dispose() => _trust.Dispose();

    private ReleaseSigningKey Director => ReleaseSigningKey.FromBytes(File.ReadAllBytes(_trust.Sub(TrustFiles.DirectorKeyFile)));

    private Directive Verify(byte[] envelope, int i) =>
        Directive.VerifyFor(System.Text.Encoding.UTF8.GetString(envelope), _anchor, $"dev-{i}", "acme", $"n{i}", Now);

    private static byte[] Payload(int i) =>
        new Directive(1, "directive", $"dev-{i}", "acme", $"n{i}", Now, Now.AddMinutes(5), UpdateAction.None, null, null, null, null, null, i, null).ToPayload();

    [Fact]
    public async Task Concurrent_callers_each_get_their_own_directive_in_batches_of_at_most_the_bound()
    {
        using var director = Director;
        var batcher = new DirectiveBatcher(director, TrustKeyIds.Of(director.PublicKey), maxSize: 4);
        const int count = 400;
        // Callers on many threads at once, each starting when all are ready, so payloads wait while a batch is signed.
        using var start = new ManualResetEventSlim();
        var callers = Enumerable.Range(0, count).Select(i => Task.Run(async () =>
        {
            start.Wait();
            return (Index: i, Envelope: (await batcher.SignAsync(Payload(i))).ToBytes());
        })).ToArray();
        start.Set();
        var results = await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30));

        foreach (var (i, envelope) in results) Assert.Equal(i, Verify(envelope, i).FloorVersionId);
        var batches = results.Select(r => SignedEnvelope.Parse(r.Envelope, 1 << 16, "answer").Batch!).ToList();
        Assert.All(batches, b => Assert.InRange(b.Size, 1, 4));
        // Each root's leaves are distinct places of one tree of the size it claims.
        foreach (var tree in batches.GroupBy(b => b.Root))
        {
            Assert.Single(tree.Select(b => b.Size).Distinct());
            Assert.Equal(tree.Count(), tree.Select(b => b.Index).Distinct().Count());
            Assert.True(tree.Count() <= tree.First().Size);
        }
        Assert.True(batches.Select(b => b.Root).Distinct().Count() >= count / 4);
    }

    [Fact]
    public async Task A_signature_that_fails_fails_every_waiting_caller_and_the_next_one_too()
    {
        var director = Director;
        var batcher = new DirectiveBatcher(director, TrustKeyIds.Of(director.PublicKey), maxSize: 64);
        Assert.Equal("dev-1", Verify((await batcher.SignAsync(Payload(1))).ToBytes(), 1).DeviceId);
        director.Dispose();
        var waiting = Enumerable.Range(0, 20).Select(i => batcher.SignAsync(Payload(i)).AsTask()).ToArray();
        foreach (var w in waiting)
            await Assert.ThrowsAsync<ObjectDisposedException>(() => w.WaitAsync(TimeSpan.FromSeconds(30)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => batcher.SignAsync(Payload(99)).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
