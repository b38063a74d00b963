using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>Device attributes in the pure state machine: reported ones journaled only when they change, operator ones override.</summary>
public sealed class DeviceAttributesTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly StateMachineRun _run = new(Id, T0);

    private static Dictionary<string, string> Map(params (string K, string V)[] pairs) => pairs.ToDictionary(p => p.K, p => p.V);

    private static CheckIn CheckIn(IReadOnlyDictionary<string, string>? attributes, int minute) =>
        new(Id, "acme", 0, "d", null, null, null, [], "1.0", T0.AddMinutes(minute), Attributes: attributes);

    [Fact]
    public void Reported_attributes_are_journaled_when_they_change_and_never_for_a_repeat()
    {
        _run.Run(CheckIn(Map(("site", "berlin"), ("arch", "x64")), 0));
        _run.Run(CheckIn(Map(("arch", "x64"), ("site", "berlin")), 20)); // same facts, other order
        _run.Run(CheckIn(null, 40)); // an agent that reports none keeps what was recorded
        Assert.Single(_run.Journal.OfType<DeviceAttributesReported>());
        Assert.Equal("berlin", _run.State.Attributes["site"]);

        _run.Run(CheckIn(Map(("site", "paris"), ("arch", "x64")), 60));
        Assert.Equal(2, _run.Journal.OfType<DeviceAttributesReported>().Count());
        Assert.Equal(["arch", "site"], _run.State.ReportedAttributes!.Keys.ToArray()); // sorted, so equal maps compare equal
    }

    [Fact]
    public void Operator_attributes_override_reported_ones_and_removing_one_shows_the_reported_value_again()
    {
        _run.Run(CheckIn(Map(("site", "berlin")), 0));
        Assert.IsType<DeviceCommandAccepted>(_run.Run(new SetDeviceAttributes(Id, Map(("site", "munich"), ("ring", "canary")), [], "ops", T0)));
        Assert.Equal(("munich", "canary"), (_run.State.Attributes["site"], _run.State.Attributes["ring"]));
        Assert.Equal("berlin", _run.State.ReportedAttributes!["site"]);

        // The device reporting again does not undo the operator's value.
        _run.Run(CheckIn(Map(("site", "berlin"), ("hw", "rev2")), 20));
        Assert.Equal("munich", _run.State.Attributes["site"]);

        var events = _run.Journal.Count;
        Assert.IsType<DeviceCommandAccepted>(_run.Run(new SetDeviceAttributes(Id, Map(("ring", "canary")), [], "ops", T0))); // no change: nothing written
        Assert.Equal(events, _run.Journal.Count);

        _run.Run(new SetDeviceAttributes(Id, new Dictionary<string, string>(), ["site"], "ops", T0));
        Assert.Equal("berlin", _run.State.Attributes["site"]);
    }

    [Fact]
    public void Bad_attribute_commands_are_refused_and_change_nothing()
    {
        _run.Run(CheckIn(Map(("site", "berlin")), 0));
        var before = _run.State;
        var rejected = Assert.IsType<DeviceCommandRejected>(_run.Run(new SetDeviceAttributes(Id, new Dictionary<string, string>(), ["site"], "ops", T0)));
        Assert.Equal("attribute_not_set", rejected.Code);
        Assert.Contains("the device reports it", rejected.Message);
        Assert.Same(before, _run.State);

        Assert.Throws<ArgumentException>(() => new SetDeviceAttributes(Id, Map(("Site", "x")), [], "ops", T0));
        Assert.Throws<ArgumentException>(() => new SetDeviceAttributes(Id, Map(("site", " padded")), [], "ops", T0));
        Assert.Throws<ArgumentException>(() => new SetDeviceAttributes(Id, Map(("site", "x")), ["site"], "ops", T0));
        Assert.Throws<ArgumentException>(() => new SetDeviceAttributes(Id, new Dictionary<string, string>(), [], "ops", T0));
        var many = Enumerable.Range(0, 33).ToDictionary(i => $"k{i}", i => "v");
        Assert.Throws<ArgumentException>(() => CheckIn(many, 0));
    }

    [Fact]
    public void A_selector_rule_is_the_conjunction_of_its_conditions_and_explicit_ids_and_groups_add_to_it()
    {
        DeviceSummary Device(string id, long installed, params (string K, string V)[] attributes) =>
            new(id, DeviceStatus.Idle, "acme", installed, ["eu"], null, null, 0, T0, Attributes: Map(attributes));
        var berlinOn1 = Device("a", 1, ("site", "berlin"), ("hw", "rev2"));
        var berlinOn2 = Device("b", 2, ("site", "berlin"));
        var paris = Device("c", 1, ("site", "paris"));

        var selector = new DeviceSelector(["eu"], [], [], Map(("site", "berlin")), [1]);
        Assert.Equal([true, false, false], new[] { berlinOn1, berlinOn2, paris }.Select(selector.Matches).ToArray());
        var withGroup = selector with { Groups = [new DeviceGroup("paris", [], [], Map(("site", "paris")))], DeviceIds = ["b"] };
        Assert.Equal([true, true, true], new[] { berlinOn1, berlinOn2, paris }.Select(withGroup.Matches).ToArray());
        Assert.True(new DeviceSelector([], [], []).NamesNothing());
        Assert.False(new DeviceSelector([], [], [], InstalledVersionIds: [0]).NamesNothing());
    }
}
