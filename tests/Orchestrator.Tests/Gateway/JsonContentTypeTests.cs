using Microsoft.AspNetCore.Http;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// <see cref="HttpProblems.IsJson"/> recognises the agents' two content types without parsing them and must agree with
/// ASP.NET Core's <c>HasJsonContentType</c> on every other value, so a body is accepted or refused (415) as before.
/// </summary>
public sealed class JsonContentTypeTests
{
    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("APPLICATION/JSON; CHARSET=UTF-8")]
    [InlineData("Application/Json")]
    [InlineData("application/json;charset=utf-8")]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("application/problem+json")]
    [InlineData("application/vnd.orch+json; v=2")]
    [InlineData("application/json;")]
    [InlineData("application/jsonx")]
    [InlineData("application/json-patch")]
    [InlineData("text/json")]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData("json")]
    [InlineData("application/")]
    [InlineData(" application/json")]
    [InlineData("application/json ; charset=utf-8")]
    [InlineData("")]
    [InlineData(null)]
    public void Agrees_with_the_framework_on(string? contentType)
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = contentType;
        Assert.Equal(request.HasJsonContentType(), HttpProblems.IsJson(request));
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    public void The_agents_content_types_are_json(string contentType)
    {
        var request = new DefaultHttpContext().Request;
        request.ContentType = contentType;
        Assert.True(HttpProblems.IsJson(request));
    }
}
