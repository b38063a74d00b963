using System.Text;

namespace Orchestrator.Cli.Interactive;

/// <summary>
/// Reads one line from the keyboard with TAB completion, backspace and history (up/down). Used only when a real
/// terminal is attached; piped input is read line by line instead.
/// </summary>
public sealed class LineEditor(Completer completer, TextWriter output)
{
    private readonly List<string> _history = [];

    /// <summary>Reads a line after showing <paramref name="prompt"/>; null at end of input (Ctrl+D on an empty line).</summary>
    public string? ReadLine(string prompt)
    {
        var buffer = new StringBuilder();
        var historyIndex = _history.Count;
        output.Write(prompt);
        output.Flush();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            switch (key.Key)
            {
                case ConsoleKey.Enter:
                    output.WriteLine();
                    var line = buffer.ToString();
                    if (line.Trim().Length > 0 && (_history.Count == 0 || _history[^1] != line)) _history.Add(line);
                    return line;
                case ConsoleKey.Backspace:
                    if (buffer.Length > 0) buffer.Length--;
                    break;
                case ConsoleKey.Tab:
                    var (completed, listed) = completer.Complete(buffer.ToString());
                    if (listed.Count > 0)
                    {
                        output.WriteLine();
                        output.WriteLine(string.Join("  ", listed));
                    }
                    buffer.Clear().Append(completed);
                    break;
                case ConsoleKey.UpArrow when historyIndex > 0:
                    buffer.Clear().Append(_history[--historyIndex]);
                    break;
                case ConsoleKey.DownArrow when historyIndex < _history.Count:
                    historyIndex++;
                    buffer.Clear().Append(historyIndex == _history.Count ? "" : _history[historyIndex]);
                    break;
                case ConsoleKey.D when key.Modifiers.HasFlag(ConsoleModifiers.Control):
                    if (buffer.Length == 0) { output.WriteLine(); return null; }
                    break;
                default:
                    if (!char.IsControl(key.KeyChar)) buffer.Append(key.KeyChar);
                    break;
            }
            // Redraw the whole line: carriage return, prompt, text, clear to end of line.
            output.Write("\r" + prompt + buffer + "\u001b[K");
            output.Flush();
        }
    }
}
