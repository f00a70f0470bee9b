#!/usr/bin/env bash
# MCP 2026-07-28 clients through the broker (tests/modern/modern_test.py): the Python MCP
# SDK 2.3 client, probing and pinned, against server-everything over stdio and over
# Streamable HTTP (2025-11-25 upstreams).
#   bash tests/modern/suite.sh   (tests/all.sh runs every tests/*/suite.sh)
# Needs node and /work/shared/acceptance (its .venv with `mcp` 2.3 and its node_modules with
# @modelcontextprotocol/server-everything), or ACCEPTANCE_DIR pointing elsewhere.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../support/acceptance.sh"
for need in node "$PY" "$BROKER" "$EVERYTHING"; do
    command -v "$need" >/dev/null 2>&1 || [ -e "$need" ] || { echo "tests/modern: missing $need" >&2; exit 1; }
done
export BROKER EVERYTHING
# The throwaway HOME keeps the broker away from the user's keychain and config.
export HOME="$(mktemp -d)"
trap 'rm -rf "$HOME"' EXIT
exec "$PY" "$HERE/modern_test.py"
