using System.Security.Cryptography;
using System.Text;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Auth;

/// <summary>Admin API scopes.</summary>
public static class AdminScopes
{
    /// <summary>Read state (GET routes).</summary>
    public const string Read = "read";
    /// <summary>Change state (provision, revoke, rollouts).</summary>
    public const string Operate = "operate";
}

/// <summary>Outcome of checking a presented admin token.</summary>
/// <param name="Name">The matching token's name, when one matched.</param>
/// <param name="Scopes">Its scopes, when it is usable.</param>
/// <param name="Error">Null when usable; else <c>token_invalid</c>, <c>token_expired</c> or <c>token_revoked</c>.</param>
/// <param name="Message">What was wrong, for the error body.</param>
public readonly record struct AdminTokenCheck(string? Name, IReadOnlySet<string>? Scopes, string? Error, string? Message);

/// <summary>
/// Bearer tokens of the admin API: the configured ones (or the bootstrap token) and those made by
/// <c>orch token create</c>, which live in the node database (<see cref="AdminTokenStore"/>) together with the
/// revocations of configured ones. The database rows are held as a snapshot that <see cref="AdminTokenRefresher"/>
/// reloads every <see cref="RefreshInterval"/> and every change on this node replaces at once, so a token created or
/// revoked on another node takes effect here within that interval. Only SHA-256 hashes are held; a presented token is
/// hashed and compared in constant time against every entry (so timing does not reveal which entry matched).
/// </summary>
public sealed class AdminTokens
{
    /// <summary>How often the database rows are reloaded.</summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(5);

    private readonly List<(string Name, byte[] Hash, HashSet<string> Scopes)> _tokens;
    private volatile IReadOnlyList<(AdminTokenRecord Record, byte[] Hash, HashSet<string> Scopes)> _records = [];

    /// <summary>Builds the token set from configuration; see <see cref="LoadOrBootstrap"/>.</summary>
    public AdminTokens(IEnumerable<(string Name, byte[] Sha256, IEnumerable<string> Scopes)> tokens)
    {
        _tokens = tokens.Select(t => (t.Name, t.Sha256, new HashSet<string>(t.Scopes, StringComparer.Ordinal))).ToList();
    }

    /// <summary>Replaces the snapshot of the database rows.</summary>
    public void Refresh(IReadOnlyList<AdminTokenRecord> records) =>
        _records = records.Select(r => (r, Convert.FromHexString(r.Sha256), new HashSet<string>(r.Scopes, StringComparer.Ordinal))).ToList();

    /// <summary>True when <paramref name="name"/> is a configured (or the bootstrap) token.</summary>
    public bool IsConfigured(string name) => _tokens.Any(t => t.Name == name);

    /// <summary>The configured token named <paramref name="name"/>: its hash (hex) and scopes; null when none.</summary>
    public (string Sha256, IReadOnlyList<string> Scopes)? Configured(string name) =>
        _tokens.Where(t => t.Name == name).Select(t => ((string Sha256, IReadOnlyList<string> Scopes)?)(Convert.ToHexStringLower(t.Hash), t.Scopes.Order().ToList())).FirstOrDefault();

    /// <summary>Every token, configured ones first, as listed by the admin API (never a token or a hash).</summary>
    public IReadOnlyList<Orchestrator.Messages.Admin.AdminTokenView> List(DateTimeOffset now)
    {
        var records = _records;
        var views = new List<Orchestrator.Messages.Admin.AdminTokenView>();
        foreach (var t in _tokens)
        {
            var revoked = records.FirstOrDefault(r => r.Record.Configured && r.Record.Name == t.Name && r.Hash.AsSpan().SequenceEqual(t.Hash)).Record?.RevokedUtc;
            views.Add(new(t.Name, t.Scopes.Order().ToList(), BootstrapFile is null ? "configured" : "bootstrap", revoked is null ? "active" : "revoked", null, null, revoked));
        }
        foreach (var (r, _, _) in records.Where(r => !r.Record.Configured))
            views.Add(new(r.Name, r.Scopes, "created", Status(r, now), r.CreatedUtc, r.ExpiresUtc, r.RevokedUtc));
        return views;
    }

