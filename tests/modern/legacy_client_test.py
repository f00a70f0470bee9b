"""2025-11-25 clients through the broker to a 2026-07-28-only remote upstream
(tests/modern/modern_upstream.py --modern-only, which refuses `initialize`): the broker
holds the legacy session and speaks 2026-07-28 upstream. The Python MCP SDK 2.3 client in
its legacy mode lists and calls tools, gets progress, answers an elicitation the upstream
asks for mid-call (an `input_required` result turned into an `elicitation/create` on the
client's stream), and the upstream sees the broker's credentials, never the client's
token, plus the routing headers and an `Mcp-Param-Region` header. The same upstream
without the setting is found by the probe; `era = "legacy"` skips the probe.

The same server over stdio (dual-era: a child locks to the era of its first request) is
probed on a throwaway child; working children then get 2026-07-28 requests only, from the
legacy client and from a 2026-07-28 client (the Python SDK probing) alike; with
`era = "legacy"` the child is spoken to in 2025-11-25 and nothing is probed.

    python tests/modern/legacy_client_test.py    (tests/modern/suite.sh sets the paths)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

sys.path.insert(0, str(Path(__file__).parent))
from modern_test import check, finish, free_port, procs, serve, text_of, token, wait_port, work  # noqa: E402

BROKER = os.environ["BROKER"]
SCRIPT = Path(__file__).with_name("modern_upstream.py")
UPSTREAM_SECRET = "Bearer upstream-only-secret"


def start_upstream() -> int:
    port = free_port()
    log = open(work / "upstream.log", "w")
    p = subprocess.Popen([sys.executable, str(SCRIPT), str(port), "--modern-only"],
                         stdout=log, stderr=log, start_new_session=True)
    procs.append(p)
    assert wait_port(port), "the modern-only upstream did not start"
    return port


def start_broker(port: int) -> str:
    url = f"http://127.0.0.1:{port}/mcp"
    base, _ = serve(
        f'[servers.probed]\nurl = "{url}"\nheaders = {{ Authorization = "{UPSTREAM_SECRET}" }}\n\n'
        f'[servers.pinned]\nurl = "{url}"\nera = "modern"\n\n'
        f'[servers.wrong]\nurl = "{url}"\nera = "legacy"\n\n'
        f'[servers.stdio-modern]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(SCRIPT))}, "stdio"]\n\n'
        f'[servers.stdio-legacy]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(SCRIPT))}, "stdio"]\n'
        'era = "legacy"\n'
    )
    return base


async def legacy_sdk(base: str, upstream: str) -> None:
    tok = token(upstream)
    tag = f"legacy Python client -> 2026-07-28 upstream ({upstream})"
    asked: list = []

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": "Ada"})

    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tok}"}, timeout=60) as http:
        async with Client(streamable_http_client(f"{base}/mcp/{upstream}", http_client=http), mode="legacy",
                          elicitation_callback=elicit) as client:
            check(client.session.protocol_version == "2025-11-25", f"{tag}: the client holds a 2025-11-25 session",
                  client.session.protocol_version)
            names = [t.name for t in (await client.list_tools()).tools]
            check({"echo", "slow", "ask", "region", "whoami"} <= set(names), f"{tag}: tools/list", names)
            res = await client.call_tool("echo", {"message": "old meets new"})
            check("Echo: old meets new" in text_of(res) and not res.is_error, f"{tag}: tools/call echo", text_of(res))
            progress: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(p)

            res = await client.call_tool("slow", {"steps": 3}, progress_callback=on_progress)
            check(progress == [1, 2, 3] and "done after 3 steps" in text_of(res), f"{tag}: progress relayed in order",
                  (progress, text_of(res)))
            res = await client.call_tool("ask", {})
            check(len(asked) == 1 and "What is your name?" in getattr(asked[0], "message", ""),
                  f"{tag}: the upstream's input_required reaches the client as elicitation/create", asked)
            check("Hello, Ada" in text_of(res), f"{tag}: the answer goes back with the requestState and completes the call",
                  text_of(res))
            who = json.loads(text_of(await client.call_tool("whoami", {})))
            check("elicitation" in (who["clientCapabilities"] or {}),
                  f"{tag}: the client's capabilities from initialize go in _meta", who)
            if upstream.startswith("stdio"):
                check(who["protocolVersion"] == "2026-07-28", f"{tag}: the working child serves 2026-07-28 (never probed itself)", who)
                return
            res = await client.call_tool("region", {"region": "Zürich"})
            check("region Zürich; header =?base64?" in text_of(res) and not res.is_error,
                  f"{tag}: Mcp-Param-Region sent (base64, not ASCII) as the tool's schema asks", text_of(res))
            check(who["protocolVersion"] == "2026-07-28" and who["mcpMethod"] == "tools/call" and who["mcpName"] == "whoami",
                  f"{tag}: the upstream gets 2026-07-28 requests with the routing headers", who)
            expect = UPSTREAM_SECRET if upstream == "probed" else None
            check(who["authorization"] == expect and tok not in json.dumps(who),
                  f"{tag}: the upstream sees the broker's credentials, never the client's token", who)


async def modern_sdk_stdio(base: str) -> None:
    """A 2026-07-28 client in front of the 2026-07-28 stdio upstream."""
    tok = token("stdio-modern")
    tag = "Python SDK probing -> 2026-07-28 stdio upstream"
    asked: list = []

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": "Barbara"})

    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tok}"}, timeout=60) as http:
        async with Client(streamable_http_client(f"{base}/mcp/stdio-modern", http_client=http, terminate_on_close=False),
                          mode="auto", elicitation_callback=elicit) as client:
            check(client.session.protocol_version == "2026-07-28", f"{tag}: 2026-07-28 with the broker", client.session.protocol_version)
            names = [t.name for t in (await client.list_tools()).tools]
            check({"echo", "slow", "ask"} <= set(names), f"{tag}: tools/list", names)
            progress: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(p)

            res = await client.call_tool("slow", {"steps": 3}, progress_callback=on_progress)
            check(progress == [1, 2, 3] and "done after 3 steps" in text_of(res), f"{tag}: progress", (progress, text_of(res)))
            res = await client.call_tool("ask", {})
            check(len(asked) == 1 and "Hello, Barbara" in text_of(res), f"{tag}: the upstream's input_required reaches the client", text_of(res))
            who = json.loads(text_of(await client.call_tool("whoami", {})))
            check(who["protocolVersion"] == "2026-07-28", f"{tag}: the child serves 2026-07-28", who)


async def stdio_pinned_legacy(base: str) -> None:
    tok = token("stdio-legacy")
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tok}"}, timeout=60) as http:
        async with Client(streamable_http_client(f"{base}/mcp/stdio-legacy", http_client=http), mode="legacy") as client:
            who = json.loads(text_of(await client.call_tool("whoami", {})))
            check(who["protocolVersion"] == "2025-11-25",
                  "stdio upstream with era = legacy: relayed in 2025-11-25, the child locked to it", who)


async def main() -> None:
    port = start_upstream()
    base = start_broker(port)
    for upstream in ["probed", "pinned", "stdio-modern"]:
        await legacy_sdk(base, upstream)
    await modern_sdk_stdio(base)
    await stdio_pinned_legacy(base)
    # era = "legacy" on a modern-only upstream: no probe, the 2025-11-25 relay, which the
    # upstream refuses; the client hears about it.
    tok = token("wrong")
    try:
        async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tok}"}, timeout=30) as http:
            async with Client(streamable_http_client(f"{base}/mcp/wrong", http_client=http), mode="legacy") as client:
                await client.list_tools()
        check(False, "era = legacy is honoured: the modern-only upstream refuses the relayed initialize")
    except Exception as e:  # noqa: BLE001
        check(True, "era = legacy is honoured: the modern-only upstream refuses the relayed initialize", e)
    log = (work / "broker.log").read_text()
    probes = [line for line in log.splitlines() if "upstream era found" in line]
    check(len(probes) == 2 and all("Modern" in p for p in probes)
          and any("probed" in p for p in probes) and any("stdio-modern" in p for p in probes),
          "one server/discover probe per upstream without an era setting (HTTP, and stdio on a throwaway child)", probes)
    bridged = [line for line in log.splitlines() if "bridged to a 2026-07-28 upstream" in line]
    check(len(bridged) == 4, "each 2025-11-25 session was bridged (probed, pinned, stdio, the warm one of the modern client)", bridged)


if __name__ == "__main__":
    try:
        anyio.run(main)
    finally:
        finish()
