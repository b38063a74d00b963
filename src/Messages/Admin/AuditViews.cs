namespace Orchestrator.Messages.Admin;

/// <summary>One changing admin request, as the audit trail keeps it.</summary>
/// <param name="Sequence">Position in the trail (increasing).</param>
/// <param name="TimeUtc">When the node answered it.</param>
/// <param name="Token">Name of the admin token that made it (the authenticated identity; never what a caller typed).</param>
/// <param name="Action">Method and route, e.g. <c>POST rollouts/{rolloutId}/pause</c>.</param>
/// <param name="Target">The route's values, e.g. <c>rolloutId=ro-7</c>; null for routes without any.</param>
/// <param name="Reason">The request body's <c>reason</c>, when it gave one.</param>
/// <param name="Status">HTTP status of the answer (403: the token lacked the scope).</param>
public sealed record AuditEntry(long Sequence, DateTimeOffset TimeUtc, string Token, string Action, string? Target, string? Reason, int Status);

/// <summary>Answer of <c>GET /admin/v1/audit</c>, newest first.</summary>
/// <param name="Entries">The entries.</param>
public sealed record AuditList(IReadOnlyList<AuditEntry> Entries);
