#!/usr/bin/env bash
# Desktop end-to-end test: the real app under Xvfb, in its own D-Bus session, driven
# through tauri-driver + WebKitWebDriver, with a real MCP client (TypeScript SDK).
#
#   tests/desktop/e2e.sh            # all runs: window, tray, upstreams
#   tests/desktop/e2e.sh window     # revoke in the grants window (one run)
#   tests/desktop/e2e.sh tray       # revoke from the tray menu
#   tests/desktop/e2e.sh upstreams  # secrets and upstream sign-in, real gnome-keyring
#   tests/desktop/e2e.sh claude-desktop  # Python SDK stdio client -> mcp-broker connect ->
#                                   # this app -> native consent; revoke from the tray
#   tests/desktop/e2e.sh servers    # first start with no config: add a server with a secret
#                                   # in the window, a client uses it; import from Claude Desktop
#   tests/desktop/e2e.sh tools      # per-tool consent, the approval window, a changed
#                                   # tool's diff in the grants window
#   tests/desktop/e2e.sh activity   # real calls, then the grant's detail view (activity log)
#   tests/desktop/e2e.sh accounts   # two accounts on one upstream: the choice at consent,
#                                   # the grants window showing and switching it
#   tests/desktop/e2e.sh accounts-oauth  # a remote upstream (a second broker) whose two
#                                   # accounts sign in with OAuth: Sign in / Sign out per
#                                   # account, the account in the tray, one account's
#                                   # sign-out failing only its grants, with a notification
#
# Needs: a desktop build (`cargo build`; APP overrides target/debug/mcp-broker), the
# packages from .ci/install-desktop.sh, tauri-driver, and a node_modules with
# @modelcontextprotocol/sdk and @modelcontextprotocol/server-everything (MCP_NODE_MODULES,
# default tests/clients/node_modules). Screenshots and logs go to RUN_DIR
# (default target/desktop-e2e/<timestamp>/<mode>/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export APP="${APP:-$ROOT/target/debug/mcp-broker}"
# The real-client tests' node_modules (tests/clients, `npm ci` there) has both packages.
if [ -z "${MCP_NODE_MODULES:-}" ]; then
  MCP_NODE_MODULES="$ROOT/tests/clients/node_modules"
  [ -d "$MCP_NODE_MODULES/@modelcontextprotocol/sdk" ] || MCP_NODE_MODULES="$ROOT/../shared/acceptance/node_modules"
fi
export MCP_NODE_MODULES
RUN_ROOT="${RUN_DIR:-$ROOT/target/desktop-e2e/$(date +%Y%m%d-%H%M%S)}"
MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(window tray upstreams claude-desktop servers tools activity accounts accounts-oauth)
# The Python MCP SDK (claude-desktop mode) comes from the acceptance harness's venv.
export PY="${PY:-$ROOT/../shared/acceptance/.venv/bin/python}"

missing=()
for tool in xvfb-run dbus-run-session dbus-monitor tauri-driver WebKitWebDriver trayer xdotool import node \
    gnome-keyring-daemon secret-tool gdbus; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x "$APP" ] || missing+=("$APP (run cargo build)")
# A --no-default-features build (cargo test --no-default-features makes one) has no app.
if [ -x "$APP" ] && ! grep -qa decide_consent "$APP"; then
  missing+=("a desktop build at $APP (it is headless-only; run cargo build)")
fi
[ -d "$MCP_NODE_MODULES/@modelcontextprotocol/sdk" ] || missing+=("$MCP_NODE_MODULES/@modelcontextprotocol/sdk")
if [ ${#missing[@]} -ne 0 ]; then
  echo "desktop e2e: missing: ${missing[*]} (see .ci/install-desktop.sh)" >&2
  exit 2
fi

status=0
for mode in "${MODES[@]}"; do
  case "$mode" in window|tray|upstreams|claude-desktop|servers|tools|activity|accounts|accounts-oauth) ;; *) echo "unknown mode: $mode (window|tray|upstreams|claude-desktop|servers|tools|activity|accounts|accounts-oauth)" >&2; exit 2 ;; esac
  run="$RUN_ROOT/$mode"
  mkdir -p "$run"
  echo "desktop e2e ($mode): run folder $run"
  if RUN_DIR="$run" MODE="$mode" xvfb-run -a -s "-screen 0 1024x768x24 -nolisten tcp" \
      dbus-run-session -- bash "$ROOT/tests/desktop/session.sh"; then
    echo "desktop e2e ($mode): passed"
  else
    echo "desktop e2e ($mode): FAILED (logs in $run)"
    status=1
  fi
done
exit $status
