using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Dashboard;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Observability;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Hosting;

/// <summary>Builds the node: configuration, services, actor system, HTTP routes. Used by Program and by the tests.</summary>
public static class NodeApp
{
    /// <summary>Environment-variable prefix for configuration overrides (<c>ORCH_Node__Port=4054</c>).</summary>
    public const string EnvironmentPrefix = "ORCH_";

    /// <summary>
    /// Builds a ready-to-run node. <paramref name="configure"/> lets callers add configuration sources after the
    /// defaults and <paramref name="services"/> lets them add services (tests register their own IDeviceGateway).
    /// Throws <see cref="InvalidOperationException"/> listing every configuration problem.
    /// </summary>
    public static WebApplication Build(string[] args, Action<IConfigurationBuilder>? configure = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddEnvironmentVariables(EnvironmentPrefix);
        builder.Configuration.AddCommandLine(args);
        configure?.Invoke(builder.Configuration);
        NodeSettings.ThrowIfInvalid(ConfigurationSchema.Problems(builder.Configuration, EnvironmentVariables(), NodeCommandLine.Parse(args).SwitchKeys));
        var settings = NodeSettings.Load(builder.Configuration);
        var deltaOptions = builder.Configuration.GetSection(Deltas.DeltaOptions.Section).Get<Deltas.DeltaOptions>() ?? new Deltas.DeltaOptions();
        NodeSettings.ThrowIfInvalid(deltaOptions.Validate());
        var trustOptions = builder.Configuration.GetSection(Trust.TrustOptions.Section).Get<Trust.TrustOptions>() ?? new Trust.TrustOptions();
        NodeSettings.ThrowIfInvalid(trustOptions.Validate());
        var credentialOptions = builder.Configuration.GetSection(CredentialCacheOptions.Section).Get<CredentialCacheOptions>() ?? new CredentialCacheOptions();
        NodeSettings.ThrowIfInvalid(credentialOptions.Validate());
        var admissionOptions = builder.Configuration.GetSection(AdmissionOptions.Section).Get<AdmissionOptions>() ?? new AdmissionOptions();
        NodeSettings.ThrowIfInvalid(admissionOptions.Validate());
        var memoryOptions = builder.Configuration.GetSection(MemoryOptions.Section).Get<MemoryOptions>() ?? new MemoryOptions();
        NodeSettings.ThrowIfInvalid(memoryOptions.Validate());
        if (memoryOptions.SustainedLowLatency) System.Runtime.GCSettings.LatencyMode = System.Runtime.GCLatencyMode.SustainedLowLatency;
        // Every configuration problem is reported before the data folder is locked or a port is probed.
        Directory.CreateDirectory(settings.Node.StoreRoot);
        var largest = LargestObject.In(FileSystemStore.Open(settings.Node.StoreRoot, create: true));
        if (settings.HasRole(NodeRoles.Gateway)) NodeSettings.ThrowIfInvalid(settings.Throttle.ValidateAgainst(largest.Bytes, largest.Source));
        var dataLock = DataDirectoryLock.Acquire(settings.Node.DataDirectory,
            $"cluster port {settings.Node.Hostname}:{settings.Node.Port}, HTTP {builder.Configuration["Urls"] ?? "default"}");
        try
        {
            PortProbe.EnsureRemotingFree(settings.Node);
            PortProbe.EnsureHttpFree(builder.Configuration["Urls"]);
            return BuildLocked(builder, settings, deltaOptions, trustOptions, credentialOptions, admissionOptions, memoryOptions, dataLock, largest.Bytes, services);
        }
        catch
        {
            dataLock.Dispose();
            throw;
        }
    }

