#!/usr/bin/env bash
# Architecture checks (tests/all.sh runs every tests/*/suite.sh): no import cycle between
# top-level modules, no store access from http/ or desktop/, cli/ and desktop/ apart.
set -euo pipefail
exec python3 "$(dirname "$0")/check.py"
