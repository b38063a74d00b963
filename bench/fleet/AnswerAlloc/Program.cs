// Main's code for the parts sessions 17 and 18 rewrote (the directive envelope and answer JSON, the Authorization parse
// and HMAC, the channel folder stat; the idle directive's payload, the fast path's fold state, the CheckIn command's
// closure, the async frames above the signature's wait), copied here, beside the node's current code: bytes allocated
// per idle check-in (GC.GetAllocatedBytesForCurrentThread) and the best of five timings, on one thread.
using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Messages.Protocol;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Trust;

// Bytes allocated and time per idle check-in for the parts this branch rewrote: the old code (as on main) beside the new.
const int Batch = 11;
using var key = ReleaseSigningKey.Generate();
var keyId = TrustKeyIds.Of(key.PublicKey);
var now = DateTimeOffset.UtcNow;
var payloads = Enumerable.Range(0, Batch).Select(i => new Directive(1, "directive", $"dev-{i:D6}", "acme", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), now, now.AddMinutes(10),
    UpdateAction.None, null, null, null, null, null, 3, null, null).ToPayload()).ToArray();
var (root, paths) = DirectiveBatch.Build(payloads.Select(p => DirectiveBatch.LeafHash(p)).ToList());
var sig = key.Sign(DirectiveBatch.SignedMessage(root, Batch));
var idle = new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null, null, false, null, null);
var buffer = new ArrayBufferWriter<byte>(4096);
var writer = new Utf8JsonWriter(buffer);

// main: per batch the signature and root as base64 strings; per directive its payload and path as base64 strings, the
// envelope as a JSON string, the answer serialized by the generated metadata with that string (explicit nulls).
var oldInfo = OldContext();
void OldBatch()
{
    var signature = new EnvelopeSignature(keyId, Convert.ToBase64String(sig));
    var rootText = Convert.ToBase64String(root);
    for (var i = 0; i < Batch; i++)
    {
        var path = new string[paths[i].Count];
        for (var j = 0; j < path.Length; j++) path[j] = Convert.ToBase64String(paths[i][j]);
        var env = new SignedEnvelope(Convert.ToBase64String(payloads[i]), [signature], new BatchInclusion(Batch, i, rootText, path)).ToJson();
        buffer.ResetWrittenCount(); writer.Reset(buffer);
        JsonSerializer.Serialize(writer, idle with { Directive = env }, oldInfo);
        writer.Flush();
    }
}
void NewBatch()
{
    for (var i = 0; i < Batch; i++)
    {
        buffer.ResetWrittenCount(); writer.Reset(buffer);
        CheckInAnswerWriter.Write(writer, new CheckInAnswer(idle, new SignedDirective(payloads[i], keyId, sig, paths[i], Batch, i, root)));
        writer.Flush();
    }
}
OldBatch(); NewBatch();
var newDirective = new SignedDirective(payloads[3], keyId, sig, paths[3], Batch, 3, root);
var newEnv = newDirective.ToBytes();
buffer.ResetWrittenCount(); writer.Reset(buffer); CheckInAnswerWriter.Write(writer, new CheckInAnswer(idle, newDirective)); writer.Flush();
var newBody = buffer.WrittenCount;
buffer.ResetWrittenCount(); writer.Reset(buffer); JsonSerializer.Serialize(writer, idle with { Directive = Encoding.UTF8.GetString(newEnv) }, oldInfo); writer.Flush();
Console.WriteLine($"idle answer body: main {buffer.WrittenCount} bytes, branch {newBody} bytes (batch of {Batch}, leaf 3)");
Measure("answer: directive envelope + answer JSON (per check-in, batch of 11)", OldBatch, NewBatch, Batch);

