#!/usr/bin/env bash
# The official conformance suite (@modelcontextprotocol/conformance 0.2.0-alpha.12, server
# scenarios) against server-everything directly and through the broker (its stdio and
# its Streamable HTTP upstream), at the 2026-07-28 and the 2025-11-25 requirement sets.
# Not part of suite.sh (minutes long; needs Node >= 22 and the package):
#   CONFORMANCE="node22 /path/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
#   bash tests/modern/conformance.sh [OUT_DIR]
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../support/acceptance.sh"
OUT="${1:-$(mktemp -d)}"
mkdir -p "$OUT"
: "${CONFORMANCE:?set CONFORMANCE to the conformance CLI command}"
export HOME="$OUT/home"; mkdir -p "$HOME"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
PORT=$RPORT node "$EVERYTHING" streamableHttp > "$OUT/everything.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$RPORT) 2>/dev/null && break; sleep 0.2; done
cat > "$OUT/broker.toml" <<TOML
[servers.every]
command = "$(command -v node)"
args = ["$EVERYTHING", "stdio"]

[servers.remote]
url = "http://127.0.0.1:$RPORT/mcp"
TOML
"$BROKER" serve --headless --config "$OUT/broker.toml" --data-dir "$OUT/data" --port 0 > "$OUT/broker.out" 2> "$OUT/broker.log" & pids+=($!)
for _ in $(seq 100); do grep -q listening "$OUT/broker.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$OUT/broker.out")
relay() {
    local tok; tok=$("$BROKER" tokens create --upstream "$1" --label conformance --config "$OUT/broker.toml" --data-dir "$OUT/data" 2>/dev/null)
    node "$HERE/bearer_relay.mjs" "$BASE/mcp/$1" "$tok" > "$OUT/relay-$1.out" & pids+=($!)
    for _ in $(seq 50); do grep -q relay "$OUT/relay-$1.out" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/^relay //p' "$OUT/relay-$1.out"
}
declare -A TARGET=([direct]="http://127.0.0.1:$RPORT/mcp" [broker-remote]="$(relay remote)" [broker-stdio]="$(relay every)")
for name in direct broker-remote broker-stdio; do
    for rev in 2026-07-28 2025-11-25; do
        dir="$OUT/$name-$rev"
        $CONFORMANCE server --url "${TARGET[$name]}" --requirements "$rev" -o "$dir" --timeout 60000 > "$dir.txt" 2>&1
        printf '%-14s %s  %s\n' "$name" "$rev" "$(grep -E 'Total|passed|failed' "$dir.txt" | tail -3 | tr '\n' ' ')"
    done
done
