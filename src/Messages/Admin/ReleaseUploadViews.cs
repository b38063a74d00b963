namespace Orchestrator.Messages.Admin;

// Release upload over the admin API (`orch release publish --server`): the node verifies a locally signed release,
// names the chunk objects it lacks, takes them one by one (each checked against its id), and publishes the release
// only when every object is present. JSON over HTTP, never persisted.

/// <summary>
/// Body of <c>POST /admin/v1/releases/{product}/{version}/upload</c> (the plan) and <c>.../commit</c> (the publish).
/// </summary>
/// <param name="Manifest">The canonical manifest bytes, base64.</param>
/// <param name="Signature">The manifest's 64-byte release signature, base64.</param>
/// <param name="Roots">
/// Root documents the publisher holds (base64 signed envelopes, any order). The node keeps those that extend its own
/// chain (version N+1 signed by N); a node without any takes version 1 from an operate-scope caller.
/// </param>
public sealed record ReleaseUploadRequest(string Manifest, string Signature, IReadOnlyList<string>? Roots = null);

/// <summary>Answer of the upload plan: what the node still needs before the release can be committed.</summary>
/// <param name="Product">Product of the manifest.</param>
/// <param name="Version">Version of the manifest.</param>
/// <param name="VersionId">Version ID of the manifest.</param>
/// <param name="Chunks">Distinct chunk objects the manifest refers to.</param>
/// <param name="Missing">Ids of the chunk objects the node lacks (upload each with <c>PUT /admin/v1/chunks/{chunkId}</c>).</param>
/// <param name="AlreadyPublished">True when this exact manifest is already published: nothing to upload or commit.</param>
public sealed record ReleaseUploadPlan(string Product, string Version, long VersionId, int Chunks, IReadOnlyList<string> Missing, bool AlreadyPublished);

/// <summary>Answer of the commit: the release is visible (listed, servable, assignable).</summary>
/// <param name="Product">Product.</param>
/// <param name="Version">Version.</param>
/// <param name="VersionId">Version ID.</param>
/// <param name="ManifestPath">Store path of the manifest.</param>
/// <param name="Chunks">Distinct chunk objects of the release (all present).</param>
/// <param name="RootsAdded">Root document versions the node added to its store.</param>
/// <param name="AlreadyPublished">True when this exact manifest was already published (an idempotent repeat).</param>
public sealed record ReleaseCommitted(string Product, string Version, long VersionId, string ManifestPath, int Chunks,
    IReadOnlyList<long> RootsAdded, bool AlreadyPublished);
