using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Validation;

/// <summary>Store names become path segments of the mirror: nothing outside the grammar passes, a final newline included.</summary>
public sealed class StoreNamesTests
{
    [Theory]
    [InlineData("acme-client", true)]
    [InlineData("acme\n", false)] // a regex's $ would match before a final newline
    [InlineData("Acme", false)]
    [InlineData("-acme", false)]
    [InlineData("", false)]
    public void Product_names(string name, bool valid) => Assert.Equal(valid, StoreNames.IsValidProduct(name));

    [Theory]
    [InlineData("1.2.3+build.4", true)]
    [InlineData("1.2.3\n", false)]
    [InlineData("index", false)]
    [InlineData("1/2", false)]
    public void Versions(string version, bool valid) => Assert.Equal(valid, StoreNames.IsValidVersion(version));
}
