using Orchestrator.DeviceActors.Persistence;
using Orchestrator.TestSupport;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>Implemented by test classes that run a shared suite against one persistence backend.</summary>
public interface IBackendSuite
{
    /// <summary>The backend the class runs against (a static property, read without instantiating the class).</summary>
    static abstract PersistenceBackend Backend { get; }
}

/// <summary>
/// A fact of a suite that runs against several backends; in classes whose backend is PostgreSQL it is skipped with
/// a clear reason when no server is configured (and fails instead when ORCH_REQUIRE_POSTGRES=1).
/// </summary>
[XunitTestCaseDiscoverer("Orchestrator.DeviceActors.Tests.Infrastructure.BackendFactDiscoverer", "Orchestrator.DeviceActors.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class BackendFactAttribute : FactAttribute;

/// <summary>Discoverer of <see cref="BackendFactAttribute"/>.</summary>
public sealed class BackendFactDiscoverer(IMessageSink sink) : IXunitTestCaseDiscoverer
{
    /// <inheritdoc />
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions options, ITestMethod method, IAttributeInfo attribute)
    {
        var cls = method.TestClass.Class.ToRuntimeType();
        var backend = cls.GetProperty("Backend", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)?.GetValue(null);
        var display = options.MethodDisplayOrDefault();
        var displayOptions = options.MethodDisplayOptionsOrDefault();
        if (backend is PersistenceBackend.PostgreSql && PostgresGate.SkipReason is { } reason)
            yield return new XunitSkippedDataRowTestCase(sink, display, displayOptions, method, reason);
        else
            yield return new XunitTestCase(sink, display, displayOptions, method);
    }
}
