using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Publishing;

/// <summary>
/// Publishes a release tree into a store: validate everything first (names, tree, version ID), then chunk,
/// encode and put the absent chunks, make them durable, write the signed manifest, and commit by rewriting the
/// product's index (docs/store-format.md, "Writes and crash safety"). Bad input throws
/// <see cref="InvalidInputException"/> before the first write.
/// </summary>
public sealed class Publisher
{
    private const int QueueChunks = 64;
    private const int ProgressEveryChunks = 64;

    private readonly IContentStore _store;
    private readonly ContentKey _contentKey;
    private readonly ReleaseSigningKey _signingKey;
    private readonly TimeProvider _time;

    /// <summary>Creates a publisher writing to <paramref name="store"/> with the given keys.</summary>
    public Publisher(IContentStore store, ContentKey contentKey, ReleaseSigningKey signingKey, TimeProvider? time = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _contentKey = contentKey ?? throw new ArgumentNullException(nameof(contentKey));
        _signingKey = signingKey ?? throw new ArgumentNullException(nameof(signingKey));
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Degree of parallelism for encoding chunks (defaults to the processor count).</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>Opens a tree file for reading; tests substitute it to simulate unreadable files.</summary>
    internal Func<string, Stream> OpenFile { get; init; } = ReleaseTree.DefaultOpenRead;

    /// <summary>Publishes <paramref name="request"/>; see the class summary for the order of effects.</summary>
    public PublishResult Publish(PublishRequest request, IProgress<PublishProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var stopwatch = Stopwatch.StartNew();
        StoreNames.RequireProduct(request.Product);
        StoreNames.RequireVersion(request.Version);
        if (request.Channel is not null) StoreNames.RequireChannel(request.Channel);
        if (request.VersionId is { } explicitId) StoreNames.RequireVersionId(explicitId);
        var lifetime = request.Lifetime ?? TimeSpan.FromDays(365);
        if (lifetime < TimeSpan.FromSeconds(1))
            throw new InvalidInputException($"Manifest lifetime {lifetime} is too short: use at least one second (e.g. 365 days).");
        var chunker = new FastCdcChunker(request.Chunking ?? ChunkingOptions.Default);
        var tree = ReleaseTree.Scan(request.TreePath, OpenFile);

        using var writerLock = _store.AcquireWriterLock();
        var indexPath = StoreLayout.IndexPath(request.Product);
        var indexBytes = _store.ReadFile(indexPath);
        var index = indexBytes is null ? new ReleaseIndex(request.Product, []) : ReleaseIndex.Parse(indexBytes);
        if (index.FindByVersion(request.Version) is { } existing)
            throw new InvalidInputException($"Version '{request.Version}' of product '{request.Product}' is already published (version ID {existing.VersionId}): choose a new version string.");
        var latestId = index.Latest?.VersionId ?? 0;
        var versionId = request.VersionId ?? latestId + 1;
        if (versionId <= latestId)
            throw new InvalidInputException($"Version ID {versionId} is not greater than the latest version ID {latestId} ('{index.Latest!.Version}') of product '{request.Product}': pass --version-id {latestId + 1} or higher.");

        // With packs the new chunk objects go into pack objects only (one copy per chunk); without, each is its own object.
        var locator = request.Packs ? new ChunkLocator(_store, reloadOnMiss: false) : null;
        var state = new RunState(tree.TotalBytes, PublishCache.Load(_store), locator, locator is null ? null : new PackWriter(_store));
        var fileChunks = new List<PendingChunk>[tree.Files.Count];
        var fileHashes = new string[tree.Files.Count];
        if (request.SmallFilesBelow < 0)
            throw new InvalidInputException($"Small-file threshold {request.SmallFilesBelow} is negative: use 0 (off) or a size in bytes such as {chunker.Options.Min}.");
        var inStream = tree.Files.Select(f => f.Size > 0 && f.Size < request.SmallFilesBelow).ToArray();
        if (inStream.Count(s => s) < 2) Array.Clear(inStream);
        var streamChunks = new List<PendingChunk>();

        // Pipeline: this thread reads, hashes and chunks the files in order and queues each chunk; one worker per
        // core takes chunks off the queue and tags, encodes and stores them. No batch barrier: the reader never
        // waits for the slowest chunk of a batch, only for queue space. Memory: at most QueueChunks queued chunks
        // plus one per worker (each <= chunking max).
        using var queue = new BlockingCollection<PendingChunk>(QueueChunks);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pipeline = new Pipeline(queue, stop);
        var workers = new Task[Math.Max(1, Parallelism)];
        for (var w = 0; w < workers.Length; w++)
            workers[w] = Task.Factory.StartNew(() => pipeline.Work(p => EncodeAndStore(p, state)),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            // The small-file stream first: its chunks lie together in the packs, in the order a device reads them.
            if (inStream.Any(s => s))
            {
                using var concatenated = new SmallFileReader(tree.Files, inStream, OpenFile, fileHashes);
                foreach (var chunk in chunker.Chunks(concatenated))
                {
                    var copy = ArrayPool<byte>.Shared.Rent(chunk.Length);
                    chunk.Span.CopyTo(copy);
                    var pending = new PendingChunk(copy, chunk.Length) { Sequence = state.ChunksQueued };
                    streamChunks.Add(pending);
                    queue.Add(pending, stop.Token);
                    if (++state.ChunksQueued % ProgressEveryChunks == 0) progress?.Report(state.Snapshot(concatenated.Current));
                }
                concatenated.Finish();
            }
            for (var f = 0; f < tree.Files.Count; f++)
            {
                stop.Token.ThrowIfCancellationRequested();
                if (inStream[f]) { fileChunks[f] = []; continue; }
                var file = tree.Files[f];
                fileChunks[f] = [];
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                Stream stream;
                try
                {
                    stream = OpenFile(file.FullPath);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new InvalidInputException($"File '{file.FullPath}' cannot be read ({ex.Message}): fix its permissions or remove it from the tree.", ex);
                }
                using (stream)
                {
                    foreach (var chunk in chunker.Chunks(stream))
                    {
                        hash.AppendData(chunk.Span);
                        var copy = ArrayPool<byte>.Shared.Rent(chunk.Length);
                        chunk.Span.CopyTo(copy);
                        var pending = new PendingChunk(copy, chunk.Length) { Sequence = state.ChunksQueued };
                        fileChunks[f].Add(pending);
                        queue.Add(pending, stop.Token);
                        if (++state.ChunksQueued % ProgressEveryChunks == 0) progress?.Report(state.Snapshot(file.RelativePath));
                    }
                }
                fileHashes[f] = Convert.ToHexStringLower(hash.GetHashAndReset());
            }
        }
        catch (OperationCanceledException) when (pipeline.Failure is not null)
        {
            // A worker failed and stopped the reader: report the worker's error, not the cancellation.
        }
        catch
        {
            stop.Cancel(); // the reader failed (or was cancelled): workers stop after their current chunk
            throw;
        }
        finally
        {
            // Never return while a worker may still write into the store; the first failure is the one reported.
            queue.CompleteAdding();
            Task.WaitAll(workers);
        }
        pipeline.Failure?.Throw();
        cancellationToken.ThrowIfCancellationRequested();
        if (state.Packer is { } packer)
        {
            packer.Complete();
            locator!.Add(packer.Written.Values, packer.Packs);
        }
        progress?.Report(state.Snapshot(null));

        // Chunks must be durable before anything that refers to them.
        _store.Flush();

        SmallFileStream? smallFiles = null;
        long[] starts = [];
        if (streamChunks.Count > 0)
        {
            var refs = streamChunks.Select(c => new ChunkRef(c.Id, c.Length, c.Tag)).ToList();
            smallFiles = new SmallFileStream(refs.Sum(c => (long)c.Length), refs);
            starts = smallFiles.ChunkStarts();
        }
        long streamOffset = 0;
        var files = tree.Files.Select((f, i) =>
        {
            if (inStream[i])
            {
                var file = smallFiles!.Attach(new ManifestFile(f.RelativePath, f.Mode, f.Size, fileHashes[i], []) { StreamOffset = streamOffset }, starts)
                    ?? throw new InvalidInputException($"File '{f.FullPath}' changed size while it was published: publish from a tree nothing writes to.");
                streamOffset += f.Size;
                return file;
            }
            var refs = fileChunks[i].Select(c => new ChunkRef(c.Id, c.Length, c.Tag)).ToList();
            return new ManifestFile(f.RelativePath, f.Mode, refs.Sum(c => (long)c.Length), fileHashes[i], refs);
        }).ToList();
        var symlinks = tree.Symlinks.Select(s => new ManifestSymlink(s.RelativePath, s.Target)).ToList();
        var now = _time.GetUtcNow();
        var created = new DateTimeOffset(now.UtcTicks - now.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        var expires = created + TimeSpan.FromSeconds(Math.Ceiling(lifetime.TotalSeconds));
        var manifest = new Manifest(request.Product, request.Version, versionId, created, expires, chunker.Options,
            InventoryDigest.Of(files), files, symlinks) { Stream = smallFiles };
        var manifestBytes = ManifestSerializer.Serialize(manifest);
        var signature = ManifestSigner.Sign(manifestBytes, _signingKey);
        var manifestPath = StoreLayout.ManifestPath(request.Product, request.Version);
        var packs = locator is null ? null : ReleasePacker.Index(_store, PackIndex.ChunkOrder(manifest), locator, index.Latest?.ManifestPath);
        _store.WriteFile(manifestPath, manifestBytes);
        _store.WriteFile(StoreLayout.SignaturePathFor(manifestPath), signature);
        if (packs is not null) _store.WriteFile(StoreLayout.PackIndexPath(request.Product, request.Version), packs.SignedIndex(manifestBytes, _signingKey));
        // Compact encodings before the commit, like the signature: once the index lists the version, all it offers is there.
        CompactManifest.WriteForNewRelease(_store, index, manifestPath, manifestBytes);
        // Commit point: the version exists once the index lists it.
        _store.WriteFile(indexPath, index.With(new ReleaseIndexEntry(request.Version, versionId, manifestPath, created)).ToBytes());
        if (request.Channel is not null)
            _store.WriteFile(StoreLayout.ChannelPath(request.Product, request.Channel),
                new ChannelPointer(request.Product, request.Channel, request.Version, versionId, manifestPath).ToBytes());
        // After the commit: the cache only speeds up later publishes.
        if (state.Cache.Changed) _store.WriteFile(StoreLayout.PublishCacheFile, state.Cache.ToBytes());

        return new PublishResult(request.Product, request.Version, versionId, manifestPath, files.Count, symlinks.Count,
            tree.Files.Count == 0 ? 0 : files.Sum(f => f.Size), state.ChunksDone, state.Distinct.Count, state.ChunksNew, state.BytesNew,
            manifest.InventoryDigest, stopwatch.Elapsed);
    }

    /// <summary>Tags one chunk, and encodes and stores it unless this store already holds its plaintext.</summary>
    private void EncodeAndStore(PendingChunk p, RunState state)
    {
        var plaintext = p.Buffer.AsSpan(0, p.Length);
        Span<byte> tag = stackalloc byte[ChunkCodec.PlaintextTagLength];
        ChunkCodec.WritePlaintextTag(plaintext, _contentKey, tag);
        p.Tag = ChunkCodec.ManifestTagOf(tag);
        if (state.Cache.TryGet(tag, out var cachedId, out var cachedLength) && cachedLength == p.Length &&
            (state.Distinct.ContainsKey(cachedId) || state.Has(cachedId, _store)))
        {
            // Stored by an earlier release (or earlier in this one): no need to compress it again.
            p.Id = cachedId;
            state.Distinct.TryAdd(cachedId, 0);
            state.Packer?.Offer(p.Sequence, cachedId, [], append: false);
        }
        else
        {
            var stored = ArrayPool<byte>.Shared.Rent(ChunkCodec.MaxStoredLength(p.Length));
            try
            {
                var length = ChunkCodec.EncodeInto(plaintext, _contentKey, tag, stored, out var id);
                p.Id = id;
                // The first occurrence in this run decides; repeats are neither re-checked nor counted as new.
                var first = state.Distinct.TryAdd(id, 0);
                if (first && state.Put(p.Sequence, id, stored.AsSpan(0, length), _store))
                {
                    Interlocked.Increment(ref state.ChunksNew);
                    Interlocked.Add(ref state.BytesNew, length);
                }
                else if (!first) state.Packer?.Offer(p.Sequence, id, [], append: false);
                state.Cache.Add(tag, id, p.Length);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(stored);
            }
        }
        Interlocked.Increment(ref state.ChunksDone);
        Interlocked.Add(ref state.BytesDone, p.Length);
    }

    /// <summary>The queue between the reading thread and the encode workers, and the first failure of any worker.</summary>
    private sealed class Pipeline(BlockingCollection<PendingChunk> queue, CancellationTokenSource stop)
    {
        private ExceptionDispatchInfo? _failure;

        public ExceptionDispatchInfo? Failure => Volatile.Read(ref _failure);

        /// <summary>A worker: processes queued chunks until the queue completes, the publish is cancelled or any worker fails.</summary>
        public void Work(Action<PendingChunk> process)
        {
            try
            {
                foreach (var p in queue.GetConsumingEnumerable(stop.Token))
                {
                    try { process(p); }
                    finally { p.Release(); }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // Cancelled by the caller or by another worker's failure.
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(ex), null);
                stop.Cancel();
            }
        }
    }

    /// <summary>
    /// The stream files read one after another as one stream (what the chunker cuts), each hashed as it passes; a file
    /// whose length differs from the scan's is refused (the manifest's ranges come from the scanned sizes).
    /// </summary>
    private sealed class SmallFileReader(IReadOnlyList<TreeFile> files, bool[] inStream, Func<string, Stream> open, string[] hashes) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private int _index = -1;
        private Stream? _file;
        private long _read;

        /// <summary>The file being read (progress).</summary>
        public string? Current => _index >= 0 && _index < files.Count ? files[_index].RelativePath : null;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            while (true)
            {
                if (_file is null && !OpenNext()) return 0;
                var n = _file!.Read(buffer);
                if (n > 0)
                {
                    _hash.AppendData(buffer[..n]);
                    _read += n;
                    if (_read > files[_index].Size) throw Changed();
                    return n;
                }
                CloseCurrent();
            }
        }

        /// <summary>Checks that every stream file was read to its end.</summary>
        public void Finish()
        {
            if (_file is not null || _index < files.Count)
                throw new InvalidOperationException("the small-file stream was not read to its end");
        }

        private bool OpenNext()
        {
            _index = Array.FindIndex(inStream, _index + 1, s => s);
            if (_index < 0) { _index = files.Count; return false; }
            try
            {
                _file = open(files[_index].FullPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new InvalidInputException($"File '{files[_index].FullPath}' cannot be read ({ex.Message}): fix its permissions or remove it from the tree.", ex);
            }
            _read = 0;
            return true;
        }

        private void CloseCurrent()
        {
            _file!.Dispose();
            _file = null;
            if (_read != files[_index].Size) throw Changed();
            hashes[_index] = Convert.ToHexStringLower(_hash.GetHashAndReset());
        }

        private InvalidInputException Changed() =>
            new($"File '{files[_index].FullPath}' changed size while it was published: publish from a tree nothing writes to.");

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _file?.Dispose();
                _hash.Dispose();
            }
            base.Dispose(disposing);
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class PendingChunk(byte[] buffer, int length)
    {
        public byte[] Buffer { get; private set; } = buffer;
        public int Length { get; } = length;
        public ChunkId Id { get; set; }
        public string Tag { get; set; } = "";
        public long Sequence { get; init; }

        public void Release()
        {
            if (Buffer.Length == 0) return;
            ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = [];
        }
    }

    private sealed class RunState(long bytesTotal, PublishCache cache, ChunkLocator? locator, PackWriter? packer)
    {
        public readonly PublishCache Cache = cache;
        public readonly PackWriter? Packer = packer;
        public readonly ConcurrentDictionary<ChunkId, byte> Distinct = new();
        public long BytesDone;
        public long ChunksDone;
        public long ChunksQueued; // reader thread only
        public long ChunksNew;
        public long BytesNew;

        /// <summary>True when the store holds the chunk where this publish's devices can fetch it (any pack, with packs; an object, without).</summary>
        public bool Has(ChunkId id, IContentStore store) => locator?.Contains(id) ?? store.ChunkExists(id);

        /// <summary>Stores a chunk unless held; true when written now (appended to a pack, with packs).</summary>
        public bool Put(long sequence, ChunkId id, ReadOnlySpan<byte> stored, IContentStore store)
        {
            if (Packer is null) return store.PutChunkIfAbsent(id, stored);
            var append = !locator!.Contains(id);
            Packer.Offer(sequence, id, stored, append);
            return append;
        }

        public PublishProgress Snapshot(string? file) =>
            new(Interlocked.Read(ref BytesDone), bytesTotal, Interlocked.Read(ref ChunksDone), Interlocked.Read(ref ChunksNew), file);
    }
}
