using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Hosting;

public sealed class ConnectionLimitTests
{
    [Theory]
    [InlineData(400_000, 1_048_576L, 400_000, 465_536)] // a container's usual limit: the configured limit stands
    [InlineData(400_000, 524_288L, 400_000, 432_768)] // systemd's default hard limit
    [InlineData(400_000, 20_000L, 17_500, 18_750)] // an eighth kept back, half of it for connections being closed
    [InlineData(400_000, 1_100L, 76, 588)] // at least 1024 kept back
    [InlineData(400_000, 1_024L, ConnectionLimit.Minimum, 512)] // the minimum takes from the reserve: half of it stays
    [InlineData(100, 20_000L, 100, 1_350)]
    public void The_connection_limit_leaves_the_reserve_of_the_open_file_limit(int configured, long openFiles, int effective, int acceptLimit)
    {
        var limit = ConnectionLimit.For(configured, openFiles);
        Assert.Equal((configured, effective, openFiles), (limit.Configured, limit.Effective, limit.OpenFiles!.Value));
        Assert.Equal(effective < configured, limit.Lowered);
        Assert.Equal(acceptLimit, limit.AcceptLimit);
        // Connections held at the accept limit never take the half of the reserve kept for everything else.
        Assert.True(openFiles - acceptLimit >= ConnectionLimit.Reserve(openFiles) / 2);
    }

    [Fact]
    public void Without_a_readable_open_file_limit_the_configured_limit_stands()
    {
        Assert.Equal(new ConnectionLimit(400_000, 400_000, null), ConnectionLimit.For(400_000, null));
        Assert.Null(ConnectionLimit.For(400_000, null).AcceptLimit);
        Assert.Null(ConnectionLimit.ReadOpenFilesLimit("/nonexistent/limits"));
    }

    [Fact]
    public void The_soft_open_file_limit_is_read_from_a_proc_limits_file()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """
                Limit                     Soft Limit           Hard Limit           Units
                Max cpu time              unlimited            unlimited            seconds
                Max open files            20000                1048576              files
                Max locked memory         8388608              8388608              bytes
                """);
            Assert.Equal(20_000, ConnectionLimit.ReadOpenFilesLimit(file));
            File.WriteAllText(file, "Max open files            unlimited            unlimited            files\n");
            Assert.Null(ConnectionLimit.ReadOpenFilesLimit(file));
        }
        finally
        {
            File.Delete(file);
        }
        // This process's own (Linux): a number the runtime has set.
        if (OperatingSystem.IsLinux()) Assert.True(ConnectionLimit.ReadOpenFilesLimit("/proc/self/limits") > 0);
    }
}
