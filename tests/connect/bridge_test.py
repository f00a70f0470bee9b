"""tests/connect: a real stdio MCP client (the Python `mcp` SDK) launches
`mcp-broker connect everything`; run by tests/connect/suite.sh inside a throwaway D-Bus
session with an unlocked gnome-keyring. Prints PASS/FAIL lines; exit 1 on any FAIL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters, types

import checks

BROKER = os.environ["BROKER"]
EVERYTHING = os.environ["EVERYTHING"]
HERE = Path(os.environ["HERE"])
SERVICE = os.environ["MCP_BROKER_KEYCHAIN_SERVICE"]
failures = checks.failures


def check(ok: bool, what: str, detail: object = "") -> None:
    checks.check("connect", ok, what, detail)


work = checks.workdir("connect-test-")
data = work / "data"
config = work / "broker.toml"
decision_file = work / "decision"
node = subprocess.run(["sh", "-c", "command -v node"], capture_output=True, text=True).stdout.strip()
config.write_text(f'[servers.everything]\ncommand = {json.dumps(node)}\nargs = [{json.dumps(EVERYTHING)}, "stdio"]\n')
os.environ["DECISION_FILE"] = str(decision_file)


def consents() -> list[str]:
    return checks.consents(work)


def broker_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROKER, *args, "--data-dir", str(data)], capture_output=True, text=True, timeout=60)


def text_of(res) -> str:
    return " ".join(getattr(c, "text", "") for c in res.content)


# 1. No broker running and --no-start: a clear error and exit 1.
r = subprocess.run([BROKER, "connect", "everything", "--no-start", "--data-dir", str(data)], capture_output=True,
                   text=True, stdin=subprocess.DEVNULL, timeout=30)
check(r.returncode == 1 and "no mcp-broker is running" in r.stderr, "no running broker, --no-start: exit 1 with a clear error",
      (r.returncode, r.stderr))
# 2. No broker running and none can start (an invalid configuration file; a missing one is a first start): the
# bridge starts one, sees it exit, and says why and where its log is, within the bound.
bad_config = work / "invalid.toml"
bad_config.write_text("[servers.everything]\ncommand = 42\n")
t0 = time.monotonic()
r = subprocess.run([BROKER, "connect", "everything", "--config", str(bad_config), "--data-dir", str(data)],
                   capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90)
check(r.returncode == 1 and "exited" in r.stderr and "invalid.toml" in r.stderr and "broker.log" in r.stderr
      and time.monotonic() - t0 < 30, "a broker that cannot start: exit 1 naming the cause and the log",
      (r.returncode, r.stderr, time.monotonic() - t0))

broker_log = open(work / "broker.log", "w")
broker = subprocess.Popen([BROKER, "serve", "--headless", "--config", str(config), "--data-dir", str(data),
                           "--port", "0"], stdout=subprocess.PIPE, stderr=broker_log, text=True)
line = broker.stdout.readline()
check(line.startswith("listening on http://127.0.0.1:"), "broker starts", line)
info = json.loads((data / "broker.json").read_text())
check(info["pid"] == broker.pid and line.strip().endswith(f":{info['port']}"), "broker.json names the broker", info)
r = subprocess.run([BROKER, "connect", "nosuch", "--data-dir", str(data)], capture_output=True, text=True,
                   stdin=subprocess.DEVNULL, timeout=30)
check(r.returncode == 1 and 'has no server named "nosuch"' in r.stderr, "an unknown server name: exit 1 saying so",
      (r.returncode, r.stderr))


def params() -> StdioServerParameters:
    return StdioServerParameters(command=BROKER, args=["connect", "everything", "--data-dir", str(data)],
                                 env=dict(os.environ))


sampled: list[str] = []


async def sampling(context, p: types.CreateMessageRequestParams):
    sampled.append(json.dumps(p.model_dump(mode="json"))[:200])
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="sampled-by-test"),
                                     model="test-model")


def client() -> Client:
    return Client(params(), sampling_callback=sampling, read_timeout_seconds=120)


async def launch_one() -> None:
    async with client() as c:
        names = [t.name for t in (await c.list_tools()).tools]
        check("echo" in names, "tools/list through the bridge", names)
        res = await c.call_tool("echo", {"message": "hello-1"})
        check("hello-1" in text_of(res), "tools/call echo through the bridge", text_of(res))
        check(len(consents()) == 1, "first launch asked for consent once", consents())

        progress: list[float] = []

        async def on_progress(p, total, message):
            progress.append(p)

        res = await c.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 2},
                                progress_callback=on_progress)
        check(len(progress) >= 1 and not bool(getattr(res, "is_error", getattr(res, "isError", False))), "server-to-client notifications (progress) relayed",
              (progress, text_of(res)))
        # The sampling tool is registered after initialization; the list_changed
        # notification arrives on the GET stream.
        # A tool that appears after consent stays hidden until the person allows it
        # (per-tool consent): once the broker has seen it in a tools/list answer, allow it
        # the way a person would from the command line.
        allowed = None
        for _ in range(20):
            names = [t.name for t in (await c.list_tools()).tools]
            check("trigger-sampling-request" not in names, "a tool that appeared after consent is hidden until allowed",
                  names)
            grant_id = json.loads(broker_cli("grants", "list", "--json").stdout)[0]["id"]
            allowed = broker_cli("grants", "tools", str(grant_id), "--allow", "trigger-sampling-request")
            if allowed.returncode == 0:
                break
            await anyio.sleep(0.5)
        check(allowed is not None and allowed.returncode == 0, "the new tool allowed with `grants tools`",
              allowed and allowed.stderr)
        for _ in range(20):
            names = [t.name for t in (await c.list_tools()).tools]
            if "trigger-sampling-request" in names:
                break
            await anyio.sleep(0.5)
        res = await c.call_tool("trigger-sampling-request", {"prompt": "say hi", "maxTokens": 5})
        check(bool(sampled) and "sampled-by-test" in text_of(res),
              "server-to-client request (sampling/createMessage) answered by the client through the bridge",
              (sampled, text_of(res)))


async def launch_two() -> None:
    async with client() as c:
        res = await c.call_tool("echo", {"message": "hello-2"})
        check("hello-2" in text_of(res) and len(consents()) == 1,
              "second launch reuses the stored token with no consent", (text_of(res), consents()))
        listed = json.loads(broker_cli("grants", "list", "--json").stdout)
        ids = [str(g["id"]) for g in listed]
        check(len(ids) >= 1, "grants list shows the bridge's grant", listed)
        for i in ids:
            rv = broker_cli("grants", "revoke", i)
            check(rv.returncode == 0, f"grants revoke {i}", rv.stderr)
        res = await c.call_tool("echo", {"message": "after-revoke"})
        check("after-revoke" in text_of(res) and len(consents()) == 2,
              "after grants revoke the bridge gets consent again (once) and the call succeeds",
              (text_of(res), consents()))
        res = await c.call_tool("echo", {"message": "again"})
        check("again" in text_of(res) and len(consents()) == 2, "no further consent while the new grant is valid",
              consents())
        # Revoked again and the user says no: one consent, then errors, not a browser loop.
        decision_file.write_text("deny")
        for g in json.loads(broker_cli("grants", "list", "--json").stdout):
            broker_cli("grants", "revoke", str(g["id"]))
        for n in range(2):
            try:
                res = await c.call_tool("echo", {"message": "denied"})
                failed = bool(getattr(res, "is_error", getattr(res, "isError", False)))
                detail = text_of(res)
            except Exception as e:  # the SDK raises on a JSON-RPC error
                failed, detail = True, repr(e)
            check(failed and len(consents()) == 3, f"denied consent: call {n + 1} fails, consent asked only once",
                  (detail, consents()))


def keychain_secret() -> str:
    r = subprocess.run(["secret-tool", "search", "--all", "--unlock", "service", SERVICE], capture_output=True,
                       text=True)
    return r.stdout + r.stderr


async def main() -> None:
    await launch_one()
    found = keychain_secret()
    check("connect." in found and "access_token" in found, "tokens are in the OS keychain", found[:300])
    token = ""
    for ln in found.splitlines():
        if ln.startswith("secret = "):
            token = json.loads(ln[len("secret = "):]).get("access_token", "")
    leaked = []
    if token:
        for root in (data, Path(os.environ["HOME"]), work):
            for p in root.rglob("*"):
                if p.is_file() and token.encode() in p.read_bytes():
                    leaked.append(str(p))
    check(bool(token) and not leaked, "the access token is in no plain file", leaked)
    await launch_two()


checks.run_then_stop(main, broker, check)
check(not (data / "broker.json").exists(), "broker.json removed when the broker exits")
print(f"{0 if failures else 1} of 1 connect runs passed; failures: {failures}" if failures else "connect: all passed")
if failures:
    print(f"logs in {work}")
sys.exit(1 if failures else 0)
