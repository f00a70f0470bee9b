"""A 2026-07-28 (dual-era) MCP server on Streamable HTTP, built on the Python MCP SDK 2.3,
for the broker's modern-upstream tests: `echo`, `slow` with progress, and `ask`, which
elicits a name (on 2026-07-28 that is an `input_required` result).
    python modern_upstream.py PORT"""
from __future__ import annotations

import sys

import anyio
import mcp_types

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


if __name__ == "__main__":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
