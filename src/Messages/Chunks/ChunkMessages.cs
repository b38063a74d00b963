namespace Orchestrator.Messages.Chunks;

// Messages of the sharded chunk store (role "chunks"). They cross the network when the gateway and the chunk
// shard live on different nodes, so they are explicit, versioned records with their own serializer
// (ChunkMessageSerializer). Chunk ids are SHA-256 of the stored bytes, 64 lower-case hex characters.

/// <summary>Any message routed to a chunk-store shard; <see cref="ChunkId"/> picks the shard.</summary>
public interface IChunkStoreCommand
{
    /// <summary>The chunk this command is about (64 lower-case hex characters).</summary>
    string ChunkId { get; }
}

/// <summary>Asks for a chunk's bytes. Answered with <see cref="ChunkFound"/> or <see cref="ChunkNotFound"/>.</summary>
public sealed record GetChunk(string ChunkId) : IChunkStoreCommand;

/// <summary>The chunk's stored (encrypted) bytes.</summary>
public sealed record ChunkFound(string ChunkId, byte[] Data);

/// <summary>No chunk with that id is stored.</summary>
public sealed record ChunkNotFound(string ChunkId);

/// <summary>Stores a chunk unless present (dedup). Answered with <see cref="ChunkStored"/> or <see cref="ChunkRejected"/>.</summary>
public sealed record PutChunk(string ChunkId, byte[] Data) : IChunkStoreCommand;

/// <summary>The chunk is durably stored; <see cref="AlreadyPresent"/> is true when the put was deduplicated.</summary>
public sealed record ChunkStored(string ChunkId, bool AlreadyPresent);

/// <summary>A put was refused (for example the bytes do not hash to the id); nothing was stored.</summary>
public sealed record ChunkRejected(string ChunkId, string Reason);

/// <summary>Backend failure while serving a command; the caller may retry.</summary>
public sealed record ChunkStoreFailed(string ChunkId, string Reason);
