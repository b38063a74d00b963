using System.Collections.Concurrent;
using Akka.Actor;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Channels;

namespace Orchestrator.Node.Channels;

/// <summary>The product's release index, read for channel decisions (rare: operator commands and seeds, never idle check-ins).</summary>
public static class StoreReleases
{
    /// <summary>
    /// The release <paramref name="version"/> of <paramref name="product"/> as listed in its index.json, or the reason it
    /// cannot be used (a message naming the input and the fix).
    /// </summary>
    public static (ChannelRelease? Release, string? Problem) Find(FileSystemStore store, string product, string version)
    {
        var index = ReadIndex(store, product);
        if (index is null) return (null, $"product '{product}' has no published release in this node's store (manifests/{product}/index.json); publish one first.");
        var entry = index.FindByVersion(version);
        if (entry is null)
            return (null, $"version '{version}' of '{product}' is not in the product's index; published versions: " +
                          $"{string.Join(", ", index.Versions.Select(v => v.Version).TakeLast(10))}. Publish it first or pick one of those.");
        return (new ChannelRelease(entry.Version, entry.VersionId, entry.ManifestPath), null);
    }

    /// <summary>The parsed index of <paramref name="product"/>, or null when there is none.</summary>
    public static ReleaseIndex? ReadIndex(FileSystemStore store, string product)
    {
        if (!StoreNames.IsValidProduct(product)) return null;
        var bytes = store.ReadFile(StoreLayout.IndexPath(product));
        return bytes is null ? null : ReleaseIndex.Parse(bytes);
    }
}

/// <summary>
/// Seeds the channel directory from the store's channel files (<c>channels/&lt;product&gt;/&lt;channel&gt;.json</c>, written by
/// <c>orch publish --channel</c>): a channel the directory does not have yet starts at the file's release. The directory
/// is the single source of truth from then on; a later file of an existing channel changes nothing (<c>orch channel set</c>
/// does). The product's channel folder is looked at (one stat) at most once per <see cref="RecheckInterval"/> on the
/// check-in path, and its files are read again only when its modification time changed; the channel admin routes look
/// every time (<c>recheckNow</c>).
/// </summary>
public sealed class StoreChannelSeeder(FileSystemStore store, ChannelCache cache, ILogger<StoreChannelSeeder> log, TimeProvider? clock = null)
{
    /// <summary>
    /// Longest time a check-in may be decided without a channel file published since (a channel the directory lacks,
    /// docs/protocol.md "Channels"). A file is written by <c>orch publish --channel</c> into the store folder, which the node
    /// is not told of, so the folder's stat is its only signal; once a second instead of on every check-in.
    /// </summary>
    public static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private const int MaxProducts = 4096;

    // Per product: the folder's write time when its files were last examined completely (MinValue: not yet, or the
    // folder did not exist), and when the folder was last looked at.
    private readonly ConcurrentDictionary<string, (DateTime Stamp, long LookedAt)> _examined = new(StringComparer.Ordinal);

    /// <summary>
    /// <paramref name="known"/>, or, when the store has channel files of channels the directory lacks, the product's
    /// channels after seeding them. Unless <paramref name="recheckNow"/>, the folder is looked at only when
    /// <see cref="RecheckInterval"/> has passed since the last look.
    /// </summary>
    public ValueTask<IReadOnlyList<ChannelTarget>> SeedMissingAsync(string product, IReadOnlyList<ChannelTarget> known, CancellationToken ct,
        bool recheckNow = false)
    {
        var now = _clock.GetTimestamp();
        var had = _examined.TryGetValue(product, out var seen);
        // Every check-in asks; the answer is almost always "nothing new", given here without the seeding's closures.
        if (had && !recheckNow && _clock.GetElapsedTime(seen.LookedAt, now) < RecheckInterval) return ValueTask.FromResult(known);
        return SeedAsync(product, known, had, seen, now, ct);
    }

    private async ValueTask<IReadOnlyList<ChannelTarget>> SeedAsync(string product, IReadOnlyList<ChannelTarget> known, bool had,
        (DateTime Stamp, long LookedAt) seen, long now, CancellationToken ct)
    {
        if (!StoreNames.IsValidProduct(product)) return known;
        var dir = new DirectoryInfo(store.FullPath($"{StoreLayout.ChannelsDirectory}/{product}"));
        if (_examined.Count > MaxProducts) _examined.Clear(); // bounded: products are named by authenticated devices
        if (!dir.Exists)
        {
            _examined[product] = (DateTime.MinValue, now);
            return known;
        }
        var stamp = dir.LastWriteTimeUtc;
        if (had && seen.Stamp == stamp)
        {
            _examined[product] = (stamp, now);
            return known;
        }
        var complete = true;
        var seeded = false;
        foreach (var channel in store.EnumerateChannels(product))
        {
            if (known.Any(k => k.Channel == channel)) continue;
            var release = ReadPointer(product, channel);
            if (release is null) continue;
            try
            {
                var answer = await cache.AskDirectoryAsync(new SetChannelRelease(product, channel, release, "store",
                    $"seeded from {StoreLayout.ChannelPath(product, channel)}", OnlyIfAbsent: true), ct).ConfigureAwait(false);
                if (answer is ChannelRejected r) log.LogWarning("Channel {Product}/{Channel} not seeded from the store: {Message}", product, channel, r.Message);
                else seeded = true;
            }
            catch (AskTimeoutException)
            {
                complete = false; // examined again at the next check-in of the product
            }
        }
        _examined[product] = (complete ? stamp : DateTime.MinValue, now);
        return seeded ? (await cache.RefreshAsync(ct).ConfigureAwait(false)).Channels
            .Where(c => c.Product == product).Select(c => new ChannelTarget(c.Channel, c.Current, c.Rollouts.Select(h => h.RolloutId).ToList())).ToList() : known;
    }

    private ChannelRelease? ReadPointer(string product, string channel)
    {
        try
        {
            var bytes = store.ReadFile(StoreLayout.ChannelPath(product, channel));
            if (bytes is null) return null;
            var p = ChannelPointer.Parse(bytes);
            var entry = StoreReleases.ReadIndex(store, product)?.FindById(p.VersionId);
            if (p.Product != product || p.Channel != channel || entry is null || entry.Version != p.Version || entry.ManifestPath != p.ManifestPath)
            {
                log.LogWarning("Store channel file {Path} names {Version} (id {VersionId}), which the product's index does not list as such; not seeded",
                    StoreLayout.ChannelPath(product, channel), p.Version, p.VersionId);
                return null;
            }
            return new ChannelRelease(entry.Version, entry.VersionId, entry.ManifestPath);
        }
        catch (InvalidInputException ex)
        {
            log.LogWarning("Store channel file of {Product}/{Channel} is unreadable, not seeded: {Message}", product, channel, ex.Message);
            return null;
        }
    }
}
