namespace Orchestrator.Messages.Admin;

/// <summary>One switch of a server-backed command.</summary>
/// <param name="Name">Name without dashes.</param>
/// <param name="ValueName">Placeholder of its value; null for a flag.</param>
/// <param name="Description">One line of help.</param>
/// <param name="Required">Whether the command refuses to run without it.</param>
/// <param name="Values">Allowed values, when the set is closed (used for tab completion).</param>
public sealed record SwitchDescription(string Name, string? ValueName, string Description, bool Required = false, IReadOnlyList<string>? Values = null);

/// <summary>One command of a palette.</summary>
/// <param name="Name">Command name.</param>
/// <param name="Summary">One line of help.</param>
/// <param name="Scope">Admin scope the command needs (read or operate).</param>
/// <param name="Switches">Command-specific switches (the common --server, --token, --json are implied).</param>
/// <param name="Positionals">Positional argument names in order; a name in brackets (<c>[DEVICE]</c>) may be left out, only at the end.</param>
public sealed record CommandDescription(string Name, string Summary, string Scope, IReadOnlyList<SwitchDescription> Switches, IReadOnlyList<string> Positionals);

/// <summary>A palette the node serves.</summary>
/// <param name="Name">Palette name.</param>
/// <param name="Summary">One line of help.</param>
/// <param name="Commands">Its commands.</param>
public sealed record PaletteDescription(string Name, string Summary, IReadOnlyList<CommandDescription> Commands);

/// <summary>Answer of <c>GET /admin/v1/palettes</c>: what the node can do, for help and tab completion in <c>orch</c>.</summary>
/// <param name="Node">Address of the node that answered.</param>
/// <param name="Palettes">Palettes this node serves.</param>
public sealed record PaletteCatalogView(string Node, IReadOnlyList<PaletteDescription> Palettes);

/// <summary>
/// The server-backed palettes of the admin API: one place that both the node (which serves the description) and
/// <c>orch</c> (which binds a handler to each command) read, so help text and routes cannot drift apart.
/// </summary>
public static class PaletteCatalog
{
    /// <summary>Scope of read-only commands.</summary>
    public const string Read = "read";

    /// <summary>Scope of commands that change state.</summary>
    public const string Operate = "operate";

    private static readonly IReadOnlyList<string> None = [];

    /// <summary><c>orch cluster ...</c></summary>
    public static PaletteDescription Cluster { get; } = new("cluster", "cluster membership: show members, make one leave or mark it down",
    [
        new("show", "List members with status, roles, reachability and the leader.", Read, [], None),
        new("leave", "Ask a member to leave the cluster gracefully (its shards move to other nodes).", Operate, [], ["ADDRESS"]),
        new("down", "Mark an unreachable member down so the cluster stops waiting for it (it must not come back by itself).", Operate, [], ["ADDRESS"]),
    ]);

    /// <summary><c>orch sharding ...</c></summary>
    public static PaletteDescription Sharding { get; } = new("sharding", "cluster sharding: regions, shard statistics, where a device lives",
    [
        new("regions", "Shards and live entities hosted by the answering node, per entity type.", Read, [], None),
        new("stats", "Shards and entities per node, cluster-wide, per entity type.", Read, [], None),
        new("locate", "Shard of a device, the node hosting it, and whether its actor is alive.", Read, [], ["DEVICE"]),
    ]);

