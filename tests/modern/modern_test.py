"""MCP 2026-07-28 clients through the broker against 2025-11-25 upstreams, with the real
Python MCP SDK client (mcp 2.3): in its default probing mode ("auto") and pinned to
2026-07-28, against server-everything over stdio and over Streamable HTTP (both legacy
servers). Lists and calls tools, with progress and an elicitation in the middle of a
call (the broker parks the upstream call and answers `input_required`). Raw HTTP checks
cover the validation ladder, 405 on GET/DELETE, subscriptions/listen, a forged
requestState, one warm upstream session per grant, and the legacy era still served.

    python tests/modern/modern_test.py    (tests/modern/suite.sh sets the paths)
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

BROKER = os.environ["BROKER"]
EVERYTHING = os.environ["EVERYTHING"]
NODE = subprocess.run(["sh", "-c", "command -v node"], capture_output=True, text=True).stdout.strip()
V = "2026-07-28"
failures: list[str] = []


def check(ok: bool, what: str, detail: object = "") -> None:
    print(("PASS" if ok else "FAIL") + f" [modern] {what}" + ("" if ok else f" -- {str(detail)[:400]}"), flush=True)
    if not ok:
        failures.append(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, secs: float = 20) -> bool:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def meta(caps: dict | None = None) -> dict:
    return {"io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": caps or {}}


work = Path(tempfile.mkdtemp(prefix="modern-test-"))
procs: list[subprocess.Popen] = []


def start_remote() -> int:
    port = free_port()
    log = open(work / "remote.log", "w")
    p = subprocess.Popen([NODE, EVERYTHING, "streamableHttp"], env={**os.environ, "PORT": str(port)},
                         stdout=log, stderr=log, start_new_session=True)
    procs.append(p)
    assert wait_port(port), "server-everything (streamableHttp) did not start"
    return port


def start_modern_upstream() -> int:
    port = free_port()
    log = open(work / "modern-upstream.log", "w")
    p = subprocess.Popen([sys.executable, str(Path(__file__).with_name("modern_upstream.py")), str(port)],
                         stdout=log, stderr=log, start_new_session=True)
    procs.append(p)
    assert wait_port(port), "the modern upstream did not start"
    return port


def start_broker(remote_port: int, modern_port: int) -> tuple[str, subprocess.Popen]:
    return serve(
        f'[servers.every]\ncommand = {json.dumps(NODE)}\nargs = [{json.dumps(EVERYTHING)}, "stdio"]\n\n'
        f'[servers.remote]\nurl = "http://127.0.0.1:{remote_port}/mcp"\n\n'
        f'[servers.modern]\nurl = "http://127.0.0.1:{modern_port}/mcp"\n'
    )


def serve(config_text: str) -> tuple[str, subprocess.Popen]:
    """The broker with this configuration, in `work`; its base URL."""
    config = work / "broker.toml"
    config.write_text(config_text)
    log = open(work / "broker.log", "w")
    p = subprocess.Popen([BROKER, "serve", "--headless", "--config", str(config), "--data-dir", str(work / "data"),
                          "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True)
    procs.append(p)
    line = p.stdout.readline() if p.stdout else ""
    m = re.search(r"listening on (http://\S+)", line)
    assert m, f"broker did not start: {line!r}"
    return m.group(1), p


def token(upstream: str) -> str:
    r = subprocess.run([BROKER, "tokens", "create", "--upstream", upstream, "--label", f"modern-{upstream}",
                        "--config", str(work / "broker.toml"), "--data-dir", str(work / "data")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    grants[r.stdout.strip()] = re.search(r"grant (\d+)", r.stderr).group(1)
    return r.stdout.strip()


grants: dict[str, str] = {}


def text_of(res) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in res.content)


async def sdk_client(url: str, tok: str, upstream: str, mode: str) -> None:
    tag = f"{upstream}, mode={mode}"
    asked: list = []

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True, "email": "ada@example.com"})

    headers = {"authorization": f"Bearer {tok}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60)) as http:
        client = Client(streamable_http_client(url, http_client=http, terminate_on_close=False), mode=mode,
                        elicitation_callback=elicit)
        async with client:
            check(client.session.protocol_version == V, f"{tag}: the SDK speaks {V} with the broker",
                  client.session.protocol_version)
            tools = await client.list_tools()
            names = [t.name for t in tools.tools]
            check("echo" in names and "trigger-elicitation-request" in names,
                  f"{tag}: tools/list through the broker lists the upstream's tools", names)
            res = await client.call_tool("echo", {"message": f"modern {tag}"})
            check(f"modern {tag}" in text_of(res) and not res.is_error, f"{tag}: tools/call echo", text_of(res))
            progress: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(p)

            res = await client.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 4},
                                         progress_callback=on_progress)
            check(len(progress) >= 3 and progress == sorted(progress) and not res.is_error,
                  f"{tag}: progress arrives on the call's own stream, in order ({len(progress)} notifications)",
                  (progress, text_of(res)))
            res = await client.call_tool("trigger-elicitation-request", {})
            check(len(asked) == 1 and "Please provide inputs" in getattr(asked[0], "message", ""),
                  f"{tag}: the upstream's elicitation mid-call reaches the client as input_required", asked)
            check("Ada Lovelace" in text_of(res) and not res.is_error,
                  f"{tag}: the client's answer completes the parked upstream call", text_of(res)[:300])


async def raw_checks(base: str, tok: str, upstream: str) -> None:
    url = f"{base}/mcp/{upstream}"
    h = {"authorization": f"Bearer {tok}", "content-type": "application/json",
         "accept": "application/json, text/event-stream"}

    def hdr(method: str, version: str = V, **extra: str) -> dict:
        return {**h, "mcp-protocol-version": version, "mcp-method": method, **extra}

    async with httpx2.AsyncClient(timeout=30) as http:
        async def post(headers: dict, body: dict):
            return await http.post(url, headers=headers, content=json.dumps(body))

        body = {"jsonrpc": "2.0", "id": 11, "method": "tools/list", "params": {"_meta": {**meta(), "io.modelcontextprotocol/protocolVersion": "v999.0.0"}}}
        r = await post(hdr("tools/list"), body)
        check(r.status_code == 400 and r.json()["error"]["code"] == -32020 and r.json()["id"] == 11,
              f"{upstream}: header {V} with body v999 -> 400/-32020 with the request id", r.text)
        r = await post(hdr("tools/list", "v999.0.0"), body)
        err = r.json().get("error", {})
        check(r.status_code == 400 and err.get("code") == -32022 and err.get("data") == {"supported": [V], "requested": "v999.0.0"},
              f"{upstream}: unsupported version -> 400/-32022 with supported and requested", r.text)
        r = await post(hdr("tools/list"), {"jsonrpc": "2.0", "id": 12, "method": "tools/list", "params": {}})
        check(r.status_code == 400 and r.json()["error"]["code"] == -32602, f"{upstream}: no _meta -> 400/-32602", r.text)
        for m in ["initialize", "ping", "logging/setLevel", "resources/subscribe", "nope/nope"]:
            r = await post(hdr(m), {"jsonrpc": "2.0", "id": 13, "method": m, "params": {"_meta": meta()}})
            check(r.status_code == 404 and r.json()["error"]["code"] == -32601, f"{upstream}: {m} with the modern envelope -> 404/-32601", r.text)
        call = {"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}, "_meta": meta()}}
        r = await post(hdr("tools/call"), call)
        check(r.status_code == 400 and r.json()["error"]["code"] == -32020, f"{upstream}: tools/call without Mcp-Name -> 400/-32020", r.text)
        r = await post(hdr("tools/call", **{"mcp-name": "other"}), call)
        check(r.status_code == 400 and r.json()["error"]["code"] == -32020, f"{upstream}: Mcp-Name not matching the body -> 400/-32020", r.text)
        # Undeclared capability: the upstream asks for elicitation, the request declared none.
        elicit = {"jsonrpc": "2.0", "id": 15, "method": "tools/call", "params": {"name": "trigger-elicitation-request", "arguments": {}, "_meta": meta()}}
        r = await post(hdr("tools/call", **{"mcp-name": "trigger-elicitation-request"}), elicit)
        err = r.json().get("error", {}) if r.headers.get("content-type", "").startswith("application/json") else {}
        check(r.status_code == 400 and err.get("code") == -32021 and err.get("data") == {"requiredCapabilities": {"elicitation": {}}},
              f"{upstream}: an elicitation the request did not declare -> 400/-32021 with requiredCapabilities", r.text)
        # A forged or replayed requestState is refused.
        elicit["params"]["_meta"] = meta({"elicitation": {}})
        r = await post(hdr("tools/call", **{"mcp-name": "trigger-elicitation-request"}), elicit)
        state = r.json()["result"].get("requestState", "")
        check(r.json()["result"].get("resultType") == "input_required" and state,
              f"{upstream}: input_required carries a requestState", r.text)
        forged = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
        retry = {**elicit, "id": 16, "params": {**elicit["params"], "requestState": forged, "inputResponses": {"input": {"action": "decline"}}}}
        r = await post(hdr("tools/call", **{"mcp-name": "trigger-elicitation-request"}), retry)
        check(r.status_code == 400 and r.json()["error"]["code"] == -32602, f"{upstream}: a forged requestState -> 400/-32602", r.text)
        retry["params"]["requestState"] = state
        r = await post(hdr("tools/call", **{"mcp-name": "trigger-elicitation-request"}), retry)
        check(r.status_code == 200 and r.json()["result"].get("resultType") == "complete" and r.json()["id"] == 16,
              f"{upstream}: the genuine requestState resumes the parked call (declined)", r.text[:300])
        r = await post(hdr("tools/call", **{"mcp-name": "trigger-elicitation-request"}), {**retry, "id": 17})
        check(r.status_code == 400, f"{upstream}: the same requestState twice -> refused (one-time use)", r.text[:300])
        # Results describe the broker's view.
        r = await post(hdr("tools/list"), {"jsonrpc": "2.0", "id": 18, "method": "tools/list", "params": {"_meta": meta()}})
        res = r.json()["result"]
        check(res.get("resultType") == "complete" and res.get("ttlMs") == 0 and res.get("cacheScope") == "private"
              and "io.modelcontextprotocol/serverInfo" in res.get("_meta", {}),
              f"{upstream}: tools/list carries resultType, ttlMs, cacheScope and serverInfo", list(res))
        # resources §Error Handling: not found is -32602 with the URI in `data`, whatever the
        # 2025-11-25 upstream said (-32002, or -32602 without it).
        gone = "demo://resource/nowhere"
        r = await post(hdr("resources/read", **{"mcp-name": gone}),
                       {"jsonrpc": "2.0", "id": 22, "method": "resources/read", "params": {"uri": gone, "_meta": meta()}})
        err = r.json().get("error", {})
        check(err.get("code") == -32602 and (err.get("data") or {}).get("uri") == gone,
              f"{upstream}: resources/read of a missing resource -> -32602 with data.uri", r.text)
        r = await post(hdr("server/discover"), {"jsonrpc": "2.0", "id": 19, "method": "server/discover", "params": {"_meta": meta()}})
        d = r.json()["result"]
        check(d.get("supportedVersions") == [V] and d["capabilities"].get("tools") is not None and "tasks" not in d["capabilities"],
              f"{upstream}: server/discover reports the upstream's capabilities", d.get("capabilities"))
        # subscriptions/listen: the acknowledgement first, tagged with the listen id.
        listen = {"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen",
                  "params": {"notifications": {"toolsListChanged": True, "promptsListChanged": True}, "_meta": meta()}}
        async with http.stream("POST", url, headers=hdr("subscriptions/listen"), content=json.dumps(listen)) as s:
            first = None
            async for line in s.aiter_lines():
                if line.startswith("data:"):
                    first = json.loads(line[5:])
                    break
        check(first is not None and first.get("method") == "notifications/subscriptions/acknowledged"
              and first["params"]["_meta"].get("io.modelcontextprotocol/subscriptionId") == "listen-1"
              and first["params"]["notifications"].get("toolsListChanged") is True,
              f"{upstream}: subscriptions/listen is acknowledged first, tagged with the listen id", first)
        # Resource updates reach a listener that subscribed, tagged with its listen id.
        uri = "demo://resource/dynamic/text/1"
        listen = {"jsonrpc": "2.0", "id": 77, "method": "subscriptions/listen",
                  "params": {"notifications": {"resourceSubscriptions": [uri]}, "_meta": meta()}}
        toggle = {"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"name": "toggle-subscriber-updates", "arguments": {}, "_meta": meta()}}
        updated = None
        async with http.stream("POST", url, headers=hdr("subscriptions/listen"), content=json.dumps(listen)) as s:
            lines = s.aiter_lines()
            with anyio.move_on_after(15):
                async for line in lines:
                    if not line.startswith("data:"):
                        continue
                    ev = json.loads(line[5:])
                    if ev.get("method") == "notifications/subscriptions/acknowledged":
                        await post(hdr("tools/call", **{"mcp-name": "toggle-subscriber-updates"}), toggle)
                    elif ev.get("method") == "notifications/resources/updated":
                        updated = ev
                        break
        await post(hdr("tools/call", **{"mcp-name": "toggle-subscriber-updates"}), {**toggle, "id": 22})
        check(updated is not None and updated["params"].get("uri") == uri
              and updated["params"]["_meta"].get("io.modelcontextprotocol/subscriptionId") == 77,
              f"{upstream}: a subscribed resource's update reaches the listener, tagged with the listen id", updated)
        # No GET stream, no DELETE without a legacy session.
        r = await http.get(url, headers={"authorization": h["authorization"], "accept": "text/event-stream"})
        check(r.status_code == 405, f"{upstream}: GET without a session -> 405", r.status_code)
        r = await http.delete(url, headers={"authorization": h["authorization"]})
        check(r.status_code == 405, f"{upstream}: DELETE without a session -> 405", r.status_code)
        # Closing the response cancels the upstream call (the broker tells the upstream).
        long = {"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {"name": "trigger-long-running-operation",
                "arguments": {"duration": 30, "steps": 30}, "_meta": {**meta(), "progressToken": "p20"}}}
        async with http.stream("POST", url, headers=hdr("tools/call", **{"mcp-name": "trigger-long-running-operation"}),
                               content=json.dumps(long)) as s:
            async for line in s.aiter_lines():
                if line.startswith("data:"):
                    ev = json.loads(line[5:])
                    check(ev.get("params", {}).get("progressToken") == "p20", f"{upstream}: progress carries the client's own token", ev)
                    break


async def legacy_still_served(url: str, tok: str, upstream: str) -> None:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tok}"}, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            check(client.session.protocol_version != V, f"{upstream}: a legacy client still gets a 2025 session", client.session.protocol_version)
            res = await client.call_tool("echo", {"message": "legacy"})
            check("legacy" in text_of(res), f"{upstream}: legacy tools/call works next to modern ones", text_of(res))


async def modern_upstream(base: str, tok: str) -> None:
    """A 2026-07-28 remote upstream: the broker finds its era and passes requests through."""
    url = f"{base}/mcp/modern"
    asked: list = []

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": "Alan"})

    for mode in ["auto", V]:
        tag = f"modern upstream, mode={mode}"
        async with httpx2.AsyncClient(headers={"authorization": f"Bearer {tok}"}, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http, terminate_on_close=False), mode=mode,
                              elicitation_callback=elicit) as client:
                check(client.session.protocol_version == V, f"{tag}: {V} end to end", client.session.protocol_version)
                names = [t.name for t in (await client.list_tools()).tools]
                check({"echo", "slow", "ask"} <= set(names), f"{tag}: tools/list passes through", names)
                res = await client.call_tool("echo", {"message": "m"})
                check("Echo: m" in text_of(res), f"{tag}: tools/call echo", text_of(res))
                progress: list[float] = []

                async def on_progress(p: float, total: float | None, message: str | None) -> None:
                    progress.append(p)

                res = await client.call_tool("slow", {"steps": 3}, progress_callback=on_progress)
                check(progress == [1, 2, 3] and "done" in text_of(res), f"{tag}: progress streams through", progress)
                res = await client.call_tool("ask", {})
                check("Hello, Alan" in text_of(res), f"{tag}: the upstream's input_required reaches the client and its retry completes", text_of(res))
    async with httpx2.AsyncClient(timeout=30) as http:
        h = {"authorization": f"Bearer {tok}", "content-type": "application/json", "accept": "application/json, text/event-stream",
             "mcp-protocol-version": V, "mcp-method": "tools/call", "mcp-name": "nope"}
        r = await http.post(url, headers=h, content=json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                            "params": {"name": "nope", "arguments": {}, "_meta": meta()}}))
        check(r.status_code in (200, 400, 404) and r.json()["id"] == 5, "modern upstream: its own answer comes back with its status", (r.status_code, r.text))
    log = (work / "broker.log").read_text()
    probes = [line for line in log.splitlines() if "upstream era found" in line and '"modern"' in line]
    check(len(probes) == 1 and "Modern" in probes[0], "the broker found the upstream's era with one server/discover probe", probes)


async def main() -> None:
    remote_port = start_remote()
    modern_port = start_modern_upstream()
    base, broker = start_broker(remote_port, modern_port)
    await modern_upstream(base, token("modern"))
    for upstream in ["every", "remote"]:
        tok = token(upstream)
        url = f"{base}/mcp/{upstream}"
        for mode in ["auto", V]:
            await sdk_client(url, tok, upstream, mode)
        await raw_checks(base, tok, upstream)
        await legacy_still_served(url, tok, upstream)
    await anyio.sleep(1)
    log = (work / "broker.log").read_text()
    for upstream in ["every", "remote"]:
        opened = sum(1 for line in log.splitlines() if "warm legacy session open" in line and re.search(rf"\b{upstream}\b", line))
        check(opened == 1, f"{upstream}: one warm upstream session (one initialize) served every modern request of the grant", opened)
    cancelled = [line for line in log.splitlines() if "went away; cancelled the upstream call" in line]
    check(len(cancelled) >= 2, "closing a call's stream cancels the upstream call (stdio and remote)", cancelled)
    # Revoking the grant ends its warm session: an open listen ends with the listen result.
    tok = token("every")
    url = f"{base}/mcp/every"
    h = {"authorization": f"Bearer {tok}", "content-type": "application/json", "accept": "application/json, text/event-stream",
         "mcp-protocol-version": V, "mcp-method": "subscriptions/listen"}
    listen = {"jsonrpc": "2.0", "id": 99, "method": "subscriptions/listen", "params": {"notifications": {"toolsListChanged": True}, "_meta": meta()}}
    events: list[dict] = []
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("POST", url, headers=h, content=json.dumps(listen)) as s:
            with anyio.move_on_after(20):
                async for line in s.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    events.append(json.loads(line[5:]))
                    if len(events) == 1:
                        subprocess.run([BROKER, "grants", "revoke", grants[tok], "--data-dir", str(work / "data")],
                                       capture_output=True, timeout=60)
    last = events[-1] if events else {}
    changed = [e for e in events if e.get("method") == "notifications/tools/list_changed"]
    check(all(e["params"]["_meta"].get("io.modelcontextprotocol/subscriptionId") == 99 for e in changed),
          f"the upstream's tools/list_changed reach the listener, tagged ({len(changed)} seen)", changed)
    check(last.get("id") == 99 and last.get("result", {}).get("resultType") == "complete"
          and last["result"]["_meta"].get("io.modelcontextprotocol/subscriptionId") == 99,
          "when the warm session ends (grant revoked), an open listen ends with the listen result", events)
    broker.send_signal(signal.SIGTERM)


def finish() -> None:
    """Stops what the test started, prints the verdict and exits with it."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM) if p.args[0] in (NODE, sys.executable) else p.terminate()
        except Exception:  # noqa: BLE001
            pass
    print(f"{'FAILED' if failures else 'OK'}: {len(failures)} failure(s); work dir {work}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    try:
        anyio.run(main)
    finally:
        finish()
