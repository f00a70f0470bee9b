"""A 2025-11-25 MCP server on Streamable HTTP, built on the Python MCP SDK 2.3, that uses
SSE polling (basic/transports §Resumability and Redelivery): it keeps its events in an
event store, primes each stream with an id and `retry`, and its `poll` tool closes the
answer's connection twice before the response, so a client has to resume with a GET
carrying `Last-Event-ID` to hear the rest.
    python polling_upstream.py PORT"""
from __future__ import annotations

import itertools
import sys

import anyio

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore

app = MCPServer("polling-upstream")


class MemoryEventStore(EventStore):
    """Every event of every stream, in order; ids are `STREAM:N`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []
        self.ids = itertools.count(1)

    async def store_event(self, stream_id, message):  # noqa: ANN001
        event_id = f"{stream_id}:{next(self.ids)}"
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback: EventCallback):  # noqa: ANN001
        found = [i for i, (eid, _, _) in enumerate(self.events) if eid == last_event_id]
        if not found:
            return None
        stream = self.events[found[0]][1]
        for eid, sid, message in self.events[found[0] + 1:]:
            if sid == stream and message is not None:
                await send_callback(EventMessage(message, eid))
        return stream


@app.tool()
async def poll(ctx: Context, steps: int = 3) -> str:
    """Reports progress, closing the answer's connection after each of the first two steps."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps)
        if i < 2:
            await ctx.close_sse_stream()
        await anyio.sleep(0.4)
    return f"polled {steps} steps"


@app.tool()
async def echo(message: str) -> str:
    """Echoes back the input string."""
    return f"Echo: {message}"


if __name__ == "__main__":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), event_store=MemoryEventStore(),
            retry_interval=200)
