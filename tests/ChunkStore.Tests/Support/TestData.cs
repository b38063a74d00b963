using System.Security.Cryptography;

namespace Orchestrator.ChunkStore.Tests.Support;

public static class TestData
{
    /// <summary>Deterministic pseudo-random bytes (incompressible, like release binaries).</summary>
    public static byte[] Random(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static void WriteFile(string root, string relative, byte[] content)
    {
        var path = System.IO.Path.Combine(root, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
    }

    /// <summary>Every file under <paramref name="root"/> with its SHA-256, to prove "byte-for-byte unchanged".</summary>
    public static IReadOnlyDictionary<string, string> Snapshot(string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(root)) return result;
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            result[System.IO.Path.GetRelativePath(root, file)] = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
        foreach (var dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories))
            result[System.IO.Path.GetRelativePath(root, dir) + "/"] = "dir";
        return result;
    }
}
