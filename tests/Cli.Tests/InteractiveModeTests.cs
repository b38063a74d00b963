using System.Net.Http.Headers;
using System.Net.Http.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Interactive;
using Orchestrator.Cli.Tests.Support;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Tests;

/// <summary><c>orch</c> with no command: help and completion come from the node's palette description.</summary>
[Collection(LiveNodeCollection.Name)]
public sealed class InteractiveModeTests(LiveNode node)
{
    private async Task<PaletteCatalogView> DescribeAsync()
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/palettes");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", LiveNode.ReadToken);
        using var res = await node.Http.SendAsync(req);
        res.EnsureSuccessStatusCode();
        return (await res.Content.ReadFromJsonAsync<PaletteCatalogView>(AdminJson.Options))!;
    }

    [Fact]
    public async Task Piped_session_prints_server_described_help_and_runs_each_line()
    {
        var input = "help\nhelp device\n# a comment\ndevice list --status Failed --json\nrelease show acme 1.0.0\nexit\ncluster show\n";
        var run = await node.Cli.OrchWithInput(input, "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("orch interactive mode, node akka.tcp://", run.Out);
        Assert.Contains("Commands served by akka.tcp://", run.Out);
        Assert.Contains("sharding", run.Out);
        Assert.Contains("device list [--status STATUS]", run.Out);
        Assert.Contains("\"deviceId\": \"fleet-b\"", run.Out);
        Assert.Contains("Release acme 1.0.0", run.Out);
        Assert.DoesNotContain("cluster seen from", run.Out); // after 'exit'
    }

    [Fact]
    public async Task Session_exit_code_is_that_of_the_last_command_and_errors_do_not_end_it()
    {
        var run = await node.Cli.OrchWithInput("device show nobody-here\nfrobnicate\nrelease list --product 'acme'\n",
            "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("no recorded events", run.Error);
        Assert.Contains("Unknown palette or command 'frobnicate'", run.Error);
        Assert.Contains("2.0.0", run.Out);

        var failing = await node.Cli.OrchWithInput("release list\ndevice show nobody-here\n", "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.NotFound, failing.ExitCode);
    }

    [Fact]
    public async Task Without_a_valid_token_the_session_warns_and_offers_local_commands()
    {
        var run = await node.Cli.OrchWithInput("help\n", "--server", node.BaseAddress.ToString(), "--token", "wrong-token");
        Assert.Contains("warning: help and completion cover this orch's own commands only", run.Error);
        Assert.Contains("not recognised", run.Error);
        Assert.Contains("local description", run.Out);
        Assert.Contains("keys", run.Out);
    }

    [Fact]
    public async Task Tab_completion_follows_the_server_description()
    {
        var described = await DescribeAsync();
        Assert.Contains(described.Palettes, p => p.Name == "sharding");
        var completer = new Completer(CommandCatalog.Build(OrchCli.CreateRegistry(), described));

        Assert.Equal("device ", completer.Complete("dev").Line);
        Assert.Equal("device list ", completer.Complete("device l").Line);
        Assert.Equal("device list --status ", completer.Complete("device list --st").Line);
        Assert.Equal("device list --status Failed ", completer.Complete("device list --status F").Line);
        Assert.Equal("sharding locate ", completer.Complete("sharding lo").Line);

        var (line, listed) = completer.Complete("device ");
        Assert.Equal("device ", line);
        Assert.Equal(["attributes", "decommission", "history", "list", "provision", "register-batch", "set-channel", "set-product", "show"], listed);
        Assert.Equal("channel set ", completer.Complete("channel se").Line);
        Assert.Contains("--json", completer.Candidates("chunks gc "));
        Assert.DoesNotContain("--apply", completer.Candidates("chunks gc --apply "));
        Assert.Contains("keys", completer.Candidates(""));  // local palettes stay available
        Assert.Contains("publish", completer.Candidates("release "));
        Assert.Empty(completer.Candidates("nonsense "));
    }

    [Fact]
    public void Server_commands_unknown_to_this_orch_are_listed_as_such()
    {
        var newer = new PaletteCatalogView("akka.tcp://x@h:1", [.. PaletteCatalog.All,
            new PaletteDescription("future", "something newer", [new CommandDescription("go", "does it", PaletteCatalog.Read, [], [])])]);
        var catalog = CommandCatalog.Build(OrchCli.CreateRegistry(), newer);
        Assert.Contains("server only: this orch is older than the node", catalog.Help());
        Assert.Equal(["go"], new Completer(catalog).Candidates("future "));
    }

    [Theory]
    [InlineData("a 'b c' \"d e\"", new[] { "a", "b c", "d e" })]
    [InlineData("  x   y ", new[] { "x", "y" })]
    public void Lines_split_with_quotes(string line, string[] expected) => Assert.Equal(expected, LineSplitter.Split(line));

    [Fact]
    public async Task Unclosed_quote_is_a_usage_error_in_the_session()
    {
        var run = await node.Cli.OrchWithInput("device show 'fleet-a\n", "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("Unclosed", run.Error);
    }
}