    /// <summary><c>orch device ...</c></summary>
    public static PaletteDescription Device { get; } = new("device", "devices: list with filters, state, event history, provisioning",
    [
        new("list", "List devices from the registry read model; filters combine.", Read,
        [
            new("status", "STATUS", "only devices in this status", Values: DeviceStatusNames.All),
            new("version-id", "N", "only devices with this installed version ID"),
            new("tag", "TAG", "only devices with this tag"),
            new("rollout", "ID", "only devices assigned by this rollout"),
            new("attributes", "K=V,K2=V2", "only devices having all these attributes"),
            new("limit", "N", "at most N rows (default 100, max 100000)"),
        ], None),
        new("show", "Full state of one device from its actor: status, versions, work, progress, last failure.", Read, [], ["DEVICE"]),
        new("history", "Every persisted event of one device, oldest first.", Read,
            [new("last", "N", "only the last N events")], ["DEVICE"]),
        new("provision", "Create the device's credential (secret shown once) and register its product and tags; or, with --count and --prefix or " +
            "--csv instead of DEVICE, many devices' credentials in one request, written as CSV (device,secret) to stdout or --out FILE.", Operate,
        [
            new("product", "NAME", "product the device(s) run (registers them)"),
            new("tags", "T1,T2", "comma-separated operator tags (with --product)"),
            new("rotate", null, "replace an existing credential; the old secret stops working (one DEVICE only)"),
            new("count", "N", $"provision N devices named PREFIX + number (1..{DeviceBatchProvisionRequest.MaxDevices}, with --prefix)"),
            new("prefix", "P", "id prefix of the --count devices, e.g. store-17-"),
            new("start", "N", "first number of the --count devices (default 1); numbers are zero-padded to the widest"),
            new("csv", "FILE", "provision the device ids in the first column of FILE (one per line; header, blank and # lines skipped)"),
            new("out", "FILE", "write the credentials to FILE (created with mode 0600; must not exist) instead of stdout"),
        ], ["[DEVICE]"]),
        new("set-product", "Move a device to another product (the only way its registered product changes; a check-in claiming another product is refused).", Operate,
            [new("product", "NAME", "the new product", Required: true)], ["DEVICE"]),
        new("decommission", "Retire a device for good: its credential is revoked, nothing it sends is taken, it leaves the fleet views; its history is kept.", Operate,
            [new("reason", "TEXT", "why (kept in the device's history)", Required: true)], ["DEVICE"]),
        new("register-batch", "Register the product and tags of every device listed in FILE (one id per line), checked in full before any is written.", Operate,
        [
            new("product", "NAME", "product the devices run", Required: true),
            new("tags", "T1,T2", "comma-separated operator tags (replace earlier ones)"),
        ], ["FILE"]),
        new("set-channel", "Move a registered device to a channel (sets its channel:NAME tag; stable removes it).", Operate, [], ["DEVICE", "CHANNEL"]),
        new("attributes", "Show a device's attributes (reported by its agent, set by operators), or set and remove operator attributes; " +
            "an operator value overrides what the device reports for the same key.", Operate,
        [
            new("set", "K=V,K2=V2", "operator attributes to set"),
            new("remove", "K1,K2", "operator attribute keys to remove"),
        ], ["DEVICE"]),
    ]);

    /// <summary><c>orch group ...</c></summary>
    public static PaletteDescription Group { get; } = new("group", "saved device groups: rollouts select them by name",
    [
        new("list", "Every group (configured on the node, then saved) with the number of devices it matches now.", Read, [], None),
        new("show", "One group: its conditions and the devices it matches now.", Read, [], ["NAME"]),
        new("save", "Create or replace a group: devices carrying all --tags and having all --attributes, plus the --devices listed.", Operate,
        [
            new("tags", "T1,T2", "members carry all these tags"),
            new("attributes", "K=V,K2=V2", "members have all these attributes"),
            new("devices", "D1,D2", "explicit members"),
        ], ["NAME"]),
        new("delete", "Delete a saved group (rollouts created with it keep their copy).", Operate, [], ["NAME"]),
    ]);

    /// <summary><c>orch channel ...</c></summary>
    public static PaletteDescription Channel { get; } = new("channel", "release channels: each product's channels and their current releases",
    [
        new("list", "Channels with their current release and the rollouts moving them.", Read,
            [new("product", "NAME", "only this product")], None),
        new("show", "One channel: current release, rollouts, history, its devices and what they run.", Read, [], ["PRODUCT", "CHANNEL"]),
        new("set", "Point a channel at a published version; its devices converge to it on their next check-in.", Operate,
        [
            new("reason", "TEXT", "why (recorded in the channel's history)"),
            new("operator", "NAME", "who (recorded)"),
        ], ["PRODUCT", "CHANNEL", "VERSION"]),
    ]);

    /// <summary>Server-backed commands of <c>orch release ...</c> (publish itself runs locally against a store folder).</summary>
    public static PaletteDescription Release { get; } = new("release", "releases in the node's store",
    [
        new("list", "Products, their versions and the channels pointing at them.", Read,
            [new("product", "NAME", "only this product")], None),
        new("show", "One version: files, size, chunks, signature, channels, devices running it.", Read, [], ["PRODUCT", "VERSION"]),
    ]);

    /// <summary><c>orch chunks ...</c></summary>
    public static PaletteDescription Chunks { get; } = new("chunks", "the node's chunk store: figures, integrity, garbage collection",
    [
        new("stats", "Chunks, bytes, referenced and unreferenced chunks, products and versions.", Read, [], None),
        new("verify", "Hash every chunk against its id and check every listed manifest and the chunks it needs.", Read, [], None),
        new("gc", "Delete chunks no published manifest references (dry run unless --apply).", Operate,
        [
            new("apply", null, "really delete (default: dry run)"),
            new("grace-minutes", "N", "keep chunks newer than N minutes (default 60)"),
        ], None),
    ]);

    /// <summary>The --reason switch of pause, abort and rollback.</summary>
    private static readonly IReadOnlyList<SwitchDescription> ReasonSwitch = [new("reason", "TEXT", "why (recorded with the rollout)")];

