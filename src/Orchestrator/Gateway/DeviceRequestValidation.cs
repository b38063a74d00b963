using System.Text.RegularExpressions;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Gateway;

/// <summary>Edge validation of device request bodies. Each check returns (code, message) or null when valid.</summary>
public static partial class DeviceRequestValidation
{
    /// <summary>Product names follow the store's rule (<see cref="StoreNames.IsValidProduct"/>).</summary>
    public static bool IsValidProduct(string? p) => StoreNames.IsValidProduct(p);

    // Checked on every check-in's nonce: a vectorized scan, no enumerator.
    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    [GeneratedRegex(@"^[0-9a-f]{64}\z")]
    private static partial Regex Sha256Pattern();

    /// <summary>Checks a check-in body.</summary>
    public static (string Code, string Message)? Validate(CheckInRequest r, int maxFiles)
    {
        if (!IsValidProduct(r.Product)) return ("invalid_product", $"product '{r.Product}' is not a valid product name (1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit).");
        if (r.InstalledVersionId < 0) return ("invalid_version_id", $"installedVersionId {r.InstalledVersionId} is negative; send 0 when nothing is installed.");
        if (r.InventoryDigest is null || r.InventoryDigest.Length > 200) return ("invalid_inventory_digest", "inventoryDigest is missing or longer than 200 characters.");
        if (r.AgentVersion is { Length: > 64 }) return ("invalid_agent_version", "agentVersion is longer than 64 characters.");
        if (r.Nonce is not null && (r.Nonce.Length is < 32 or > 64 || r.Nonce.AsSpan().ContainsAnyExcept(LowerHex)))
            return ("invalid_nonce", $"nonce must be 32-64 lower-case hex characters (a fresh random value per check-in); got {r.Nonce.Length} characters.");
        if (DeviceAttributeRules.Problem("attributes", r.Attributes) is { } badAttributes) return ("invalid_attributes", badAttributes);
        if (r.Files is { } files)
        {
            if (files.Count > maxFiles) return ("too_many_files", $"files has {files.Count} entries; the limit is {maxFiles} (Gateway:MaxInventoryFiles).");
            for (var i = 0; i < files.Count; i++)
            {
                var f = files[i];
                if (f is null || string.IsNullOrEmpty(f.Path) || f.Path.Length > 1024 || f.Path.StartsWith('/') || f.Path.Contains('\\') || f.Path.Split('/').Any(s => s is "" or "." or ".."))
                    return ("invalid_file_path", $"files[{i}].path '{f?.Path}' must be a relative path with forward slashes and no '.', '..' or empty segments.");
                if (f.Sha256 is null || !Sha256Pattern().IsMatch(f.Sha256))
                    return ("invalid_file_hash", $"files[{i}].sha256 must be 64 lower-case hex characters.");
            }
        }
        return null;
    }

    /// <summary>Checks a progress report.</summary>
    public static (string Code, string Message)? Validate(ProgressReport r)
    {
        if (r.TargetVersionId <= 0) return ("invalid_version_id", "targetVersionId must be > 0.");
        if (r.BytesDone < 0 || r.BytesTotal < 0 || r.BytesDone > r.BytesTotal) return ("invalid_progress", "bytesDone and bytesTotal must satisfy 0 <= bytesDone <= bytesTotal.");
        if (r.ChunksDone < 0 || r.ChunksTotal < 0 || r.ChunksDone > r.ChunksTotal) return ("invalid_progress", "chunksDone and chunksTotal must satisfy 0 <= chunksDone <= chunksTotal.");
        return null;
    }

    /// <summary>Checks a failure report.</summary>
    public static (string Code, string Message)? Validate(FailureReport r)
    {
        if (r.TargetVersionId <= 0) return ("invalid_version_id", "targetVersionId must be > 0.");
        if (r.Stage is not ("download" or "verify" or "install")) return ("invalid_stage", $"stage '{r.Stage}' is not one of download, verify, install.");
        if (string.IsNullOrWhiteSpace(r.Reason) || r.Reason.Length > 2000) return ("invalid_reason", "reason must be 1-2000 characters.");
        if (r.Attempt < 1) return ("invalid_attempt", "attempt must be >= 1.");
        return null;
    }

    /// <summary>Checks a completion report.</summary>
    public static (string Code, string Message)? Validate(CompletionReport r)
    {
        if (r.InstalledVersionId <= 0) return ("invalid_version_id", "installedVersionId must be > 0.");
        if (string.IsNullOrEmpty(r.InventoryDigest) || r.InventoryDigest.Length > 200) return ("invalid_inventory_digest", "inventoryDigest must be 1-200 characters.");
        if (r.Method is not (null or CompletionReport.MethodDelta or CompletionReport.MethodChunks))
            return ("invalid_method", $"method must be \"{CompletionReport.MethodDelta}\" or \"{CompletionReport.MethodChunks}\" (or omitted).");
        if (r.BytesDownloaded is < 0) return ("invalid_bytes", "bytesDownloaded must be >= 0 (or omitted).");
        return null;
    }

    /// <summary>Checks a report of a lost updater.</summary>
    public static (string Code, string Message)? Validate(UpdaterLostReport r)
    {
        if (string.IsNullOrWhiteSpace(r.Reason) || r.Reason.Length > Orchestrator.Messages.Devices.ReportUpdaterLost.MaxReasonLength)
            return ("invalid_reason", $"reason must be 1-{Orchestrator.Messages.Devices.ReportUpdaterLost.MaxReasonLength} characters.");
        return null;
    }
}
