"""A 2026-07-28 (dual-era) MCP server on Streamable HTTP, built on the Python MCP SDK 2.3,
for the broker's modern-upstream tests: `echo`, `slow` with progress, `ask`, which
elicits a name (on 2026-07-28 that is an `input_required` result), `survey`, which
reports progress, asks a name and reports progress again (in either era), `region`, whose
argument travels in an `Mcp-Param-Region` header too (`x-mcp-header`), and `whoami`,
which reports what the request carried (version, capabilities, Authorization).
    python modern_upstream.py PORT [--modern-only]
    python modern_upstream.py stdio     (dual-era over stdio: the first request picks the era)
With --modern-only it refuses every 2025-11-25 request (`initialize` gets -32022, GET and
DELETE 405), as a server that speaks only 2026-07-28 does."""
from __future__ import annotations

import json
import sys
from typing import Annotated

import anyio
import mcp_types
from pydantic import BaseModel, Field

from mcp.server.mcpserver import Context, MCPServer

app = MCPServer("modern-upstream")


@app.tool()
async def echo(message: str) -> str:
    """Echoes back the input string."""
    return f"Echo: {message}"


@app.tool()
async def slow(ctx: Context, steps: int = 3) -> str:
    """Reports progress `steps` times, then answers."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps)
        await anyio.sleep(0.05)
    return f"done after {steps} steps"


@app.tool()
async def ask(ctx: Context) -> str | mcp_types.InputRequiredResult:
    """Asks the user for a name: `input_required` first, the greeting on the retry."""
    answer = (ctx.input_responses or {}).get("name")
    if answer is None:
        ask_name = mcp_types.ElicitRequest(
            params=mcp_types.ElicitRequestFormParams(
                message="What is your name?",
                requested_schema={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            )
        )
        return mcp_types.InputRequiredResult(input_requests={"name": ask_name}, request_state="ask-1")
    content = answer.content if hasattr(answer, "content") else answer.get("content")
    return f"Hello, {(content or {}).get('name')}"


class Name(BaseModel):
    name: str


@app.tool()
async def survey(ctx: Context) -> str | mcp_types.InputRequiredResult:
    """Progress, then a question in the middle of the call, then progress again: the
    question is an `input_required` result on 2026-07-28 and an `elicitation/create`
    request on 2025-11-25."""
    modern = ctx.protocol_version == "2026-07-28"
    answer = (ctx.input_responses or {}).get("name") if modern else None
    if answer is None:
        await ctx.report_progress(1, 2)
        if modern:
            return mcp_types.InputRequiredResult(input_requests={"name": mcp_types.ElicitRequest(
                params=mcp_types.ElicitRequestFormParams(message="Who is taking the survey?",
                                                         requested_schema=Name.model_json_schema()))},
                request_state="survey-1")
        asked = await ctx.elicit("Who is taking the survey?", Name)
        name = asked.data.name if asked.action == "accept" and asked.data else None
    else:
        content = answer.content if hasattr(answer, "content") else answer.get("content")
        name = (content or {}).get("name")
    await ctx.report_progress(2, 2)
    return f"Thanks, {name}"


@app.tool()
async def region(ctx: Context, region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    """Answers with the region from the arguments and from its Mcp-Param-Region header."""
    header = (ctx.headers or {}).get("mcp-param-region")
    return f"region {region}; header {header}"


@app.tool()
async def whoami(ctx: Context) -> str:
    """What this request carried: protocol version, client capabilities, Authorization."""
    caps = ctx.client_capabilities
    return json.dumps({
        "protocolVersion": ctx.protocol_version,
        "clientCapabilities": caps.model_dump(exclude_none=True) if caps else None,
        "authorization": (ctx.headers or {}).get("authorization"),
        "mcpMethod": (ctx.headers or {}).get("mcp-method"),
        "mcpName": (ctx.headers or {}).get("mcp-name"),
    })


def modern_only(inner):
    """ASGI wrapper: 2025-11-25 traffic is refused, 2026-07-28 requests pass."""
    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return await inner(scope, receive, send)

        async def reply(status: int, body: dict | None) -> None:
            data = json.dumps(body).encode() if body else b""
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": data})

        if scope["method"] != "POST":
            return await reply(405, None)
        chunks = []
        while True:
            m = await receive()
            chunks.append(m.get("body", b""))
            if not m.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = None
        params = msg.get("params") if isinstance(msg, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(msg, dict) and "method" in msg and not (isinstance(meta, dict) and "io.modelcontextprotocol/protocolVersion" in meta):
            requested = params.get("protocolVersion") if isinstance(params, dict) else None
            return await reply(400, {"jsonrpc": "2.0", "id": msg.get("id"), "error": {
                "code": -32022, "message": "this server speaks only MCP 2026-07-28",
                "data": {"supported": ["2026-07-28"], "requested": requested or "none"}}})
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await inner(scope, replay, send)
    return asgi


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        app.run("stdio")
        sys.exit(0)
    port = int(sys.argv[1])
    if "--modern-only" in sys.argv[2:]:
        import uvicorn

        uvicorn.run(modern_only(app.streamable_http_app()), host="127.0.0.1", port=port, log_level="info")
    else:
        app.run("streamable-http", host="127.0.0.1", port=port)
