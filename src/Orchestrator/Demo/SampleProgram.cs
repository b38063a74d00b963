using System.Text;

namespace Orchestrator.Node.Demo;

/// <summary>
/// The demo's client program: a tiny shell "app" plus a library and data files big enough to be cut into many
/// chunks, in two versions where 1.1.0 changes part of the files, so the upgrade downloads only what changed.
/// </summary>
internal static class SampleProgram
{
    public const string Product = "hello-fleet";

    /// <summary>Writes version <paramref name="version"/> of the program into <paramref name="folder"/>.</summary>
    public static void Write(string folder, string version)
    {
        var v2 = version != "1.0.0";
        File(folder, "bin/hello", Encoding.UTF8.GetBytes($"#!/bin/sh\necho \"hello from {Product} {version}\"\n"), executable: true);
        File(folder, "share/README.txt", Encoding.UTF8.GetBytes($"{Product} {version}: the sample client program of `orchestrator demo`.\n"));
        // Unchanged between versions: an upgrade reuses every chunk of these from the device's own files.
        File(folder, "lib/libruntime.so", Bytes(1, 900_000));
        File(folder, "share/assets.pak", Bytes(2, 1_200_000));
        // Changed in 1.1.0: a patched region in the middle of the core library (only its chunks are downloaded)
        // and a new plugin.
        var core = Bytes(3, 600_000);
        if (v2) Bytes(30, 40_000).CopyTo(core, 250_000);
        File(folder, "lib/libcore.so", core);
        if (v2) File(folder, "lib/plugins/greeting.so", Bytes(4, 150_000));
    }

    private static byte[] Bytes(int seed, int length)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static void File(string root, string relative, byte[] content, bool executable = false)
    {
        var full = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllBytes(full, content);
        if (executable && !OperatingSystem.IsWindows())
            System.IO.File.SetUnixFileMode(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                                UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
    }
}
