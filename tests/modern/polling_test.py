"""A 2025-11-25 remote upstream that uses SSE polling (tests/modern/polling_upstream.py,
built on the Python MCP SDK 2.3 server) through the broker, with the real Python SDK
client in the 2025-11-25 era: the upstream closes the call's stream twice before its
response, and the call still completes with all its progress, because the broker resumes
with `Last-Event-ID` (issue 11 point 6).

    python tests/modern/polling_test.py    (tests/modern/suite.sh sets the paths)
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import httpx2

from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
from modern_test import free_port, wait_port  # noqa: E402

BROKER = os.environ["BROKER"]
failures: list[str] = []


def check(ok: bool, what: str, detail: object = "") -> None:
    print(("PASS" if ok else "FAIL") + f" [polling] {what}" + ("" if ok else f" -- {str(detail)[:400]}"), flush=True)
    if not ok:
        failures.append(what)


work = Path(tempfile.mkdtemp(prefix="polling-test-"))
procs: list[subprocess.Popen] = []


def text_of(res) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in res.content)


async def main() -> None:
    port = free_port()
    up_log = open(work / "upstream.log", "w")
    # Unbuffered: its access log (stdout) is read while it still runs.
    procs.append(subprocess.Popen([sys.executable, str(Path(__file__).with_name("polling_upstream.py")), str(port)],
                                  stdout=up_log, stderr=up_log, start_new_session=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    assert wait_port(port), "the polling upstream did not start"
    config = work / "broker.toml"
    # The SDK's server is dual-era: a probe would find it 2026-07-28 and the broker would
    # bridge statelessly, never meeting the 2025-11-25 polling this test is about.
    config.write_text(f'[servers.polling]\nurl = "http://127.0.0.1:{port}/mcp"\nera = "legacy"\n')
    broker = subprocess.Popen([BROKER, "serve", "--headless", "--config", str(config), "--data-dir",
                               str(work / "data"), "--port", "0"], stdout=subprocess.PIPE,
                              stderr=open(work / "broker.log", "w"), text=True)
    procs.append(broker)
    m = re.search(r"listening on (http://\S+)", broker.stdout.readline())
    assert m, "the broker did not start"
    r = subprocess.run([BROKER, "tokens", "create", "--upstream", "polling", "--label", "polling", "--config",
                        str(config), "--data-dir", str(work / "data")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    headers = {"authorization": f"Bearer {r.stdout.strip()}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60)) as http:
        client = Client(streamable_http_client(f"{m.group(1)}/mcp/polling", http_client=http), mode="legacy")
        async with client:
            check(client.session.protocol_version == "2025-11-25", "the client speaks 2025-11-25",
                  client.session.protocol_version)
            progress: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(p)

            with anyio.fail_after(30):
                res = await client.call_tool("poll", {"steps": 3}, progress_callback=on_progress)
            check("polled 3 steps" in text_of(res) and not res.is_error,
                  "a call whose stream the upstream closed twice completes", text_of(res))
            check(progress == [1, 2, 3], "all its progress arrives, in order, across the resumes", progress)
            res = await client.call_tool("echo", {"message": "after polling"})
            check("after polling" in text_of(res), "the session goes on", text_of(res))
    log = (work / "upstream.log").read_text()
    resumed = len(re.findall(r"GET /mcp", log))
    check(resumed >= 2, "the broker resumed with GETs", log[-800:])


try:
    anyio.run(main)
except Exception as e:
    import traceback

    traceback.print_exc()
    check(False, "test run", repr(e))
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
print(f"polling: failures: {failures}\nlogs in {work}" if failures else "polling: all passed")
sys.exit(1 if failures else 0)
