using Orchestrator.CommandLine;

namespace Orchestrator.Cli.Tests;

/// <summary>The argument grammar every program shares (orch, orch-agent, orch-simulate, the demo, the benchmarks).</summary>
public sealed class CommandGrammarTests
{
    private static readonly CommandGrammar Grammar = new("tool run",
        [SwitchSpec.Value("store", "DIR", "the store", required: true), SwitchSpec.Value("count", "N"), SwitchSpec.Flag("json")],
        ["NAME", "[MORE]"]);

    [Fact]
    public void Switches_flags_inline_values_and_positionals_are_read()
    {
        var parsed = Grammar.Parse(["x", "--store", "s1", "--count=7", "--json", "y"]);
        Assert.Equal("s1", parsed.Required("store"));
        Assert.Equal(7, parsed.Int("count", 1, 1, 10));
        Assert.True(parsed.Has("json"));
        Assert.Null(parsed.Optional("missing"));
        Assert.Equal(["x", "y"], parsed.Positionals);
    }

    [Fact]
    public void Everything_after_a_double_dash_is_positional()
    {
        var parsed = Grammar.Parse(["--store", "s", "--", "--json"]);
        Assert.False(parsed.Has("json"));
        Assert.Equal(["--json"], parsed.Positionals);
        Assert.False(CommandGrammar.AsksForHelp(["--", "--help"]));
        Assert.True(CommandGrammar.AsksForHelp(["a", "-h"]));
    }

    [Theory]
    [InlineData("'--bogus' is not an option of 'tool run'", "--store", "s", "--bogus", "n")]
    [InlineData("'--store' needs a value (DIR)", "n", "--store")]
    [InlineData("'--store' needs a value (DIR)", "n", "--store", "--json")]
    [InlineData("'--store' has an empty value", "n", "--store=")]
    [InlineData("'--json' takes no value", "n", "--store", "s", "--json=yes")]
    [InlineData("'--store' is given more than once", "n", "--store", "a", "--store", "b")]
    [InlineData("'tool run' needs --store DIR (the store)", "n")]
    [InlineData("'tool run' takes NAME [MORE] (1 to 2 argument(s)), got 0", "--store", "s")]
    [InlineData("got 3", "--store", "s", "a", "b", "c")]
    public void Each_mistake_is_named(string message, params string[] args)
    {
        var e = Assert.Throws<UsageException>(() => Grammar.Parse(args));
        Assert.Contains(message, e.Message);
        Assert.IsAssignableFrom<ArgumentException>(e);
    }

    [Theory]
    [InlineData("abc", "--count 'abc' is not a whole number in 1..10.")]
    [InlineData("11", "--count '11' is not a whole number in 1..10.")]
    [InlineData("1.5", "--count '1.5' is not a whole number in 1..10.")]
    public void Typed_reads_refuse_values_out_of_range(string value, string message)
    {
        var parsed = Grammar.Parse(["n", "--store", "s", "--count", value]);
        Assert.Equal(message, Assert.Throws<UsageException>(() => parsed.Int("count", 1, 1, 10)).Message);
    }

    [Fact]
    public void Numbers_and_positional_numbers_are_checked_against_their_bounds()
    {
        var grammar = new CommandGrammar("bench", [SwitchSpec.Value("interval", "S")], ["N", "[C]"]);
        var parsed = grammar.Parse(["12", "--interval", "0"]);
        Assert.Equal(12, parsed.PositionalLong(0, 0, 1));
        Assert.Equal(64, parsed.PositionalLong(1, 64, 1));
        Assert.Contains("--interval '0' is not a number > 0", Assert.Throws<UsageException>(() => parsed.Double("interval", 3, 0, exclusiveMin: true)).Message);
        Assert.Equal(0, parsed.Double("interval", 3, 0));
        Assert.Contains("N 'x' is not a whole number >= 1", Assert.Throws<UsageException>(() => grammar.Parse(["x"]).PositionalLong(0, 0, 1)).Message);
    }
}
