# Sourced by the Python suites (tests/connect, tests/modern): finds the broker and the
# acceptance harness's Python (with the `mcp` SDK) and server-everything. Needs HERE set
# to the suite's directory; sets ROOT, BROKER, ACCEPTANCE_DIR, PY, EVERYTHING.
ROOT="$(cd "$HERE/../.." && pwd)"
BROKER="$(realpath "${BROKER:-$ROOT/target/debug/mcp-broker}")"
ACCEPTANCE_DIR="${ACCEPTANCE_DIR:-$ROOT/../shared/acceptance}"
# A read-only harness is set up in a copy (see its setup.sh): use that copy.
if [ ! -x "$ACCEPTANCE_DIR/.venv/bin/python" ] && [ ! -w "$ACCEPTANCE_DIR" ]; then
    ACCEPTANCE_DIR="${ACCEPTANCE_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-broker-acceptance}"
fi
PY="$ACCEPTANCE_DIR/.venv/bin/python"
EVERYTHING="$ACCEPTANCE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
