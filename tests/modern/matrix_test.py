"""Issue 11's client matrix, in one run: every real client, in both MCP eras, against every
kind of upstream, through ONE broker, with a table of cell -> PASS/FAIL at the end.

Clients (rows):
  py-auto      Python MCP SDK 2.3, default mode (probes server/discover, settles on 2026-07-28)
  py-pinned    Python MCP SDK 2.3 pinned to 2026-07-28
  py-legacy    Python MCP SDK 2.3 in legacy mode (2025-11-25)
  ts-v2-auto   TypeScript SDK v2 (@modelcontextprotocol/client), `auto` mode   } driven by
  ts-1x        TypeScript SDK 1.x (@modelcontextprotocol/sdk, 2025-11-25)      } tests/clients/matrix.mjs
Upstreams (columns):
  stdio        server-everything over stdio (2025-11-25)
  remote       server-everything over Streamable HTTP (2025-11-25)
  modern       tests/modern/modern_upstream.py --modern-only: a 2026-07-28 server on the
               Python SDK that refuses every 2025-11-25 request
Cells: the era the client got, tools/list, tools/call, progress during a call (every
notification, in order), an elicitation in the middle of a call answered by the client
(which must complete the call with the client's answer), and both in ONE call (`survey`:
progress, the question, the answer, progress again, the result). server-everything has
no tool doing both, so that last cell's legacy upstreams are modern_upstream.py pinned to
`era = "legacy"` (stdio-py, remote-py): the same kinds of transport, 2025-11-25 spoken.

    python tests/modern/matrix_test.py    (tests/modern/suite.sh sets the paths)
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

sys.path.insert(0, str(Path(__file__).parent))
from modern_test import NODE, check, failures, finish, free_port, procs, serve, text_of, token, wait_port, work  # noqa: E402

EVERYTHING = os.environ["EVERYTHING"]
HERE = Path(__file__).parent
MODERN, LEGACY = "2026-07-28", "2025-11-25"
CLIENTS = ["py-auto", "py-pinned", "py-legacy", "ts-v2-auto", "ts-1x"]
UPSTREAMS = ["stdio", "remote", "modern"]
OPS = ["era", "tools/list", "tools/call", "progress", "elicitation", "both-in-1-call"]
# The upstream the one-call cell uses for each kind of upstream.
BOTH = {"stdio": "stdio-py", "remote": "remote-py", "modern": "modern"}
# What each client must end up speaking with the broker.
ERA = {"py-auto": MODERN, "py-pinned": MODERN, "py-legacy": LEGACY, "ts-v2-auto": MODERN, "ts-1x": LEGACY}
PY_MODE = {"py-auto": "auto", "py-pinned": MODERN, "py-legacy": "legacy"}
# The three tools the cells use, per upstream: echo, a call with progress, a call that elicits.
TOOLS = {
    "stdio": ("echo", ("trigger-long-running-operation", {"duration": 0.6, "steps": 3}), "trigger-elicitation-request"),
    "remote": ("echo", ("trigger-long-running-operation", {"duration": 0.6, "steps": 3}), "trigger-elicitation-request"),
    "modern": ("echo", ("slow", {"steps": 3}), "ask"),
}
ASKS = {"stdio": "Please provide inputs", "remote": "Please provide inputs", "modern": "What is your name?",
        "survey": "Who is taking the survey?"}

cells: dict[tuple[str, str, str], tuple[bool, str]] = {}


def cell(client: str, upstream: str, op: str, ok: bool, detail: object = "") -> None:
    cells[(client, upstream, op)] = (ok, "" if ok else str(detail)[:300])


def start_upstreams() -> tuple[int, int, int]:
    remote = free_port()
    log = open(work / "remote.log", "w")
    procs.append(subprocess.Popen([NODE, EVERYTHING, "streamableHttp"], env={**os.environ, "PORT": str(remote)},
                                  stdout=log, stderr=log, start_new_session=True))
    modern = free_port()
    log = open(work / "modern-upstream.log", "w")
    procs.append(subprocess.Popen([sys.executable, str(HERE / "modern_upstream.py"), str(modern), "--modern-only"],
                                  stdout=log, stderr=log, start_new_session=True))
    dual = free_port()
    log = open(work / "dual-upstream.log", "w")
    procs.append(subprocess.Popen([sys.executable, str(HERE / "modern_upstream.py"), str(dual)],
                                  stdout=log, stderr=log, start_new_session=True))
    assert wait_port(remote), "server-everything (streamableHttp) did not start"
    assert wait_port(modern), "the modern upstream did not start"
    assert wait_port(dual), "the dual-era upstream did not start"
    return remote, modern, dual


async def py_row(base: str, tokens: dict[str, str], client_name: str, upstream: str) -> None:
    echo, (slow, slow_args), ask = TOOLS[upstream]
    asked: list = []
    name = f"{client_name} on {upstream}"

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": name})

    op = "era"
    try:
        async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tokens[upstream]}"}, timeout=60) as http:
            transport = streamable_http_client(f"{base}/mcp/{upstream}", http_client=http,
                                               terminate_on_close=PY_MODE[client_name] == "legacy")
            async with Client(transport, mode=PY_MODE[client_name], elicitation_callback=elicit) as client:
                got = client.session.protocol_version
                cell(client_name, upstream, op, got == ERA[client_name], got)
                op = "tools/list"
                names = [t.name for t in (await client.list_tools()).tools]
                cell(client_name, upstream, op, {echo, slow, ask} <= set(names), names)
                op = "tools/call"
                res = await client.call_tool(echo, {"message": name})
                cell(client_name, upstream, op, name in text_of(res) and not res.is_error, text_of(res))
                op = "progress"
                progress: list[float] = []

                async def on_progress(p: float, total: float | None, message: str | None) -> None:
                    progress.append(p)

                res = await client.call_tool(slow, slow_args, progress_callback=on_progress)
                cell(client_name, upstream, op, progress == [1, 2, 3] and not res.is_error, (progress, text_of(res)))
                op = "elicitation"
                res = await client.call_tool(ask, {})
                cell(client_name, upstream, op,
                     len(asked) == 1 and ASKS[upstream] in getattr(asked[0], "message", "")
                     and name in text_of(res) and not res.is_error,
                     (asked, text_of(res)))
    except Exception as e:  # noqa: BLE001
        cell(client_name, upstream, op, False, repr(e))
    await py_both(base, tokens, client_name, upstream)


async def py_both(base: str, tokens: dict[str, str], client_name: str, upstream: str) -> None:
    """Progress, an elicitation, progress again, all in one call."""
    target = BOTH[upstream]
    name = f"{client_name} on {target}"
    asked: list = []
    progress: list[float] = []

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": name})

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    try:
        async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tokens[target]}"}, timeout=60) as http:
            transport = streamable_http_client(f"{base}/mcp/{target}", http_client=http,
                                               terminate_on_close=PY_MODE[client_name] == "legacy")
            async with Client(transport, mode=PY_MODE[client_name], elicitation_callback=elicit) as client:
                res = await client.call_tool("survey", {}, progress_callback=on_progress)
                cell(client_name, upstream, "both-in-1-call",
                     progress == [1, 2] and len(asked) == 1 and ASKS["survey"] in getattr(asked[0], "message", "")
                     and f"Thanks, {name}" in text_of(res) and not res.is_error,
                     (progress, asked, text_of(res)))
    except Exception as e:  # noqa: BLE001
        cell(client_name, upstream, "both-in-1-call", False, repr(e))


def ts_rows(base: str, tokens: dict[str, str]) -> None:
    """Runs tests/clients/matrix.mjs; it prints one `CELL client upstream op PASS|FAIL detail` line per cell."""
    env = {**os.environ, "MATRIX_BASE": base, "MATRIX_TOKENS": json.dumps(tokens), "MATRIX_TOOLS": json.dumps(TOOLS),
           "MATRIX_ASKS": json.dumps(ASKS), "MATRIX_BOTH": json.dumps(BOTH)}
    r = subprocess.run([NODE, str(HERE.parent / "clients" / "matrix.mjs")], env=env, capture_output=True, text=True,
                       timeout=120)
    for line in r.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "CELL" and len(parts) >= 5:
            cell(parts[1], parts[2], parts[3], parts[4] == "PASS", parts[5] if len(parts) > 5 else "")
    if r.returncode not in (0, 1) or r.stderr.strip():
        print(f"tests/clients/matrix.mjs exited {r.returncode}: {r.stderr[-1500:]}", flush=True)


def table() -> None:
    width = max(len(c) for c in CLIENTS) + 2
    print()
    print("client x upstream".ljust(width + 8) + "".join(op.ljust(13) for op in OPS))
    for client in CLIENTS:
        for upstream in UPSTREAMS:
            row = f"{client:<{width}}{upstream:<8}"
            for op in OPS:
                ok = cells.get((client, upstream, op))
                row += ("-- missing" if ok is None else "PASS" if ok[0] else "FAIL").ljust(13)
            print(row)
    for (client, upstream, op), (ok, detail) in sorted(cells.items()):
        if not ok:
            print(f"FAIL [matrix] {client} x {upstream}: {op} -- {detail}")
    for client in CLIENTS:
        for upstream in UPSTREAMS:
            for op in OPS:
                ok = cells.get((client, upstream, op))
                if ok is None or not ok[0]:
                    failures.append(f"{client} x {upstream}: {op}")


async def main() -> None:
    started = time.monotonic()
    remote, modern, dual = start_upstreams()
    script = json.dumps(str(HERE / "modern_upstream.py"))
    base, _ = serve(
        f'[servers.stdio]\ncommand = {json.dumps(NODE)}\nargs = [{json.dumps(EVERYTHING)}, "stdio"]\n\n'
        f'[servers.remote]\nurl = "http://127.0.0.1:{remote}/mcp"\n\n'
        f'[servers.modern]\nurl = "http://127.0.0.1:{modern}/mcp"\n\n'
        f'[servers.stdio-py]\ncommand = {json.dumps(sys.executable)}\nargs = [{script}, "stdio"]\nera = "legacy"\n\n'
        f'[servers.remote-py]\nurl = "http://127.0.0.1:{dual}/mcp"\nera = "legacy"\n'
    )
    tokens = {upstream: token(upstream) for upstream in UPSTREAMS + ["stdio-py", "remote-py"]}
    for client in ["py-auto", "py-pinned", "py-legacy"]:
        for upstream in UPSTREAMS:
            await py_row(base, tokens, client, upstream)
    ts_rows(base, tokens)
    table()
    # The cells are what they claim: each upstream was served in the era its column says.
    log = re.sub(r"\x1b\[[0-9;]*m", "", (work / "broker.log").read_text())
    eras = sorted(re.findall(r'upstream era found.*?upstream="([\w-]+)".*?era=(\w+)', log))
    check(eras == [("modern", "Modern"), ("remote", "Legacy"), ("stdio", "Legacy")],
          "[matrix] the probe found stdio and remote 2025-11-25, modern 2026-07-28 (the -py ones are pinned)", eras)
    bridged = set(re.findall(r"bridged to a 2026-07-28 upstream.*?upstream=([\w-]+)", log))
    check(bridged == {"modern"}, "[matrix] only the modern upstream's legacy clients were bridged", bridged)
    print(f"matrix: {sum(ok for ok, _ in cells.values())} of {len(CLIENTS) * len(UPSTREAMS) * len(OPS)} cells pass "
          f"in {time.monotonic() - started:.0f}s", flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    finally:
        finish()
