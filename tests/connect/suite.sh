#!/usr/bin/env bash
# End-to-end tests of `mcp-broker connect`: the Python MCP SDK's stdio client launches the
# bridge against a real broker (bridge_test.py), pinned to 2026-07-28, probing and legacy
# (modern_bridge_test.py), or ten at once with no broker running, as Claude Desktop does
# (many_bridges_test.py), with a real OS keychain (gnome-keyring in its own D-Bus
# session, throwaway HOME) and consent approved headlessly over HTTP.
#   bash tests/connect/suite.sh   (tests/all.sh runs every tests/*/suite.sh)
# Needs: dbus-run-session, gnome-keyring-daemon, secret-tool (.ci/install-keychain.sh),
# node, and /work/shared/acceptance (its .venv with the `mcp` SDK and its node_modules
# with @modelcontextprotocol/server-everything), or ACCEPTANCE_DIR pointing elsewhere.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../support/acceptance.sh"
for need in dbus-run-session gnome-keyring-daemon secret-tool node "$PY" "$BROKER" "$EVERYTHING"; do
    command -v "$need" >/dev/null 2>&1 || [ -e "$need" ] || { echo "tests/connect: missing $need" >&2; exit 1; }
done
export BROKER PY EVERYTHING HERE
exec dbus-run-session -- bash -c '
    set -euo pipefail
    export HOME="$(mktemp -d)"
    trap "rm -rf \"$HOME\"" EXIT
    eval "$(printf %s throwaway-test-pw | gnome-keyring-daemon --unlock --components=secrets)"
    export MCP_BROKER_KEYCHAIN_SERVICE="mcp-broker-connect-test-$$"
    status=0
    "$PY" "$HERE/bridge_test.py" || status=1
    "$PY" "$HERE/modern_bridge_test.py" || status=1
    "$PY" "$HERE/many_bridges_test.py" || status=1
    exit $status
'
