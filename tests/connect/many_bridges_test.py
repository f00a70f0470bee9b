"""tests/connect, Claude Desktop's start: with no broker running, ten stdio clients (the
Python `mcp` SDK) launch `mcp-broker connect demo` at once, as Claude Desktop does when it
opens. Exactly one broker process must result (started detached by one of the bridges,
logging to DATA_DIR/logs/broker.log); after consent, all ten list the demo server's tools;
the broker outlives the bridges. Run by tests/connect/suite.sh (throwaway D-Bus session and
keychain). Prints PASS/FAIL lines; exit 1 on any FAIL."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

import checks

BROKER = os.environ["BROKER"]
HERE = Path(os.environ["HERE"])
DEMO = HERE.parent / "demo" / "demo_server.py"
BRIDGES = 10
failures = checks.failures


def check(ok: bool, what: str, detail: object = "") -> None:
    checks.check("many bridges", ok, what, detail)


work = checks.workdir("many-bridges-")
data = work / "data"
# The broker a bridge starts reads the user's usual configuration file.
os.environ["XDG_CONFIG_HOME"] = str(work / "config")
(work / "config" / "mcp-broker").mkdir(parents=True)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
(work / "config" / "mcp-broker" / "config.toml").write_text(
    f"[broker]\nport = {port}\n\n[servers.demo]\ncommand = {json.dumps(sys.executable)}\n"
    f"args = [{json.dumps(str(DEMO))}]\n")
# No display: the headless broker is the one to start.
for v in ("DISPLAY", "WAYLAND_DISPLAY"):
    os.environ.pop(v, None)


def serve_processes(data_dir: Path) -> dict[int, int]:
    """Every process whose command line is `mcp-broker serve ... DATA_DIR`, with its parent."""
    found = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"serve" in argv and str(data_dir).encode() in argv:
            found[int(p.name)] = ppid
    return found


class Watch:
    """Every broker process started for a data dir while it watches (every 50 ms)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.seen, self.on = data_dir, {}, True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while self.on:
            self.seen.update(serve_processes(self.data_dir))
            time.sleep(0.05)

    def started(self) -> set[int]:
        self.on = False
        self.thread.join()
        # A child the broker forks for an upstream server shows the broker's command line
        # until it execs: not a broker.
        return {pid for pid, ppid in self.seen.items() if ppid not in self.seen}


def brokers(data_dir: Path) -> set[int]:
    return set(serve_processes(data_dir))


def stop(data_dir: Path) -> bool:
    """SIGTERM to the brokers of data_dir; whether they ended and removed broker.json."""
    for pid in brokers(data_dir):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while brokers(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not brokers(data_dir) and not (data_dir / "broker.json").exists()


check(not brokers(data), "no broker runs before the bridges start")
watch = Watch(data)
listed: dict[int, list[str]] = {}


async def bridge(i: int) -> None:
    params = StdioServerParameters(command=BROKER, args=["connect", "demo", "--data-dir", str(data)],
                                   env=dict(os.environ))
    try:
        async with Client(params, read_timeout_seconds=120) as c:
            listed[i] = [t.name for t in (await c.list_tools()).tools]
    except Exception as e:  # noqa: BLE001 - reported as a failure below
        listed[i] = [f"error: {e!r}"]


async def main() -> None:
    t0 = time.monotonic()
    with anyio.fail_after(180):
        async with anyio.create_task_group() as tg:
            for i in range(BRIDGES):
                tg.start_soon(bridge, i)
    print(f"  ten bridges connected and listed tools in {time.monotonic() - t0:.1f} s", flush=True)


try:
    anyio.run(main)
except Exception as e:
    check(False, "test run", repr(e))
started = watch.started()
ok = [i for i, names in listed.items() if "echo" in names]
check(len(ok) == BRIDGES, f"all {BRIDGES} bridges list the demo tools", listed)
running = brokers(data)
check(len(started) == 1 and running == started, "exactly one broker process was ever started",
      (watch.seen, sorted(running)))
info = json.loads((data / "broker.json").read_text()) if (data / "broker.json").exists() else {}
check(running == {info.get("pid")} and info.get("port") == port,
      "broker.json names that broker, on the configured port; it outlives the bridges", (info, sorted(running)))
consents = checks.consents(work)
check(len(consents) == BRIDGES and all(c.startswith("approve 200") for c in consents),
      "each bridge asked for consent once and got it", consents)
log = data / "logs" / "broker.log"
check(log.exists() and "listening on http://127.0.0.1:" in log.read_text(), "the broker logs to DATA_DIR/logs/broker.log",
      log.read_text()[-500:] if log.exists() else "no log")
check(stop(data), "SIGTERM ends it and removes broker.json")

# A bridge killed while the broker it started is still starting (Claude Desktop quitting
# at that moment): the broker holds the start lock, so the next bridge waits for that
# broker instead of starting a second one.
data2 = work / "data2"
watch = Watch(data2)
first = subprocess.Popen([BROKER, "connect", "demo", "--data-dir", str(data2)], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 30
while not brokers(data2) and time.monotonic() < deadline:
    time.sleep(0.005)
first.kill()
first.wait()
early = not (data2 / "broker.json").exists()
second = subprocess.run([BROKER, "connect", "demo", "--data-dir", str(data2)], input="", capture_output=True,
                        text=True, timeout=120)
started = watch.started()
check(second.returncode == 0 and len(started) == 1 and brokers(data2) == started,
      "a bridge killed while its broker starts: the next bridge uses that broker, no second one",
      (second.returncode, second.stderr[-500:], watch.seen, early))
print(f"  (the first bridge was killed {'before' if early else 'after'} its broker was ready)", flush=True)
check(stop(data2), "that broker ends on SIGTERM too")
print("many bridges: all passed" if not failures else f"many bridges: failures: {failures}; logs in {work}")
sys.exit(1 if failures else 0)