// Authorization: parse the header's parameters and verify the HMAC.
var requestKey = DeviceRequestSignature.DeriveRequestKey("s3cret");
var body = "{\"product\":\"acme\",\"installedVersionId\":1,\"inventoryDigest\":\"d\"}"u8.ToArray();
var bodyHash = DeviceRequestSignature.BodyHash(body);
const string path0 = "/v1/devices/dev-000042/check-in";
var header = DeviceRequestSignature.Scheme + " " + DeviceRequestSignature.Sign(requestKey, "POST", path0, "dev-000042", 123456, now.ToUnixTimeSeconds(), body);
void OldAuth()
{
    var (scheme, parameter) = OldSplit(header);
    if (!string.Equals(scheme, DeviceRequestSignature.Scheme, StringComparison.OrdinalIgnoreCase)) throw new InvalidOperationException("the measured code failed");
    if (!OldParse(parameter, out var auth, out _)) throw new InvalidOperationException("the measured code failed");
    var expected = HMACSHA256.HashData(requestKey, Encoding.UTF8.GetBytes(string.Join('\n', DeviceRequestSignature.CanonicalPrefix, "POST".ToUpperInvariant(), path0, auth.DeviceId,
        auth.Sequence.ToString(CultureInfo.InvariantCulture), auth.Timestamp.ToString(CultureInfo.InvariantCulture), bodyHash)));
    var b = auth.Signature.Replace('-', '+').Replace('_', '/');
    b += (b.Length % 4) switch { 2 => "==", 3 => "=", _ => "" };
    if (!CryptographicOperations.FixedTimeEquals(expected, Convert.FromBase64String(b))) throw new InvalidOperationException("the measured code failed");
}
void NewAuth()
{
    var text = header.AsSpan().Trim();
    var gap = text.IndexOfAny(' ', '\t');
    var scheme = text[..gap];
    var parameter = text[(gap + 1)..].Trim();
    if (!scheme.Equals(DeviceRequestSignature.Scheme, StringComparison.OrdinalIgnoreCase)) throw new InvalidOperationException("the measured code failed");
    if (!DeviceRequestSignature.TryParse(parameter, out var auth, out _)) throw new InvalidOperationException("the measured code failed");
    if (!DeviceRequestSignature.Verify(requestKey, auth, "POST", path0, bodyHash)) throw new InvalidOperationException("the measured code failed");
}
OldAuth(); NewAuth();
Measure("authorization: split, parse, canonical HMAC, signature decode (per check-in)", OldAuth, NewAuth, 1);

// The channel folder: main stats it on every check-in; the branch looks at most once a second (a dictionary read and a timestamp).
var storeRoot = Directory.CreateTempSubdirectory("s17a-store").FullName;
Directory.CreateDirectory(Path.Combine(storeRoot, "channels", "acme"));
var examined = new System.Collections.Concurrent.ConcurrentDictionary<string, (DateTime Stamp, long LookedAt)>(StringComparer.Ordinal);
examined["acme"] = (DateTime.UtcNow, Stopwatch.GetTimestamp());
var stampSeen = new DirectoryInfo(Path.Combine(storeRoot, "channels", "acme")).LastWriteTimeUtc;
void OldChannels()
{
    var dir = new DirectoryInfo(Path.GetFullPath(Path.Combine(storeRoot, $"channels/{"acme"}")));
    if (!dir.Exists || dir.LastWriteTimeUtc != stampSeen) throw new InvalidOperationException("the measured code failed");
}
void NewChannels()
{
    if (!examined.TryGetValue("acme", out var seen) || Stopwatch.GetElapsedTime(seen.LookedAt) >= TimeSpan.FromSeconds(100)) throw new InvalidOperationException("the measured code failed");
}
Measure("channel folder look (per check-in)", OldChannels, NewChannels, 1);
Directory.Delete(storeRoot, recursive: true);

