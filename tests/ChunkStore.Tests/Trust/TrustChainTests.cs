using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Tests.Trust;

public sealed class TrustChainTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "orch-trust-tests", Guid.NewGuid().ToString("N")[..12]);
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    public TrustChainTests()
    {
        KeyFiles.Generate(_dir);
        TrustFiles.Init(_dir, Now);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private byte[] Root(int version) => File.ReadAllBytes(Path.Combine(_dir, TrustFiles.VersionFile(version)));

    [Fact]
    public void A_device_follows_director_and_root_rotations_one_version_at_a_time()
    {
        var v1 = TrustAnchor.Load(Root(1), "root 1");
        Assert.True(v1.RequiresDirectives);
        TrustFiles.Rotate(_dir, TrustRoles.Director, Now);
        TrustFiles.Rotate(_dir, TrustRoles.Root, Now);
        var v2 = v1.Next(Root(2));
        var v3 = v2.Next(Root(3));
        Assert.Equal(3, v3.Root!.Version);
        Assert.NotEqual(v1.Root!.Roles[TrustRoles.Director].KeyIds, v2.Root!.Roles[TrustRoles.Director].KeyIds);
        Assert.NotEqual(v2.Root.Roles[TrustRoles.Root].KeyIds, v3.Root.Roles[TrustRoles.Root].KeyIds);

        var skip = Assert.Throws<IntegrityException>(() => v1.Next(Root(3)));
        Assert.Contains("one version at a time", skip.Message);
    }

    [Fact]
    public void A_root_signed_only_by_the_new_root_key_is_refused()
    {
        var v1 = TrustAnchor.Load(Root(1), "root 1");
        using var rogue = ReleaseSigningKey.Generate();
        var pub = v1.Root!.KeysOf(TrustRoles.Release).Values.ToArray();
        var forged = RootDocument.Create(2, [rogue.PublicKey], pub, pub, [rogue], Now, TimeSpan.FromDays(1));
        var e = Assert.Throws<IntegrityException>(() => v1.Next(forged.ToBytes()));
        Assert.Contains("not signed by 1 of the root keys of version 1", e.Message);
    }

    [Fact]
    public void Directives_are_bound_to_device_product_nonce_and_time_and_signed_by_the_director()
    {
        var anchor = TrustAnchor.Load(Root(1), "root 1");
        using var director = ReleaseSigningKey.FromBytes(File.ReadAllBytes(Path.Combine(_dir, TrustFiles.DirectorKeyFile)));
        using var release = KeyFiles.LoadSigningKey(_dir);
        string Sign(ReleaseSigningKey key, string device = "dev-1", string nonce = "aa", DateTimeOffset? expires = null) =>
            SignedEnvelope.Sign(new Directive(1, "directive", device, "acme", nonce, Now, expires ?? Now.AddMinutes(5), UpdateAction.None,
                null, null, null, null, null, 3, null).ToPayload(), [key]).ToJson();

        Assert.Equal(3, Directive.VerifyFor(Sign(director), anchor, "dev-1", "acme", "aa", Now).FloorVersionId);
        Assert.Contains("'director' role", Assert.Throws<DirectiveRejectedException>(() => Directive.VerifyFor(Sign(release), anchor, "dev-1", "acme", "aa", Now)).Message);
        Assert.Contains("for device 'dev-2'", Assert.Throws<DirectiveRejectedException>(() => Directive.VerifyFor(Sign(director, device: "dev-2"), anchor, "dev-1", "acme", "aa", Now)).Message);
        Assert.Contains("replayed", Assert.Throws<DirectiveRejectedException>(() => Directive.VerifyFor(Sign(director, nonce: "bb"), anchor, "dev-1", "acme", "aa", Now)).Message);
        Assert.Contains("expired", Assert.Throws<DirectiveRejectedException>(() => Directive.VerifyFor(Sign(director, expires: Now.AddSeconds(-1)), anchor, "dev-1", "acme", "aa", Now)).Message);
        Assert.Contains("no directive", Assert.Throws<DirectiveRejectedException>(() => Directive.VerifyFor(null, anchor, "dev-1", "acme", "aa", Now)).Message);
    }

    [Fact]
    public void A_product_floor_must_be_signed_by_the_release_key_for_that_product()
    {
        var anchor = TrustAnchor.Load(Root(1), "root 1");
        using var release = KeyFiles.LoadSigningKey(_dir);
        using var director = ReleaseSigningKey.FromBytes(File.ReadAllBytes(Path.Combine(_dir, TrustFiles.DirectorKeyFile)));
        Assert.Equal(7, ProductFloor.Verify(ProductFloor.Create("acme", "2.0", 7, release, Now).ToBytes(), anchor, "acme").MinVersionId);
        Assert.Throws<IntegrityException>(() => ProductFloor.Verify(ProductFloor.Create("acme", "2.0", 7, director, Now).ToBytes(), anchor, "acme"));
        Assert.Throws<IntegrityException>(() => ProductFloor.Verify(ProductFloor.Create("other", "2.0", 7, release, Now).ToBytes(), anchor, "acme"));
    }

    [Fact]
    public void Oversized_documents_are_refused_unread()
    {
        var anchor = TrustAnchor.Load(Root(1), "root 1");
        var e = Assert.Throws<InvalidInputException>(() => anchor.Next(new byte[RootDocument.MaxBytes + 1]));
        Assert.Contains("more than the 65536 allowed", e.Message);
    }
}
