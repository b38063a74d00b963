namespace Orchestrator.Cli.Tests;

/// <summary><c>orch --version</c> and <c>orch version</c> print the build's version and need no node.</summary>
public sealed class VersionCommandTests : IDisposable
{
    private readonly CliHarness _cli = new();

    public void Dispose() => _cli.Dispose();

    [Theory]
    [InlineData("--version")]
    [InlineData("version")]
    public async Task Prints_the_build_version(string argument)
    {
        var run = await _cli.Orch(argument);
        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"^orch [0-9]+\.[0-9]+\.[0-9]+", run.Out.Trim());
        Assert.Equal($"orch {OrchCli.Version}", run.Out.Trim());
    }
}
