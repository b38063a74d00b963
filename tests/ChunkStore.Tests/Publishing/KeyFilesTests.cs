using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Publishing;

public class KeyFilesTests
{
    [Fact]
    public void Generate_writes_owner_only_files_that_load_back()
    {
        using var dir = new TempDir();
        var keysDir = dir.Sub("keys");
        var generated = KeyFiles.Generate(keysDir);
        foreach (var name in new[] { KeyFiles.SigningKeyFile, KeyFiles.PublicKeyFile, KeyFiles.ContentKeyFile })
        {
            var path = Path.Combine(keysDir, name);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(32, new FileInfo(path).Length);
        }
        using var signing = KeyFiles.LoadSigningKey(keysDir);
        var pub = KeyFiles.LoadPublicKey(keysDir);
        Assert.Equal(generated.PublicKeyHex, pub.ToString());
        Assert.True(ManifestSigner.Verify("m"u8, signing.Sign("m"u8), pub));
        Assert.Equal(generated.ContentKeyFingerprint, KeyFiles.LoadContentKey(keysDir).Fingerprint);
    }

    [Fact]
    public void Generate_never_overwrites_and_missing_keys_are_named()
    {
        using var dir = new TempDir();
        KeyFiles.Generate(dir.Path);
        var before = TestData.Snapshot(dir.Path);
        var ex = Assert.Throws<InvalidInputException>(() => KeyFiles.Generate(dir.Path));
        Assert.Contains("never overwritten", ex.Message);
        Assert.Equal(before, TestData.Snapshot(dir.Path));
        var missing = Assert.Throws<InvalidInputException>(() => KeyFiles.LoadContentKey(dir.Sub("nope")));
        Assert.Contains("content.key", missing.Message);
        File.WriteAllBytes(Path.Combine(dir.Path, KeyFiles.ContentKeyFile), new byte[5]);
        Assert.Throws<InvalidInputException>(() => KeyFiles.LoadContentKey(dir.Path));
    }
}