    /// <summary><c>orch rollout ...</c></summary>
    public static PaletteDescription Rollout { get; } = new("rollout", "phased rollouts: create, follow and steer them",
    [
        new("list", "Rollouts with status, wave and device counters.", Read,
            [new("active", null, "only rollouts that have not finished")], None),
        new("show", "One rollout: target, waves with exact counters, thresholds, failures.", Read, [], ["ROLLOUT"]),
        new("create", "Create a rollout of a published version to the selected devices, wave by wave.", Operate,
        [
            new("product", "NAME", "product to roll out", Required: true),
            new("version", "VERSION", "published version to install", Required: true),
            new("id", "ID", "rollout id (default: generated)"),
            new("tags", "T1,T2", "select devices carrying all these tags"),
            new("devices", "D1,D2", "select these devices"),
            new("groups", "G1,G2", "select the members of these groups (orch group list)"),
            new("attributes", "K=V,K2=V2", "select devices having all these attributes (with --tags and --installed: all must hold)"),
            new("installed", "V1,V2", "select devices running one of these versions (none: nothing installed)"),
            new("waves", "SPEC", "comma-separated wave sizes, counts or percents, e.g. 5,25%,100% (default 100%)"),
            new("max-concurrent", "N", "at most N devices with unfinished work at once (default 100)"),
            new("success-threshold", "F", "fraction of a wave that must succeed before the next starts (default 0.95)"),
            new("error-threshold", "F", "fraction of a wave that may fail before the rollout pauses itself (default 0.05)"),
            new("soak", "SECONDS", "wait after a wave succeeded before starting the next (default 0)"),
            new("max-attempts", "N", "optional cap: failed attempts after which a device is given up (default none: devices retry until success)"),
            new("failing-after", "N", "failed attempts after which a still-retrying device counts as failing for the error threshold (default 3)"),
            new("device-timeout", "SECONDS", "a device not done this long after its assignment counts as failed (default 0: wait indefinitely)"),
            new("bandwidth", "BYTES_PER_S", "bandwidth cap recorded with the rollout (default none)"),
            new("randomize", null, "shuffle devices before cutting waves"),
            new("seed", "N", "shuffle seed (recorded, reproducible)"),
            new("start-at", "TIME", "assign nothing before this ISO-8601 time"),
            new("window", "HH:mm-HH:mm", "assign new devices only inside this daily UTC window"),
            new("operator", "NAME", "who creates it (recorded)"),
            new("channel", "NAME", "channel the rollout moves: only its devices are selected, and it points at the target on completion (default stable)"),
            new("dry-run", null, "show what the rollout would select now (devices, wave sizes, what they run) and create nothing"),
        ], None),
        new("pause", "Stop assigning new devices; devices already working continue.", Operate, ReasonSwitch, ["ROLLOUT"]),
        new("resume", "Continue a paused rollout.", Operate, [], ["ROLLOUT"]),
        new("abort", "End the rollout and cancel unfinished assignments.", Operate, ReasonSwitch, ["ROLLOUT"]),
        new("rollback", "Assign every touched device its previous version.", Operate, ReasonSwitch, ["ROLLOUT"]),
        new("retry", "Give the rollout's failed devices another round of attempts.", Operate, [], ["ROLLOUT"]),
        new("watch", "Follow a rollout live until it finishes (Ctrl+C stops watching, not the rollout).", Read,
            [new("interval", "SECONDS", "seconds between updates (default 2)")], ["ROLLOUT"]),
    ]);

    /// <summary><c>orch token ...</c></summary>
    public static PaletteDescription Token { get; } = new("token", "admin API tokens: create with scopes and an expiry, list, revoke",
    [
        new("create", "Create a named admin token (shown once) with scopes and an expiry.", Operate,
        [
            new("name", "NAME", "unique name (letters, digits, '.', '_', '-'; never reused)", Required: true),
            new("scopes", "S1,S2", "read and/or operate", Required: true, Values: [Read, Operate, Read + "," + Operate]),
            new("expires", "DURATION", "lifetime: N followed by s, m, h or d (e.g. 30d), or never (default 90d)"),
        ], None),
        new("list", "Every admin token: name, scopes, source, status, expiry (never the token).", Operate, [], None),
        new("revoke", "Revoke a token by name (created, configured or bootstrap); it stops working on every node.", Operate, [], ["NAME"]),
    ]);

    /// <summary><c>orch audit ...</c></summary>
    public static PaletteDescription Audit { get; } = new("audit", "the audit trail: who changed what, when and why",
    [
        new("list", "Changing admin requests, newest first: time, token, action, target, reason, status.", Read,
        [
            new("since", "WHEN", "only entries from this time on: an ISO-8601 time, or an age such as 30m, 12h, 7d"),
            new("target", "NAME", "only entries about this rollout, device, channel, product or token"),
            new("limit", "N", "at most N entries (1-10000, default 100)"),
        ], None),
    ]);

    /// <summary>Every server-backed palette of this build.</summary>
    public static IReadOnlyList<PaletteDescription> All { get; } = [Cluster, Sharding, Device, Group, Release, Chunks, Rollout, Channel, Token, Audit];
}
