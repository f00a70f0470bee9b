#!/usr/bin/env bash
# MCP 2026-07-28 clients through the broker (tests/modern/modern_test.py): the Python MCP
# SDK 2.3 client, probing and pinned, and the TypeScript SDK v2 client in `auto` mode
# (tests/clients/modern.mjs), against server-everything over stdio and over Streamable
# HTTP (2025-11-25 upstreams); and 2025-11-25 clients (the Python SDK in legacy mode,
# tests/modern/legacy_client_test.py, and the TypeScript SDK 1.x, tests/clients/legacy_modern.mjs)
# against a 2026-07-28-only remote upstream (modern_upstream.py --modern-only); and a
# 2025-11-25 remote upstream that closes its answers for SSE polling (polling_test.py).
# matrix_test.py (with tests/clients/matrix.mjs) runs all five clients against all three
# kinds of upstream through one broker and prints the cell table.
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
status=0
"$PY" "$HERE/modern_test.py" || status=1
# A 2025-11-25 upstream that uses SSE polling (polling_upstream.py), resumed by the broker.
"$PY" "$HERE/polling_test.py" || status=1
# The TypeScript clients need tests/clients/node_modules.
if [ ! -d "$ROOT/tests/clients/node_modules/@modelcontextprotocol/client" ]; then
    # `npm ci` empties node_modules first: through a symlink (a worktree sharing another
    # checkout's copy) that would empty the other checkout's too.
    if [ -L "$ROOT/tests/clients/node_modules" ]; then
        echo "tests/modern: $ROOT/tests/clients/node_modules is a symlink without @modelcontextprotocol/client; run npm ci where it points" >&2
        exit 1
    fi
    (cd "$ROOT/tests/clients" && npm ci --no-audit --no-fund)
fi
# Issue 11's client matrix: every client of both eras x every kind of upstream, one table.
"$PY" "$HERE/matrix_test.py" || status=1
# The TypeScript SDK v2 client in `auto` mode (tests/clients/modern.mjs).
BROKER="$BROKER" node "$ROOT/tests/clients/modern.mjs" || status=1
# 2025-11-25 clients in front of a 2026-07-28-only upstream (the broker holds the session).
"$PY" "$HERE/legacy_client_test.py" || status=1
BROKER="$BROKER" PY="$PY" node "$ROOT/tests/clients/legacy_modern.mjs" || status=1
exit $status