    private static string Status(AdminTokenRecord r, DateTimeOffset now) =>
        r.RevokedUtc is not null ? "revoked" : r.ExpiresUtc is { } e && e <= now ? "expired" : "active";

    /// <summary>Checks a presented token at <paramref name="now"/>.</summary>
    public AdminTokenCheck Check(string presentedToken, DateTimeOffset now)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presentedToken));
        (string Name, HashSet<string> Scopes)? configured = null;
        foreach (var t in _tokens)
            if (CryptographicOperations.FixedTimeEquals(hash, t.Hash)) configured = (t.Name, t.Scopes);
        (AdminTokenRecord Record, HashSet<string> Scopes)? row = null;
        foreach (var r in _records)
            if (CryptographicOperations.FixedTimeEquals(hash, r.Hash) && (configured is null || r.Record.Configured)) row = (r.Record, r.Scopes);
        if (configured is { } c)
            return row is { Record.RevokedUtc: { } at }
                ? new(c.Name, null, "token_revoked", $"The admin token '{c.Name}' was revoked at {at:O}; use another token (orch token create makes one).")
                : new(c.Name, c.Scopes, null, null);
        if (row is not { } found) return new(null, null, "token_invalid", "The admin token is not recognised.");
        if (found.Record.RevokedUtc is { } revokedAt)
            return new(found.Record.Name, null, "token_revoked", $"The admin token '{found.Record.Name}' was revoked at {revokedAt:O}; use another token (orch token create makes one).");
        if (found.Record.ExpiresUtc is { } expires && expires <= now)
            return new(found.Record.Name, null, "token_expired", $"The admin token '{found.Record.Name}' expired at {expires:O}; create a new one with orch token create.");
        return new(found.Record.Name, found.Scopes, null, null);
    }

    /// <summary>
    /// Tokens from <see cref="AdminOptions.Tokens"/>; when none are configured, a bootstrap token with every scope is
    /// read from (or created in) the bootstrap file under the data directory, so a fresh single node is usable.
    /// </summary>
    public static AdminTokens LoadOrBootstrap(AdminOptions options, string dataDirectory)
    {
        if (options.Tokens.Count > 0)
        {
            return new AdminTokens(options.Tokens.Select(t => (t.Name, Convert.FromHexString(t.Sha256), (IEnumerable<string>)t.Scopes)));
        }
        Directory.CreateDirectory(dataDirectory);
        var path = Path.GetFullPath(Path.Combine(dataDirectory, options.BootstrapTokenFile));
        string token;
        if (File.Exists(path))
        {
            token = File.ReadAllText(path).Trim();
            if (token.Length < 32) throw new InvalidOperationException($"Admin bootstrap token file {path} holds fewer than 32 characters; delete it to have a new token generated.");
        }
        else
        {
            token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            var temp = path + ".tmp";
            var fileOptions = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
            // Only the node's user may read the token.
            if (!OperatingSystem.IsWindows()) fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var fs = new FileStream(temp, fileOptions))
            {
                fs.Write(Encoding.UTF8.GetBytes(token + "\n"));
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: false);
        }
        return new AdminTokens([("bootstrap", SHA256.HashData(Encoding.UTF8.GetBytes(token)), [AdminScopes.Read, AdminScopes.Operate])])
        {
            BootstrapFile = path,
        };
    }

    /// <summary>Path of the bootstrap token file when no tokens are configured; null otherwise.</summary>
    public string? BootstrapFile { get; private init; }

    /// <summary>The scopes of the presented token, or null when it matches no usable entry.</summary>
    public IReadOnlySet<string>? Authenticate(string presentedToken) => Check(presentedToken, DateTimeOffset.UtcNow).Scopes;
}
