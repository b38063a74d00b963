using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.TestSupport;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// One real node process's world: its data folder, store (a <see cref="TestStore"/> to publish into), loopback port and
/// an HTTP client on it. The node is started, killed and restarted on the same folders, so what survives a restart is
/// what the node persisted; disposing kills a node still running, so a failed assertion never leaves a process behind.
/// </summary>
internal sealed class NodeProcessRig : IDisposable
{
    private readonly TempDir _dir = new();
    private NodeProcess? _node;

    public NodeProcessRig()
    {
        Data = _dir.Folder("data");
        StoreRoot = _dir.Folder("store");
        Port = LoopbackPort.Free();
        Store = new TestStore(StoreRoot);
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Port}/"), Timeout = TimeSpan.FromSeconds(20) };
    }

    /// <summary>The node's data directory (its SQLite journal and keys).</summary>
    public string Data { get; }

    /// <summary>The node's store root.</summary>
    public string StoreRoot { get; }

    /// <summary>The loopback port the node listens on, the same across restarts.</summary>
    public int Port { get; }

    /// <summary>The store releases are published into, as `orch publish` writes them.</summary>
    public TestStore Store { get; }

    /// <summary>A client on the node's address, without credentials.</summary>
    public HttpClient Http { get; }

    /// <summary>The node's base address, for agents and fleets.</summary>
    public string BaseUrl => $"http://127.0.0.1:{Port}/";

    /// <summary>Starts the node (it must not be running) and waits until it is ready; <paramref name="settings"/> are extra command-line settings.</summary>
    public Task StartAsync(params string[] settings) => StartAsync(null, settings);

    /// <summary>Starts the node as <see cref="StartAsync(string[])"/> does, the process limited to <paramref name="openFiles"/> open files.</summary>
    public Task StartWithOpenFileLimitAsync(int openFiles, params string[] settings) => StartAsync(openFiles, settings);

    private async Task StartAsync(int? openFiles, string[] settings)
    {
        if (_node is not null) throw new InvalidOperationException("the node is already running; Kill() it first");
        _node = await NodeProcess.StartAsync(Port, Data, StoreRoot, openFiles, settings);
    }

    /// <summary>The running node process.</summary>
    public NodeProcess Node => _node ?? throw new InvalidOperationException("the node is not running");

    /// <summary>SIGKILL of the running node: no shutdown hooks, no flushing.</summary>
    public void Kill()
    {
        var node = _node ?? throw new InvalidOperationException("the node is not running");
        _node = null;
        node.Kill();
    }

    public void Dispose()
    {
        _node?.Kill();
        _node = null;
        Http.Dispose();
        Store.Dispose();
        _dir.Dispose();
    }
}
