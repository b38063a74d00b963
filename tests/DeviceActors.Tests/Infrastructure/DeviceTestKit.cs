using Akka.Configuration;
using Orchestrator.DeviceActors.Persistence;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>Akka TestKit configured like a device node: our serializer, Akka.Persistence.Sql, and serialize-messages on.</summary>
public static class DeviceTestKit
{
    /// <summary>Test configuration on top of <see cref="DeviceActorsConfig.Build"/>.</summary>
    public static Config Config(DevicePersistenceOptions options, string extra = "") =>
        ConfigurationFactory.ParseString($"""
            akka.loglevel = WARNING
            akka.actor.serialize-messages = on
            {extra}
            """).WithFallback(DeviceActorsConfig.Build(options));

    /// <summary>A new TestKit (own actor system) on <paramref name="options"/>.</summary>
    public static Akka.TestKit.Xunit2.TestKit Create(DevicePersistenceOptions options, ITestOutputHelper? output, string extra = "") =>
        new(Config(options, extra), output: output);
}
