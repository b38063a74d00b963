namespace Orchestrator.ChunkStore.Validation;

/// <summary>
/// An input from outside (a name, a path, a tree, a version ID, a manifest, a key file) was rejected. The message
/// names the input and says how to fix it; whoever throws it guarantees that no state was changed.
/// </summary>
public sealed class InvalidInputException : Exception
{
    /// <summary>Creates the exception with a message that names the bad input and the fix.</summary>
    public InvalidInputException(string message) : base(message) { }

    /// <summary>Creates the exception wrapping the low-level cause.</summary>
    public InvalidInputException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Stored data failed a cryptographic or structural check (chunk id mismatch, authentication tag failure, size
/// mismatch, decompression overflow). Never retried as-is: the data is wrong, not the attempt.
/// </summary>
public sealed class IntegrityException : Exception
{
    /// <summary>Creates the exception with a message that says which object failed which check.</summary>
    public IntegrityException(string message) : base(message) { }

    /// <summary>Creates the exception wrapping the low-level cause.</summary>
    public IntegrityException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Another writer (publish or gc) holds the store's lock. Nothing was changed; retrying later is the fix, which
/// is why this is not an <see cref="InvalidInputException"/>.
/// </summary>
public sealed class StoreBusyException : Exception
{
    /// <summary>Creates the exception with a message naming the store.</summary>
    public StoreBusyException(string message, Exception inner) : base(message, inner) { }
}
