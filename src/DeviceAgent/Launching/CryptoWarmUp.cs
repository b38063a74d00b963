using System.Security.Cryptography;
using NSec.Cryptography;

namespace Orchestrator.DeviceAgent.Launching;

/// <summary>
/// Loads the native crypto libraries on a pool thread as a process starts: the first use of OpenSSL (device key,
/// sealed items, digests) or libsodium (signatures) otherwise loads and initialises it on the path to the first
/// check-in, in series with reading the configuration and the hidden zone. Nothing is derived or verified here; the
/// code that needs a library still waits for its load if it gets there first.
/// </summary>
internal static class CryptoWarmUp
{
    /// <summary>Starts loading OpenSSL and, for a process that verifies signatures before its check-in, libsodium.</summary>
    public static void Start(bool signatures) =>
        ThreadPool.UnsafeQueueUserWorkItem(static withSodium =>
        {
            try
            {
                Span<byte> digest = stackalloc byte[32];
                SHA256.HashData(ReadOnlySpan<byte>.Empty, digest);
                if (withSodium) _ = SignatureAlgorithm.Ed25519.PublicKeySize;
            }
            catch (Exception e) when (e is CryptographicException or DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
            {
                // Reported by the code that needs the library, where it names what failed.
            }
        }, signatures, preferLocal: false);
}