    private static WebApplication BuildLocked(WebApplicationBuilder builder, NodeSettings settings, Deltas.DeltaOptions deltaOptions, Trust.TrustOptions trustOptions,
        CredentialCacheOptions credentialOptions, AdmissionOptions admissionOptions, MemoryOptions memoryOptions, DataDirectoryLock dataLock, long largestObjectBytes, Action<IServiceCollection>? services)
    {

        var connectionLimit = ConnectionLimit.ForThisProcess(admissionOptions.MaxConnections);
        // Kestrel logs every connection closed at the connection limit as a warning: thousands a second in a storm, which
        // /metrics counts (kestrel_rejected_connections) at no cost. Unless the operator chose a level for it.
        const string rejectedConnections = "Microsoft.AspNetCore.Server.Kestrel.Connections";
        if (builder.Configuration[$"Logging:LogLevel:{rejectedConnections}"] is null) builder.Logging.AddFilter(rejectedConnections, LogLevel.Error);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = settings.Gateway.MaxRequestBodyBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            // With the check-in admission's slots and the body limit, what a storm can make the node hold is bounded.
            k.Limits.MaxConcurrentConnections = connectionLimit.Effective;
        });
        var listenQueue = new ListenQueue();
        builder.WebHost.UseSockets(o =>
        {
            o.Backlog = admissionOptions.AcceptBacklog;
            o.CreateBoundListenSocket = listenQueue.CreateBoundListenSocket;
        });
        if (connectionLimit.AcceptLimit is { } acceptLimit)
        {
            // The sockets transport behind the accept gate, as the only transport Kestrel may bind with.
            builder.Services.RemoveAll<Microsoft.AspNetCore.Connections.IConnectionListenerFactory>();
            builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IConnectionListenerFactory>(sp => new ConnectionAcceptGate(
                new Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportFactory(
                    sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>>(),
                    sp.GetRequiredService<ILoggerFactory>()), acceptLimit,
                admissionOptions.MaxUnreadConnections, TimeSpan.FromMilliseconds(admissionOptions.UnreadConnectionMilliseconds)));
        }

        var s = builder.Services;
        // Created through a factory so the container releases the lock when the node is disposed.
        s.AddSingleton(_ => dataLock);
        s.AddSingleton(settings);
        s.AddSingleton(TimeProvider.System);
        s.AddSingleton(_ => new NodeDatabase(settings.Database, settings.Node.DataDirectory));
        s.AddSingleton(credentialOptions);
        s.AddSingleton(memoryOptions);
        s.AddHostedService<MemoryTrim>();
        s.AddSingleton(admissionOptions);
        s.AddSingleton(connectionLimit);
        s.AddSingleton(listenQueue);
        s.AddSingleton<CheckInAdmission>();
        s.AddSingleton<DeviceCredentialStore>();
        s.AddSingleton(_ => FileSystemStore.Open(settings.Node.StoreRoot, create: true));
        s.AddSingleton<DeviceAuthentication>();
        // The gateway's side of the cluster-wide download budgets (entities of the budget region on 'chunks' nodes).
        s.AddSingleton(sp => new DownloadThrottle(settings.Throttle, sp.GetRequiredService<TimeProvider>(),
            ct => sp.GetRequiredService<IRequiredActor<BudgetShardRegion>>().GetAsync(ct),
            $"{settings.Node.Hostname}:{settings.Node.Port}", settings.ChunkStore.AskTimeout)
        {
            MinRolloutBurstBytes = Math.Max(DownloadThrottle.DefaultMinRolloutBurstBytes, largestObjectBytes),
        });
        s.AddSingleton(sp => AdminTokens.LoadOrBootstrap(settings.Admin, settings.Node.DataDirectory));
        s.AddSingleton<AdminTokenStore>();
        s.AddSingleton<Audit.AuditLog>();
        s.AddSingleton<Groups.DeviceGroupStore>();
        s.AddOpenApi();
        s.AddSingleton(sp => new ChunkClient(sp.GetRequiredService<IRequiredActor<ChunkShardRegion>>(), settings.ChunkStore.AskTimeout));
        s.AddHostedService<NodeStartup>();
        s.AddHostedService<AdminTokenRefresher>();

        IChunkBlobStore? backend = null;
        if (settings.HasRole(NodeRoles.Chunks))
        {
            backend = settings.ChunkStore.Backend == "postgresql"
                ? new PostgresChunkBlobStore(settings.ChunkStore.ConnectionString ?? settings.Database.ConnectionString!)
                : new FileSystemChunkBlobStore(settings.Node.StoreRoot);
            // Registered through a factory so the container disposes it (closes the PostgreSQL pool) at shutdown.
            s.AddSingleton<IChunkBlobStore>(_ => backend);
        }
        var devicePersistence = (settings.Database.Provider == "postgresql"
            ? DevicePersistenceOptions.PostgreSql(settings.Database.ConnectionString!)
            : DevicePersistenceOptions.Sqlite(Path.Combine(settings.Node.DataDirectory, "devices.db"))) with { QueryRefreshInterval = settings.Devices.QueryRefreshInterval };
        s.AddSingleton(devicePersistence);
        s.AddNodeActorSystem(settings, backend, devicePersistence);
        s.AddHostedService<CredentialChangeHosting>();
        s.AddSingleton<CredentialPreload>();
        s.AddHostedService(sp => sp.GetRequiredService<CredentialPreload>());
        s.AddSingleton<InstalledReleaseInspector>();
        s.AddSingleton<Channels.StoreChannelSeeder>();
        s.AddSingleton(trustOptions);
        s.AddSingleton(sp => new Trust.DirectorSigner(trustOptions, settings.Node.DataDirectory, sp.GetRequiredService<FileSystemStore>(),
            sp.GetRequiredService<TimeProvider>()));
        s.AddSingleton<IDeviceGateway, ShardedDeviceGateway>();
        s.AddSingleton<FleetViewCache>();
        s.AddSingleton(deltaOptions);
        s.AddSingleton<Deltas.DeltaPrecomputer>();
        s.AddHostedService(sp => sp.GetRequiredService<Deltas.DeltaPrecomputer>());
        if (settings.HasRole(NodeRoles.Gateway)) s.AddHostedService<FleetGauges>();

        s.AddHealthChecks()
            .AddCheck<ClusterMemberHealthCheck>("cluster", tags: ["ready"])
            .AddCheck<DatabaseHealthCheck>("database", tags: ["ready"])
            .AddCheck<WarmUpHealthCheck>("warm-up", tags: ["ready"]);
        s.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(GatewayMetrics.MeterName, ChunkStoreMetrics.MeterName, FleetGauges.MeterName, Orchestrator.DeviceActors.DeviceActorMetrics.MeterName,
                MemoryTrim.MeterName, ConnectionAcceptGate.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel",
                // The runtime's own meter: GC heap, committed and fragmented memory, thread-pool queue, so an SRE can tell
                // live devices from memory the runtime merely holds.
                "System.Runtime")
            // Two tagged updates of an aggregator per request, the idle check-in's among them, for a gauge that
            // orch_gateway_checkins_in_flight gives for check-ins and Kestrel's connection gauges for the rest.
            .AddView("http.server.active_requests", MetricStreamConfiguration.Drop)
            .AddPrometheusExporter());
        services?.Invoke(s);

        var app = builder.Build();
        app.Services.GetRequiredService<DataDirectoryLock>();
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") });
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapClusterBootstrap(settings.Node);
        app.StopWhenJoinFails();
        if (settings.HasRole(NodeRoles.Gateway))
        {
            app.UseMiddleware<Audit.AuditMiddleware>();
            app.MapOpenApi();
            app.MapDeviceApi();
            app.MapStoreApi();
            app.MapAdminApi();
            app.MapDashboard();
        }
        return app;
    }

    private static IEnumerable<KeyValuePair<string, string?>> EnvironmentVariables() =>
        Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Select(e => new KeyValuePair<string, string?>((string)e.Key, e.Value as string));
}

