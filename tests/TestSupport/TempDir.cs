namespace Orchestrator.TestSupport;

/// <summary>
/// A fresh folder under the system temp folder, deleted on dispose. The one temp-folder fixture of every test project;
/// the projects that must not reference server code (agent, chunk format) compile this file by link.
/// </summary>
public sealed class TempDir : IDisposable
{
    /// <summary>Creates the folder.</summary>
    public TempDir() => Directory.CreateDirectory(Path);

    /// <summary>The folder.</summary>
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "orch-tests", Guid.NewGuid().ToString("N")[..12]);

    /// <summary>The path of <paramref name="name"/> inside the folder, not created (for a test that needs it absent).</summary>
    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>The folder <paramref name="name"/> inside this one, created with its parents.</summary>
    public string Folder(string name) => Directory.CreateDirectory(Sub(name)).FullName;

    /// <summary>Deletes the folder; a file a test left locked or read-only does not fail the test.</summary>
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
