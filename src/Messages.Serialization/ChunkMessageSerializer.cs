using System.Runtime.Serialization;
using System.Text;
using Akka.Actor;
using Akka.Serialization;

namespace Orchestrator.Messages.Chunks;

/// <summary>
/// Binary serializer for the chunk-store messages. Each message has a versioned manifest (".v1"); a new field
/// means a new manifest, so nodes of different versions never misread each other.
/// </summary>
public sealed class ChunkMessageSerializer : SerializerWithStringManifest
{
    /// <summary>Serializer identifier registered in HOCON; unique among this project's serializers.</summary>
    public const int Id = 4101;

    private const string GetManifest = "GetChunk.v1";
    private const string FoundManifest = "ChunkFound.v1";
    private const string NotFoundManifest = "ChunkNotFound.v1";
    private const string PutManifest = "PutChunk.v1";
    private const string StoredManifest = "ChunkStored.v1";
    private const string RejectedManifest = "ChunkRejected.v1";
    private const string FailedManifest = "ChunkStoreFailed.v1";

    /// <summary>Created by Akka from HOCON.</summary>
    public ChunkMessageSerializer(ExtendedActorSystem system) : base(system) { }

    /// <inheritdoc />
    public override int Identifier => Id;

    /// <inheritdoc />
    public override string Manifest(object o) => o switch
    {
        GetChunk => GetManifest,
        ChunkFound => FoundManifest,
        ChunkNotFound => NotFoundManifest,
        PutChunk => PutManifest,
        ChunkStored => StoredManifest,
        ChunkRejected => RejectedManifest,
        ChunkStoreFailed => FailedManifest,
        _ => throw new ArgumentException($"ChunkMessageSerializer cannot serialize {o.GetType()}", nameof(o)),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            switch (obj)
            {
                case GetChunk m: w.Write(m.ChunkId); break;
                case ChunkFound m: w.Write(m.ChunkId); w.Write(m.Data.Length); w.Write(m.Data); break;
                case ChunkNotFound m: w.Write(m.ChunkId); break;
                case PutChunk m: w.Write(m.ChunkId); w.Write(m.Data.Length); w.Write(m.Data); break;
                case ChunkStored m: w.Write(m.ChunkId); w.Write(m.AlreadyPresent); break;
                case ChunkRejected m: w.Write(m.ChunkId); w.Write(m.Reason); break;
                case ChunkStoreFailed m: w.Write(m.ChunkId); w.Write(m.Reason); break;
                default: throw new ArgumentException($"ChunkMessageSerializer cannot serialize {obj.GetType()}", nameof(obj));
            }
        }
        return ms.ToArray();
    }

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        return manifest switch
        {
            GetManifest => new GetChunk(r.ReadString()),
            FoundManifest => new ChunkFound(r.ReadString(), ReadBytes(r)),
            NotFoundManifest => new ChunkNotFound(r.ReadString()),
            PutManifest => new PutChunk(r.ReadString(), ReadBytes(r)),
            StoredManifest => new ChunkStored(r.ReadString(), r.ReadBoolean()),
            RejectedManifest => new ChunkRejected(r.ReadString(), r.ReadString()),
            FailedManifest => new ChunkStoreFailed(r.ReadString(), r.ReadString()),
            _ => throw new SerializationException($"Unknown chunk message manifest '{manifest}'; this node is older than the sender."),
        };
    }

    private static byte[] ReadBytes(BinaryReader r)
    {
        var length = r.ReadInt32();
        var data = r.ReadBytes(length);
        if (data.Length != length) throw new SerializationException($"Truncated chunk message: expected {length} bytes, got {data.Length}.");
        return data;
    }
}
