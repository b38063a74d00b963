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

/// <summary>
/// Bearer tokens of the admin API. Only SHA-256 hashes are held; a presented token is hashed and compared in
/// constant time against every entry (so timing does not reveal which entry matched).
/// </summary>
public sealed class AdminTokens
{
    private readonly List<(string Name, byte[] Hash, HashSet<string> Scopes)> _tokens;

    /// <summary>Builds the token set from configuration; see <see cref="LoadOrBootstrap"/>.</summary>
    public AdminTokens(IEnumerable<(string Name, byte[] Sha256, IEnumerable<string> Scopes)> tokens)
    {
        _tokens = tokens.Select(t => (t.Name, t.Sha256, new HashSet<string>(t.Scopes, StringComparer.Ordinal))).ToList();
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

    /// <summary>The scopes of the presented token, or null when it matches no entry.</summary>
    public IReadOnlySet<string>? Authenticate(string presentedToken)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presentedToken));
        IReadOnlySet<string>? found = null;
        foreach (var t in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, t.Hash)) found = t.Scopes;
        }
        return found;
    }
}
