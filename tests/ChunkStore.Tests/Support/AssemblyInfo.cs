// The store, the key files and these tests rely on Unix file modes, symlinks and FIFOs.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
