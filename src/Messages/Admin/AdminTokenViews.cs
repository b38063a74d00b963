namespace Orchestrator.Messages.Admin;

/// <summary>Body of <c>POST /admin/v1/tokens</c>.</summary>
/// <param name="Name">Unique token name: 1-64 of letters, digits, '.', '_', '-'.</param>
/// <param name="Scopes"><c>read</c> and/or <c>operate</c>.</param>
/// <param name="ExpiresInSeconds">Lifetime from now; null: the default (90 days); 0: never expires.</param>
public sealed record AdminTokenCreateRequest(string Name, IReadOnlyList<string> Scopes, long? ExpiresInSeconds = null);

/// <summary>Answer of token creation: the only time the token itself is shown.</summary>
/// <param name="Name">Token name.</param>
/// <param name="Token">The bearer token.</param>
/// <param name="Scopes">Its scopes.</param>
/// <param name="CreatedUtc">When it was created.</param>
/// <param name="ExpiresUtc">When it stops working; null: never.</param>
public sealed record AdminTokenCreated(string Name, string Token, IReadOnlyList<string> Scopes, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc);

/// <summary>One admin token as <c>orch token list</c> shows it (never the token or its hash).</summary>
/// <param name="Name">Token name.</param>
/// <param name="Scopes">Its scopes.</param>
/// <param name="Source"><c>created</c> (orch token create), <c>configured</c> (Admin:Tokens) or <c>bootstrap</c>.</param>
/// <param name="Status"><c>active</c>, <c>expired</c> or <c>revoked</c>.</param>
/// <param name="CreatedUtc">When it was created (null for configured and bootstrap tokens).</param>
/// <param name="ExpiresUtc">When it stops working; null: never.</param>
/// <param name="RevokedUtc">When it was revoked; null: not revoked.</param>
public sealed record AdminTokenView(string Name, IReadOnlyList<string> Scopes, string Source, string Status, DateTimeOffset? CreatedUtc,
    DateTimeOffset? ExpiresUtc, DateTimeOffset? RevokedUtc);

/// <summary>Answer of <c>GET /admin/v1/tokens</c>.</summary>
/// <param name="Tokens">Every token the node knows, configured first, then created ones by name.</param>
public sealed record AdminTokenList(IReadOnlyList<AdminTokenView> Tokens);
