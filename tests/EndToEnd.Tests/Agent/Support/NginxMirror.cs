using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.TestSupport;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>
/// A real nginx (Debian package) serving a store folder as a plain static mirror on 127.0.0.1, with its own
/// config, pid file and logs in a temp folder.
/// </summary>
public sealed class NginxMirror : IDisposable
{
    private readonly Process _process;
    private readonly TempDir _dir;

    public string BaseUrl { get; }
    public string AccessLog { get; }

    private NginxMirror(Process process, TempDir dir, string baseUrl, string accessLog)
    {
        _process = process;
        _dir = dir;
        BaseUrl = baseUrl;
        AccessLog = accessLog;
    }

    public static string? Binary =>
        new[] { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);

    public static async Task<NginxMirror> StartAsync(string root)
    {
        var binary = Binary ?? throw new InvalidOperationException("nginx is not installed (apt-get install nginx)");
        var dir = new TempDir();
        var port = LoopbackPort.Free();
        var log = Path.Combine(dir.Path, "access.log");
        var conf = Path.Combine(dir.Path, "nginx.conf");
        var temp = dir.Folder("temp");
        File.WriteAllText(conf, $$"""
            daemon off;
            worker_processes 1;
            pid {{dir.Path}}/nginx.pid;
            error_log {{dir.Path}}/error.log warn;
            {{(Environment.UserName == "root" ? "user root;" : "")}}
            events { worker_connections 64; }
            http {
              access_log {{log}};
              client_body_temp_path {{temp}}/body;
              proxy_temp_path {{temp}}/proxy;
              fastcgi_temp_path {{temp}}/fastcgi;
              uwsgi_temp_path {{temp}}/uwsgi;
              scgi_temp_path {{temp}}/scgi;
              default_type application/octet-stream;
              server {
                listen 127.0.0.1:{{port}};
                root {{root}};
                location / { }
              }
            }
            """);
        var psi = new ProcessStartInfo(binary) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", conf, "-p", dir.Path, "-e", Path.Combine(dir.Path, "error.log") }) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"nginx exited with {process.ExitCode}: {await process.StandardError.ReadToEndAsync()}");
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                break;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
        return new NginxMirror(process, dir, $"http://127.0.0.1:{port}/", log);
    }


    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) { _process.Kill(entireProcessTree: true); _process.WaitForExit(5000); }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        _dir.Dispose();
    }
}

/// <summary>
/// A test that needs nginx: skipped with the reason when nginx is not installed, unless ORCH_REQUIRE_NGINX=1
/// (CI), in which case it runs and fails.
/// </summary>
public sealed class NginxFactAttribute : FactAttribute
{
    public NginxFactAttribute()
    {
        if (NginxMirror.Binary is null && Environment.GetEnvironmentVariable("ORCH_REQUIRE_NGINX") != "1")
            Skip = "nginx is not installed (apt-get install nginx); set ORCH_REQUIRE_NGINX=1 to make this a failure";
    }
}
