using Orchestrator.ChunkStore.Keys;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch keys ...</c>: release signing and content keys.</summary>
public static class KeysPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry)
    {
        registry.Palette("keys", "release signing key pair and product content key")
            .Add(new CommandSpec("keys", "init",
                "Create release-signing.key/.pub (Ed25519) and content.key (AES-256) with mode 0600; never overwrites.",
                [
                    new SwitchSpec("dir", "DIR", "folder to create the key files in", Required: true),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                Init));
    }

    private static Task<int> Init(CommandInvocation call, CancellationToken cancellationToken)
    {
        var keys = KeyFiles.Generate(call.Required("dir"));
        if (call.Json)
            Render.Json(call.Console.Out, new KeysInitOutput(
                keys.Directory,
                Path.Combine(keys.Directory, KeyFiles.SigningKeyFile),
                Path.Combine(keys.Directory, KeyFiles.PublicKeyFile),
                Path.Combine(keys.Directory, KeyFiles.ContentKeyFile),
                keys.PublicKeyHex,
                keys.ContentKeyFingerprint));
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Created keys in {keys.Directory} (mode 0600):");
            o.WriteLine($"  {KeyFiles.SigningKeyFile}  Ed25519 private key - keep it on the publishing machine only");
            o.WriteLine($"  {KeyFiles.PublicKeyFile}  Ed25519 public key {keys.PublicKeyHex}");
            o.WriteLine($"  {KeyFiles.ContentKeyFile}      AES-256 content key, fingerprint {keys.ContentKeyFingerprint}");
        }
        return Task.FromResult(ExitCodes.Success);
    }
}