/// <summary>Start-up work that must finish before the node serves: database schema, admin token.</summary>
internal sealed class NodeStartup(DeviceCredentialStore credentials, DevicePersistenceOptions devicePersistence, NodeSettings settings,
    AdminTokens adminTokens, AdminTokenStore adminTokenStore, Audit.AuditLog audit, Groups.DeviceGroupStore groups, DownloadThrottle throttle, Trust.DirectorSigner director, ConnectionLimit connections, ILogger<NodeStartup> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Registered before the actor system, so the journal's database is ready before any device actor recovers.
        await devicePersistence.PrepareDatabase(cancellationToken).ConfigureAwait(false);
        await credentials.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await adminTokenStore.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await audit.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await groups.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        adminTokens.Refresh(await adminTokenStore.LoadAsync(cancellationToken).ConfigureAwait(false));
        if (adminTokens.BootstrapFile is { } file) log.LogInformation("Admin API bootstrap token (scopes read, operate) is in {File}", file);
        GatewayMetrics.ObserveThrottle(throttle);
        if (director.GeneratedDevelopmentKey)
            log.LogWarning("No Trust:DirectorKeyFile configured: created the development director key {File}, public key {Key}. Devices provisioned with a " +
                "root document accept its directives only if the root names this key; production nodes use the director.key of 'orch keys init'.",
                director.KeyFile, director.Describe());
        else log.LogInformation("Director key {File}, public key {Key}", director.KeyFile, director.Describe());
        if (connections.Lowered)
            log.LogWarning("Admission:MaxConnections is {Configured}, but this process may open only {OpenFiles} files (the soft limit in /proc/self/limits) " +
                "and keeps {Reserve} of them for its database, store and runtime: at most {Effective} connections are accepted at once, the rest closed " +
                "unanswered. Raise the open-file limit (systemd LimitNOFILE=, ulimit -n, the container's nofile) or lower Admission:MaxConnections.",
                connections.Configured, connections.OpenFiles, ConnectionLimit.Reserve(connections.OpenFiles!.Value), connections.Effective);
        log.LogInformation("Node roles {Roles}; store {Store}; data {Data}", string.Join(",", settings.Node.Roles),
            Path.GetFullPath(settings.Node.StoreRoot), Path.GetFullPath(settings.Node.DataDirectory));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
