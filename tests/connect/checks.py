"""What the tests in tests/connect share: PASS/FAIL lines, and a throwaway work dir whose
consent log the headless "user" (approve.py, set as $BROWSER) appends to."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

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
