using Orchestrator.Messages.Admin;

namespace Orchestrator.Node.Admin;

/// <summary>JSON answers of the admin query routes, written with <see cref="AdminJson.Options"/> (enums as names).</summary>
internal static class AdminResults
{
    public static IResult Ok<T>(T value) => TypedResults.Json(value, AdminJson.Options);
}
