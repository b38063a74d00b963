namespace Orchestrator.Messages.Storage;

/// <summary>
/// The one advisory lock every node takes around its PostgreSQL DDL. Nodes of a cluster start together, and
/// PostgreSQL's <c>CREATE ... IF NOT EXISTS</c> is not safe under concurrency (a racing create fails on pg_type's
/// unique index). All nodes must agree on the key, so it lives here, beside the other cross-process contracts.
/// </summary>
public static class PostgresSchemaLock
{
    /// <summary>
    /// Prefix for a DDL command text: takes the transaction-scoped advisory lock (key 7131000, shared by every node). A multi-statement command runs as one
    /// implicit transaction, so the lock is held until the DDL after it has committed.
    /// </summary>
    public const string Prefix = "SELECT pg_advisory_xact_lock(7131000); ";
}
