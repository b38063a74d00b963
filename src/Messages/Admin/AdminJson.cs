using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Messages.Admin;

/// <summary>
/// JSON settings of the admin API (<c>/admin/v1/...</c>), shared by the node and <c>orch</c>: camelCase, enums as
/// their names (operators read them), case-insensitive reads.
/// </summary>
public static class AdminJson
{
    /// <summary>The options both sides use.</summary>
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        o.Converters.Add(new JsonStringEnumConverter());
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}
