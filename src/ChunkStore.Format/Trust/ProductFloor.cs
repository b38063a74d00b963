using System.Text.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>
/// The release-signed minimum version of a product (<c>floors/&lt;product&gt;/floor.json</c>): no device installs
/// below it, whatever a director or gateway says.
/// </summary>
/// <param name="Schema">1.</param>
/// <param name="Type"><c>floor</c>.</param>
/// <param name="Product">Product.</param>
/// <param name="MinVersion">Version string of the minimum.</param>
/// <param name="MinVersionId">Version ID of the minimum.</param>
/// <param name="CreatedUtc">When it was signed.</param>
public sealed record ProductFloor(int Schema, string Type, string Product, string MinVersion, long MinVersionId, DateTimeOffset CreatedUtc)
{
    /// <summary>Largest floor envelope accepted.</summary>
    public const int MaxBytes = 16 * 1024;

    /// <summary>Store path of a product's floor file.</summary>
    public static string PathFor(string product)
    {
        StoreNames.RequireProduct(product);
        return $"floors/{product}/floor.json";
    }

    /// <summary>Signs a floor with the release key.</summary>
    public static SignedEnvelope Create(string product, string minVersion, long minVersionId, ReleaseSigningKey key, DateTimeOffset now) =>
        SignedEnvelope.Sign(JsonSerializer.SerializeToUtf8Bytes(
            new ProductFloor(1, "floor", product, minVersion, minVersionId, RootDocument.Trim(now)), TrustJsonContext.Default.ProductFloor), [key]);

    /// <summary>Verifies a floor file by the release role of <paramref name="anchor"/> and checks it names <paramref name="product"/>.</summary>
    public static ProductFloor Verify(byte[] bytes, TrustAnchor anchor, string product)
    {
        var what = $"product floor '{PathFor(product)}'";
        var payload = anchor.VerifyEnvelope(SignedEnvelope.Parse(bytes, MaxBytes, what), TrustRoles.Release, what);
        ProductFloor? f;
        try { f = JsonSerializer.Deserialize(payload, TrustJsonContext.Default.ProductFloor); }
        catch (JsonException ex) { throw new InvalidInputException($"{what} is not a floor document: {ex.Message}", ex); }
        if (f is null || f.Schema != 1 || f.Type != "floor" || f.MinVersionId < 1)
            throw new InvalidInputException($"{what} is not a schema-1 floor with minVersionId >= 1.");
        if (f.Product != product) throw new IntegrityException($"{what} is signed for product '{f.Product}', not '{product}'.");
        return f;
    }
}
