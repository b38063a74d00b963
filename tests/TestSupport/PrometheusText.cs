using System.Globalization;

namespace Orchestrator.TestSupport;

/// <summary>Reads the node's <c>/metrics</c> (Prometheus text format) in tests.</summary>
public static class PrometheusText
{
    /// <summary>Sum of a metric family's samples in <paramref name="text"/> whose labels contain <paramref name="labels"/> (0 when absent).</summary>
    public static double Sum(string text, string name, params string[] labels)
    {
        double sum = 0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || !line.StartsWith(name, StringComparison.Ordinal)) continue;
            var rest = line[name.Length..];
            if (rest.Length > 0 && rest[0] is not ('{' or ' ')) continue;
            if (labels.Any(l => !rest.Contains(l, StringComparison.Ordinal))) continue;
            var value = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1];
            if (line.Contains('}')) value = line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0];
            sum += double.Parse(value, CultureInfo.InvariantCulture);
        }
        return sum;
    }
}
