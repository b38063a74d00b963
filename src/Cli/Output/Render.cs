using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orchestrator.Cli.CommandLine;
using Spectre.Console;

namespace Orchestrator.Cli.Output;

/// <summary>Formatting shared by every command: JSON for scripts, compact units for people.</summary>
public static class Render
{
    /// <summary>Writes <paramref name="value"/> as indented camelCase JSON plus a newline (enums as names).</summary>
    /// <remarks><typeparamref name="T"/> must be registered in <see cref="CliJsonContext"/>.</remarks>
    public static void Json<T>(TextWriter writer, T value)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteLine(JsonSerializer.Serialize(value, CliJson.TypeInfo<T>(CliJson.Output)));
    }

    /// <summary>A Spectre console writing to <paramref name="console"/>'s stdout: colours only on a terminal, wide
    /// fixed width otherwise so tables piped to files or grep do not wrap.</summary>
    public static IAnsiConsole Ansi(CliConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(console.Out),
            // CliConsole.IsTerminal already says whether stdout is a terminal; Spectre's own detection cannot see
            // through the TextWriter it is given.
            Ansi = console.IsTerminal ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = console.IsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = console.IsTerminal ? InteractionSupport.Yes : InteractionSupport.No,
        });
        if (!console.IsTerminal) ansi.Profile.Width = 240;
        return ansi;
    }

    /// <summary>Writes a table with <paramref name="headers"/> and <paramref name="rows"/> (cells are plain text, escaped here).</summary>
    public static void Table(CliConsole console, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string?>> rows, string? title = null)
    {
        var table = new Table().Border(console.IsTerminal ? TableBorder.Rounded : TableBorder.Simple);
        if (title is not null) table.Title(Markup.Escape(title));
        foreach (var h in headers) table.AddColumn(new TableColumn(Markup.Escape(h)));
        foreach (var row in rows) table.AddRow(row.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c ?? "-")).ToArray());
        Ansi(console).Write(table);
    }

    /// <summary>Key/value lines, aligned.</summary>
    public static void Fields(TextWriter writer, IEnumerable<(string Key, string? Value)> fields)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var list = fields.ToList();
        var width = list.Count == 0 ? 0 : list.Max(f => f.Key.Length);
        foreach (var (k, v) in list) writer.WriteLine($"  {k.PadRight(width)}  {v ?? "-"}");
    }

    /// <summary>Time as ISO-8601 UTC to the second, or "-".</summary>
    public static string Time(DateTimeOffset? t) => t?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-";

    /// <summary>Bytes as B, KiB, MiB or GiB with one decimal.</summary>
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        return unit == 0 ? $"{bytes} B" : value.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    /// <summary>Seconds with two decimals.</summary>
    public static string Seconds(TimeSpan elapsed) => elapsed.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";
}
