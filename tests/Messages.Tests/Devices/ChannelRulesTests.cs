using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Messages.Tests.Devices;

/// <summary>Channel names and device membership by the <c>channel:NAME</c> tag.</summary>
public sealed class ChannelRulesTests
{
    [Fact]
    public void A_device_without_a_channel_tag_is_in_stable_and_the_tag_names_its_channel()
    {
        Assert.Equal("stable", ChannelRules.ChannelOf([]));
        Assert.Equal("stable", ChannelRules.ChannelOf(["eu", "canary"]));
        Assert.Equal("beta", ChannelRules.ChannelOf(["eu", "channel:beta"]));
        Assert.Equal("stable", ChannelRules.ChannelOf(["channel:Not Valid"])); // an invalid name is no membership
        var state = DeviceState.Initial("d1") with { Tags = ["channel:nightly"] };
        Assert.Equal("nightly", state.Channel);
    }

    [Fact]
    public void Setting_a_channel_replaces_the_tag_and_stable_removes_it()
    {
        Assert.Equal(["eu", "channel:beta"], ChannelRules.WithChannel(["channel:old", "eu"], "beta"));
        Assert.Equal(["eu"], ChannelRules.WithChannel(["eu", "channel:beta"], "stable"));
    }

    [Theory]
    [InlineData("stable", true)]
    [InlineData("beta-2.x_y", true)]
    [InlineData("", false)]
    [InlineData("Beta", false)]
    [InlineData("-x", false)]
    [InlineData("../etc", false)]
    public void Channel_names_follow_the_store_grammar(string name, bool valid)
    {
        Assert.Equal(valid, ChannelRules.IsValidName(name));
        Assert.Equal(valid, ChannelRules.Problem("channel", name) is null);
    }
}
