#!/usr/bin/env python3
"""Claude Desktop's side of the desktop e2e: the Python MCP SDK's stdio client launches
`mcp-broker connect everything --data-dir D`, as Claude Desktop does for an entry that
`mcp-broker clients install claude-desktop` wrote. It lists tools and calls echo, prints
one JSON line per step, then waits for a line on stdin before calling echo again (the
test revokes the grant in between, so that call needs a new consent)."""
import json, os, sys

import anyio
from mcp import Client, StdioServerParameters


def say(**kv):
    print(json.dumps(kv), flush=True)


def text_of(res):
    return " ".join(getattr(c, "text", "") for c in res.content)


async def main():
    params = StdioServerParameters(
        command=os.environ["APP"],
        args=["connect", "everything", "--data-dir", os.environ["DATA_DIR"],
              "--client-name", "Claude Desktop (e2e)"],
        env=dict(os.environ),
    )
    async with Client(params, read_timeout_seconds=240) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        say(step="listed", tools=names)
        say(step="called", text=text_of(await c.call_tool("echo", {"message": "first call"})))
        await anyio.to_thread.run_sync(sys.stdin.readline)
        say(step="called again", text=text_of(await c.call_tool("echo", {"message": "after revoke"})))


anyio.run(main)
