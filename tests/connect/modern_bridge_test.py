"""tests/connect: 2026-07-28 stdio clients through `mcp-broker connect` (issue 11 point 5).
The Python MCP SDK 2.3 stdio client launches `mcp-broker connect everything --data-dir D`
against a running headless broker whose `everything` server is a 2025-11-25 stdio
server: pinned to 2026-07-28, in its default probing mode ("auto", which sends
`server/discover` first), and pinned to the legacy handshake. Lists and calls tools,
with progress and an elicitation in the middle of a call (an `input_required` round
trip for the modern client). A raw stdio client checks that a modern request carries no
session and that `notifications/cancelled` drops the request's POST. Run by
tests/connect/suite.sh (throwaway D-Bus session with gnome-keyring; consent approved by
approve.py as $BROWSER). Prints PASS/FAIL lines; exit 1 on any FAIL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import ElicitResult

import checks

BROKER = os.environ["BROKER"]
EVERYTHING = os.environ["EVERYTHING"]
V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}
failures = checks.failures


def check(ok: bool, what: str, detail: object = "") -> None:
    checks.check("connect-modern", ok, what, str(detail)[:400])


work = checks.workdir("connect-modern-")
data = work / "data"
config = work / "broker.toml"
node = subprocess.run(["sh", "-c", "command -v node"], capture_output=True, text=True).stdout.strip()
config.write_text(f'[servers.everything]\ncommand = {json.dumps(node)}\nargs = [{json.dumps(EVERYTHING)}, "stdio"]\n')
broker_log = open(work / "broker.log", "w")
broker = subprocess.Popen([BROKER, "serve", "--headless", "--config", str(config), "--data-dir", str(data),
                           "--port", "0"], stdout=subprocess.PIPE, stderr=broker_log, text=True)
line = broker.stdout.readline()
check(line.startswith("listening on http://127.0.0.1:"), "broker starts", line)
bridge_args = ["connect", "everything", "--data-dir", str(data)]


def allow_tool(tool: str) -> None:
    for _ in range(20):
        listed = subprocess.run([BROKER, "grants", "list", "--json", "--data-dir", str(data)], capture_output=True,
                                text=True, timeout=60)
        grants = json.loads(listed.stdout or "[]")
        if grants:
            r = subprocess.run([BROKER, "grants", "tools", str(grants[0]["id"]), "--allow", tool, "--data-dir",
                                str(data)], capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                return
        time.sleep(0.5)
    check(False, f"`grants tools --allow {tool}`", listed.stderr)


def text_of(res) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in res.content)


async def sdk_client(mode: str, expected_version: str) -> None:
    tag = f"mode={mode}"
    asked: list = []

    async def elicit(context, params):  # noqa: ANN001
        asked.append(params)
        return ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True, "email": "ada@example.com"})

    params = StdioServerParameters(command=BROKER, args=bridge_args, env=dict(os.environ))
    async with Client(params, mode=mode, elicitation_callback=elicit, read_timeout_seconds=120) as client:
        check(client.session.protocol_version == expected_version,
              f"{tag}: the SDK speaks {expected_version} through the bridge", client.session.protocol_version)
        names = [t.name for t in (await client.list_tools()).tools]
        check("echo" in names and "trigger-long-running-operation" in names, f"{tag}: tools/list through the bridge",
              names)
        # server-everything registers its elicitation tool once a client that can elicit
        # is there, which is after consent: per-tool consent hides it until a person
        # allows it, here from the command line.
        allow_tool("trigger-elicitation-request")
        for _ in range(20):
            names = [t.name for t in (await client.list_tools(cache_mode="refresh")).tools]
            if "trigger-elicitation-request" in names:
                break
            await anyio.sleep(0.5)
        check("trigger-elicitation-request" in names, f"{tag}: the allowed tool is listed", names)
        res = await client.call_tool("echo", {"message": f"bridged {tag}"})
        check(f"bridged {tag}" in text_of(res) and not res.is_error, f"{tag}: tools/call echo", text_of(res))
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        res = await client.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3},
                                     progress_callback=on_progress)
        check(len(progress) >= 2 and progress == sorted(progress) and not res.is_error,
              f"{tag}: progress relayed in order ({len(progress)} notifications)", (progress, text_of(res)))
        res = await client.call_tool("trigger-elicitation-request", {})
        check(len(asked) == 1 and "Ada Lovelace" in text_of(res) and not res.is_error,
              f"{tag}: an elicitation in the middle of a call is answered and completes it", (asked, text_of(res)))


def raw_bridge() -> None:
    """A modern client written by hand: requests with `_meta`, a cancellation."""
    p = subprocess.Popen([BROKER, *bridge_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=open(work / "raw-bridge.log", "w"), text=True, bufsize=1)

    def send(msg: dict) -> None:
        p.stdin.write(json.dumps(msg) + "\n")
        p.stdin.flush()

    def read_until(pred, secs: float) -> list[dict]:
        got, end = [], time.monotonic() + secs
        while time.monotonic() < end:
            ready = __import__("select").select([p.stdout], [], [], max(0.0, end - time.monotonic()))[0]
            if not ready:
                break
            line = p.stdout.readline()
            if not line:
                break
            m = json.loads(line)
            got.append(m)
            if pred(m):
                break
        return got

    try:
        send({"jsonrpc": "2.0", "id": "d", "method": "server/discover", "params": {"_meta": META}})
        got = read_until(lambda m: m.get("id") == "d", 60)
        disc = got[-1] if got else {}
        versions = (disc.get("result") or {}).get("supportedVersions", [])
        check(V in versions and "tools" in (disc.get("result") or {}).get("capabilities", {}),
              "raw: server/discover answered with the upstream's capabilities", disc)
        # A request without a version header in the body's era: the broker's ladder would
        # refuse a missing or wrong Mcp-Name (-32020); the bridge derives it.
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"message": "raw modern"}, "_meta": META}})
        got = read_until(lambda m: m.get("id") == 2, 30)
        check(got and "raw modern" in json.dumps(got[-1].get("result")), "raw: tools/call with derived Mcp-Name", got)
        # subscriptions/listen stays open on its own POST: the acknowledgement comes first,
        # tagged with the listen id; cancelling it ends it.
        send({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen",
              "params": {"notifications": {"toolsListChanged": True}, "_meta": META}})
        got = read_until(lambda m: m.get("method") == "notifications/subscriptions/acknowledged", 30)
        ack = got[-1] if got else {}
        check(ack.get("method") == "notifications/subscriptions/acknowledged"
              and ack["params"]["_meta"].get("io.modelcontextprotocol/subscriptionId") == "listen-1",
              "raw: subscriptions/listen is acknowledged through the bridge", got)
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "listen-1"}})
        # Cancelled: its POST is dropped; no answer comes, and the next request works.
        send({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
              "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 4, "steps": 4},
                         "_meta": {**META, "progressToken": "p3"}}})
        first = read_until(lambda m: m.get("method") == "notifications/progress", 10)
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}})
        time.sleep(0.3)
        send({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"message": "after cancel"}, "_meta": META}})
        after = read_until(lambda m: False, 6)
        check(any(m.get("method") == "notifications/progress" for m in first), "raw: progress before the cancel", first)
        check(not any(m.get("id") == 3 for m in after), "raw: no answer to the cancelled request", after)
        check(any(m.get("id") == 4 and "after cancel" in json.dumps(m.get("result")) for m in after),
              "raw: the next request is answered", after)
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
        check(p.returncode == 0, "raw: the bridge exits 0 when stdin closes", p.returncode)


async def main() -> None:
    await sdk_client(V, V)
    check(len(checks.consents(work)) == 1, "the first launch asked for consent once", checks.consents(work))
    await sdk_client("auto", V)
    await sdk_client("legacy", "2025-11-25")
    raw_bridge()
    check(len(checks.consents(work)) == 1, "later launches reuse the stored token", checks.consents(work))


checks.run_then_stop(main, broker, check)
print(f"connect-modern: failures: {failures}\nlogs in {work}" if failures else "connect-modern: all passed")
sys.exit(1 if failures else 0)