// Session 18: work only the node does per idle check-in (the bare endpoint has none of it), main's form beside the node's.
// The idle directive's payload: the Directive record through its generated serializer, or written straight as UTF-8.
var nonce0 = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
void OldPayload()
{
    var d = new Directive(1, "directive", "dev-000042", "acme", nonce0, now, now.AddMinutes(10), UpdateAction.None, null, null, null, null, null, 3, null, null);
    if (d.ToPayload().Length < 100) throw new InvalidOperationException("the measured code failed");
}
void NewPayload()
{
    if (IdleDirectivePayload.Write("dev-000042", "acme", nonce0, now, now.AddMinutes(10), 3).Length < 100) throw new InvalidOperationException("the measured code failed");
}
OldPayload(); NewPayload();
Measure("idle directive payload (per check-in)", OldPayload, NewPayload, 1);

// The fast path's decision: the row's state built, then copied with the check-in's digest and sequence (main), or built
// once with them (branch); the same rule (IdleCheckIn.Answer) decides.
var digest0 = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
IReadOnlyList<string> noTags = [];
var seen0 = now.AddMinutes(-3);
CheckIn Command() => new("dev-000042", "acme", 7, digest0, digest0, "1.0", "manifests/acme/1.0.json", [], "bench-1.0", now, 1000, [], false, null);
var command0 = Command();
DeviceState Fold(string? digest, long sequence) => new("dev-000042", Orchestrator.Messages.Devices.DeviceStatus.Idle, "acme", noTags, 7, digest, "bench-1.0", null, null,
    null, 0, null, null, seen0, 0, sequence, 7, false, null, null, null, null);
void OldDecide()
{
    var state = Fold(null, 5) with { InventoryDigest = digest0, LastRequestSequence = Math.Max(5, 6) };
    if (IdleCheckIn.Answer(state, command0, TimeSpan.FromHours(1)) is null) throw new InvalidOperationException("the measured code failed");
}
void NewDecide()
{
    if (IdleCheckIn.Answer(Fold(digest0, Math.Max(5, 6)), command0, TimeSpan.FromHours(1)) is null) throw new InvalidOperationException("the measured code failed");
}
OldDecide(); NewDecide();
Measure("fast path decision: fold state + IdleCheckIn.Answer (per check-in)", OldDecide, NewDecide, 1);

// The CheckIn command: built through a closure (main's Build(() => new CheckIn(...))) or directly.
static T Build<T>(Func<T> create) => create();
void OldCommand() { if (Build(() => Command()).DeviceId.Length == 0) throw new InvalidOperationException("the measured code failed"); }
void NewCommand() { if (Command().DeviceId.Length == 0) throw new InvalidOperationException("the measured code failed"); }
Measure("CheckIn command (per check-in)", OldCommand, NewCommand, 1);

// The async frames above the batch signature's wait: main awaited it through the endpoint, ForwardAsync, its lambda,
// the gateway, RespondAsync and DirectorSigner.SignAsync (six frames); the branch through the endpoint and the gateway
// (two). Every frame above a wait that completes later is a state machine on the heap; measured with a wait that
// completes on another thread (the process's allocations, one check-in at a time).
Console.WriteLine(AsyncFrames.Measure());

static void Measure(string what, Action old, Action @new, int perCall)
{
    for (var w = 0; w < 2000; w++) { old(); @new(); }
    const int n = 20000;
    double Bytes(Action a) { var b0 = GC.GetAllocatedBytesForCurrentThread(); for (var i = 0; i < n; i++) a(); return (GC.GetAllocatedBytesForCurrentThread() - b0) / (double)n / perCall; }
    double Micros(Action a) { var best = double.MaxValue; for (var r = 0; r < 5; r++) { var sw = Stopwatch.StartNew(); for (var i = 0; i < n; i++) a(); best = Math.Min(best, sw.Elapsed.TotalMicroseconds / n / perCall); } return best; }
    Console.WriteLine($"{what}: main {Bytes(old):0} B, {Micros(old):0.00} us; branch {Bytes(@new):0} B, {Micros(@new):0.00} us (best of 5 x {n})");
}

