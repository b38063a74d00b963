using System.Text;

namespace Orchestrator.ChunkStore.Validation;

/// <summary>
/// Rules for the relative paths and symlink targets a manifest may carry (docs/store-format.md). These are what
/// keep a signed manifest from writing outside the install directory on a device, so the agent and the
/// publisher share this one implementation.
/// </summary>
public static class TreePaths
{
    /// <summary>Maximum UTF-8 length of a whole relative path.</summary>
    public const int MaxPathBytes = 1024;

    /// <summary>Maximum UTF-8 length of one path segment.</summary>
    public const int MaxSegmentBytes = 255;

    /// <summary>Returns null when <paramref name="path"/> is a valid relative path, else the reason it is not.</summary>
    public static string? ProblemWithPath(string? path)
    {
        if (string.IsNullOrEmpty(path)) return "it is empty";
        if (!IsWellFormedUnicode(path)) return "it is not valid Unicode";
        if (Encoding.UTF8.GetByteCount(path) > MaxPathBytes) return $"it is longer than {MaxPathBytes} UTF-8 bytes";
        if (path[0] == '/') return "it is absolute (starts with '/'); paths are relative to the tree root";
        if (path.Contains('\\')) return "it contains '\\'; use '/' as the only separator";
        foreach (var c in path)
            if (char.IsControl(c)) return "it contains a control character";
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0) return "it has an empty segment ('//' or a trailing '/')";
            if (segment is "." or "..") return $"it has a '{segment}' segment, which could escape the tree";
            if (Encoding.UTF8.GetByteCount(segment) > MaxSegmentBytes) return $"a segment is longer than {MaxSegmentBytes} UTF-8 bytes";
        }
        return null;
    }

    /// <summary>Throws <see cref="InvalidInputException"/> unless <paramref name="path"/> is a valid relative path.</summary>
    public static void RequirePath(string? path, string what)
    {
        var problem = ProblemWithPath(path);
        if (problem is not null)
            throw new InvalidInputException($"{what} '{path}' is not allowed: {problem}.");
    }

    /// <summary>
    /// Returns null when a symlink at <paramref name="linkPath"/> may point to <paramref name="target"/>: relative,
    /// and inside the tree when resolved lexically from the link's directory. Else the reason.
    /// </summary>
    public static string? ProblemWithSymlinkTarget(string linkPath, string? target)
    {
        if (string.IsNullOrEmpty(target)) return "the target is empty";
        if (!IsWellFormedUnicode(target)) return "the target is not valid Unicode";
        if (Encoding.UTF8.GetByteCount(target) > MaxPathBytes) return $"the target is longer than {MaxPathBytes} UTF-8 bytes";
        if (target[0] == '/') return "the target is absolute; only relative targets inside the tree are allowed";
        if (target.Contains('\\')) return "the target contains '\\'";
        foreach (var c in target)
            if (char.IsControl(c)) return "the target contains a control character";
        // Depth of the link's directory below the root, then walk the target's segments.
        var depth = linkPath.Count(c => c == '/');
        foreach (var segment in target.Split('/'))
        {
            if (segment.Length == 0 || segment == ".") continue;
            if (segment == "..")
            {
                depth--;
                if (depth < 0) return "the target points outside the tree";
            }
            else depth++;
        }
        return null;
    }

    /// <summary>
    /// Checks that the set of paths is unique and that no path is a directory prefix of another (a file
    /// <c>a</c> and a file <c>a/b</c> cannot both exist). <paramref name="sortedPaths"/> must be sorted ordinally.
    /// Returns null or the reason.
    /// </summary>
    public static string? ProblemWithPathSet(IReadOnlyList<string> sortedPaths)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in sortedPaths)
            if (!seen.Add(p)) return $"path '{p}' appears more than once";
        foreach (var p in sortedPaths)
        {
            var slash = p.IndexOf('/');
            while (slash > 0)
            {
                var dir = p[..slash];
                if (seen.Contains(dir)) return $"'{dir}' is both an entry and the directory of '{p}'";
                slash = p.IndexOf('/', slash + 1);
            }
        }
        return null;
    }

    /// <summary>Most links one path may pass through when it is resolved (the kernel's own limit is 40).</summary>
    public const int MaxLinkHops = 40;

    /// <summary>
    /// Resolves every link of a tree against the tree itself, the way the kernel will once it is on disk: a target that
    /// passes through another link continues from that link's target, so <c>t -> s/../..</c> is judged by where
    /// <c>s</c> really points, not by its spelling. Returns null, or the first link whose resolution leaves the tree,
    /// loops or passes through more than <see cref="MaxLinkHops"/> links, or (with <paramref name="requireTargets"/>)
    /// ends at nothing the tree holds.
    /// </summary>
    /// <param name="filePaths">Regular files of the tree (their folders are part of the tree too).</param>
    /// <param name="links">Links as (path, target), each target already valid for <see cref="ProblemWithSymlinkTarget"/>.</param>
    /// <param name="requireTargets">True at publish: a dangling link is refused there.</param>
    public static string? ProblemWithLinks(IEnumerable<string> filePaths, IReadOnlyList<(string Path, string Target)> links, bool requireTargets)
    {
        if (links.Count == 0) return null;
        var byPath = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (path, target) in links) byPath[path] = target;
        HashSet<string>? entries = null;
        if (requireTargets)
        {
            entries = new HashSet<string>(StringComparer.Ordinal) { "" };
            foreach (var p in filePaths.Concat(byPath.Keys))
                for (var at = p; at.Length > 0; at = at.LastIndexOf('/') is var i and >= 0 ? at[..i] : "")
                    if (!entries.Add(at)) break;
        }
        foreach (var (path, target) in links)
        {
            var hops = 0;
            var resolved = new List<string>(path.Split('/')[..^1]);
            var problem = Follow(resolved, target, byPath, ref hops);
            if (problem is not null) return $"symlink '{path}' -> '{target}': {problem}";
            if (entries is not null && !entries.Contains(string.Join('/', resolved)))
                return $"symlink '{path}' -> '{target}' dangles: the tree holds nothing at '{string.Join('/', resolved)}'";
        }
        return null;
    }

    // Walks target's segments from the folder in resolved (modified in place), following every link it reaches.
    private static string? Follow(List<string> resolved, string target, Dictionary<string, string> links, ref int hops)
    {
        foreach (var segment in target.Split('/'))
        {
            if (segment.Length == 0 || segment == ".") continue;
            if (segment == "..")
            {
                if (resolved.Count == 0) return "it resolves outside the tree (through the links it passes)";
                resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            resolved.Add(segment);
            if (!links.TryGetValue(string.Join('/', resolved), out var next)) continue;
            if (++hops > MaxLinkHops) return $"it passes through more than {MaxLinkHops} links (a loop, or a chain too deep)";
            resolved.RemoveAt(resolved.Count - 1);
            var problem = Follow(resolved, next, links, ref hops);
            if (problem is not null) return problem;
        }
        return null;
    }

    private static bool IsWellFormedUnicode(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]))
            {
                if (i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1])) return false;
                i++;
            }
            else if (char.IsLowSurrogate(s[i])) return false;
        }
        return true;
    }
}
