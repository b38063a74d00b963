using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch keys ...</c>: the trust set (root, release, director keys and root documents) and the content key.</summary>
public static class KeysPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry)
    {
        registry.Palette("keys", "trust keys (root, release, director), root documents and the product content key")
            .Add(new CommandSpec("keys", "init",
                "Create release-signing.key/.pub, content.key, root.key (offline), director.key (for the nodes) and root.json (root version 1, " +
                "what devices are provisioned with), all mode 0600; never overwrites.",
                [
                    new SwitchSpec("dir", "DIR", "folder to create the key files in", Required: true),
                    new SwitchSpec("store", "DIR", "also copy the root documents into this content store (root/N.root.json)"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                Init))
            .Add(new CommandSpec("keys", "rotate",
                "Replace the key of ROLE (root, release or director) and write root version N+1 signed by the current root key " +
                "(and by the new one for root); devices follow the chain from their provisioned root.",
                [
                    new SwitchSpec("dir", "DIR", "key folder of 'orch keys init' (needs root.key)", Required: true),
                    new SwitchSpec("store", "DIR", "copy the root documents into this content store (root/N.root.json)"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                ["ROLE"],
                Rotate));
    }

    private static Task<int> Init(CommandInvocation call, CancellationToken cancellationToken)
    {
        var keys = KeyFiles.Generate(call.Required("dir"));
        var root = TrustFiles.Init(keys.Directory, DateTimeOffset.UtcNow);
        var published = call.Optional("store") is { } store ? TrustFiles.PublishRoots(keys.Directory, FileSystemStore.Open(store, create: true)) : 0;
        if (call.Json)
            Render.Json(call.Console.Out, new KeysInitOutput(
                keys.Directory,
                Path.Combine(keys.Directory, KeyFiles.SigningKeyFile),
                Path.Combine(keys.Directory, KeyFiles.PublicKeyFile),
                Path.Combine(keys.Directory, KeyFiles.ContentKeyFile),
                keys.PublicKeyHex,
                keys.ContentKeyFingerprint,
                Path.Combine(keys.Directory, TrustFiles.RootKeyFile),
                Path.Combine(keys.Directory, TrustFiles.DirectorKeyFile),
                Path.Combine(keys.Directory, TrustFiles.RootDocumentFile),
                root.Root!.Version,
                published));
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Created keys in {keys.Directory} (mode 0600):");
            o.WriteLine($"  {KeyFiles.SigningKeyFile}  Ed25519 release key - signs manifests, deltas and floors; keep it on the publishing machine only");
            o.WriteLine($"  {KeyFiles.PublicKeyFile}  Ed25519 public key {keys.PublicKeyHex}");
            o.WriteLine($"  {KeyFiles.ContentKeyFile}      AES-256 content key, fingerprint {keys.ContentKeyFingerprint}");
            o.WriteLine($"  {TrustFiles.RootKeyFile}          Ed25519 root key - signs root documents; move it offline now");
            o.WriteLine($"  {TrustFiles.DirectorKeyFile}      Ed25519 director key - give it to the nodes (Trust:DirectorKeyFile)");
            o.WriteLine($"  {TrustFiles.RootDocumentFile}         root version 1 - provision devices with it (trust-root.pub / --trust-root-file)");
            if (published > 0) o.WriteLine($"  copied {published} root document(s) into the store");
        }
        return Task.FromResult(ExitCodes.Success);
    }

    private static Task<int> Rotate(CommandInvocation call, CancellationToken cancellationToken)
    {
        var dir = call.Required("dir");
        var role = call.Positionals[0];
        var root = TrustFiles.Rotate(dir, role, DateTimeOffset.UtcNow);
        var published = call.Optional("store") is { } store ? TrustFiles.PublishRoots(dir, FileSystemStore.Open(store, create: true)) : 0;
        var full = Path.GetFullPath(dir);
        if (call.Json)
            Render.Json(call.Console.Out, new KeysRotateOutput(full, role, root.Root!.Version, Path.Combine(full, TrustFiles.RootDocumentFile), published));
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Rotated the {role} key; root version {root.Root!.Version} written to {Path.Combine(full, TrustFiles.RootDocumentFile)}.");
            o.WriteLine(published > 0
                ? $"  copied {published} root document(s) into the store; devices pick up the new root at their next session."
                : "  copy the root documents into every store (orch keys rotate ... --store S, or re-run with --store) so devices can follow the chain.");
            if (role == TrustRoles.Director) o.WriteLine("  give the new director.key to every node (Trust:DirectorKeyFile) after the store has the new root.");
        }
        return Task.FromResult(ExitCodes.Success);
    }
}