static System.Text.Json.Serialization.Metadata.JsonTypeInfo<CheckInResponse> OldContext()
{
    // main's answer: the generated metadata with every field written, nulls included (as before WhenWritingNull).
    var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.WithAddedModifier(ProtocolJsonContext.Default,
            t => { foreach (var p in t.Properties) p.ShouldSerialize = null; }),
    };
    return (System.Text.Json.Serialization.Metadata.JsonTypeInfo<CheckInResponse>)o.GetTypeInfo(typeof(CheckInResponse));
}

static (string, string) OldSplit(string header)
{
    var text = header.AsSpan().Trim();
    var gap = text.IndexOfAny(' ', '\t');
    var name = text[..gap];
    var rest = text[(gap + 1)..].Trim();
    return (name.Equals(DeviceRequestSignature.Scheme, StringComparison.Ordinal) ? DeviceRequestSignature.Scheme : name.ToString(), rest.ToString());
}

static bool OldParse(string parameter, out DeviceRequestAuthorization auth, out string error)
{
    auth = default;
    string? device = null, seq = null, ts = null, sig = null;
    foreach (var raw in parameter.Split(','))
    {
        var part = raw.Trim();
        var eq = part.IndexOf('=');
        if (eq <= 0) { error = "x"; return false; }
        var name = part[..eq];
        var value = part[(eq + 1)..];
        ref string? slot = ref device;
        switch (name)
        {
            case "device": slot = ref device; break;
            case "seq": slot = ref seq; break;
            case "ts": slot = ref ts; break;
            case "sig": slot = ref sig; break;
            default: error = "x"; return false;
        }
        if (slot is not null) { error = "x"; return false; }
        slot = value;
    }
    if (device is null || seq is null || ts is null || sig is null) { error = "x"; return false; }
    if (!long.TryParse(seq, NumberStyles.None, CultureInfo.InvariantCulture, out var s) || s < 1) { error = "x"; return false; }
    if (!long.TryParse(ts, NumberStyles.None, CultureInfo.InvariantCulture, out var t) || t < 1) { error = "x"; return false; }
    auth = new DeviceRequestAuthorization(device, s, t, sig);
    error = "";
    return true;
}

static class AsyncFrames
{
    // Completes each wait on a thread-pool thread, as the batcher's leader completes the followers' waits.
    private static async ValueTask<byte[]> Leaf() { await Task.Yield(); return Payload; }
    private static readonly byte[] Payload = new byte[8];
    private static async ValueTask<byte[]> Frame1() => await Leaf().ConfigureAwait(false);
    private static async ValueTask<byte[]> Frame2() => await Frame1().ConfigureAwait(false);
    private static async Task<byte[]> Frame3() => await Frame2().ConfigureAwait(false);
    private static async Task<byte[]> Frame4(Func<Task<byte[]>> call) => await call().ConfigureAwait(false);
    private static async Task<byte[]> OldChain() => await Frame4(async () => await Frame3().ConfigureAwait(false)).ConfigureAwait(false);
    private static async Task<byte[]> NewGateway() => await Leaf().ConfigureAwait(false);
    private static async Task<byte[]> NewChain() => await NewGateway().ConfigureAwait(false);

    public static string Measure()
    {
        const int n = 20000;
        double Bytes(Func<Task<byte[]>> chain)
        {
            for (var i = 0; i < 2000; i++) chain().GetAwaiter().GetResult();
            var b0 = GC.GetTotalAllocatedBytes(precise: true);
            for (var i = 0; i < n; i++) chain().GetAwaiter().GetResult();
            return (GC.GetTotalAllocatedBytes(precise: true) - b0) / (double)n;
        }
        return $"async frames above the signature's wait (per check-in): main {Bytes(OldChain):0} B, branch {Bytes(NewChain):0} B (process allocations, {n} sequential)";
    }
}
