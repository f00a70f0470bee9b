"""What the tests in tests/connect share: PASS/FAIL lines, and a throwaway work dir whose
consent log the headless "user" (approve.py, set as $BROWSER) appends to."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import anyio

failures: list[str] = []


def check(tag: str, ok: bool, what: str, detail: object = "") -> None:
    print(("PASS" if ok else "FAIL") + f" [{tag}] {what}" + ("" if ok else f" -- {detail}"), flush=True)
    if not ok:
        failures.append(what)


def workdir(prefix: str) -> Path:
    """A fresh work dir; consents are logged to WORK/consents.log by approve.py."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    here = Path(os.environ["HERE"])
    os.environ["CONSENT_LOG"] = str(work / "consents.log")
    os.environ["BROWSER"] = f"{sys.executable} {here / 'approve.py'}"
    return work


def consents(work: Path) -> list[str]:
    log = work / "consents.log"
    return log.read_text().splitlines() if log.exists() else []


def run_then_stop(main, broker: subprocess.Popen, check) -> None:
    """Runs the async `main` (an exception is one FAIL), then stops the broker with
    SIGTERM as a person or a service manager would."""
    try:
        anyio.run(main)
    except Exception as e:
        traceback.print_exc()
        check(False, "test run", repr(e))
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            broker.kill()
