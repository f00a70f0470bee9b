#!/usr/bin/env bash
# One e2e run inside Xvfb + dbus-run-session (started by e2e.sh): a notification
# monitor, a tray host for the modes that use the tray, tauri-driver, then the test itself.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${RUN_DIR:?}" "${MODE:?}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# The app's login item (start at login) goes here, never into the real ~/.config.
export XDG_CONFIG_HOME="$RUN_DIR/xdg-config"
mkdir -p "$XDG_CONFIG_HOME"

export NOTIFY_LOG="$RUN_DIR/notifications.log"
dbus-monitor --session "type=method_call,interface=org.freedesktop.Notifications,member=Notify" \
  > "$NOTIFY_LOG" 2>&1 &
pids+=($!)

if [ "$MODE" = servers ]; then
  # Where the app looks for Claude Desktop's configuration (ClientApp::user_config_file):
  # a folder of this run, never the real one.
  export XDG_CONFIG_HOME="$RUN_DIR/xdg-config"
  mkdir -p "$XDG_CONFIG_HOME"
fi
if [ "$MODE" = upstreams ] || [ "$MODE" = accounts-oauth ] || [ "$MODE" = claude-desktop ] || [ "$MODE" = servers ]; then
  # A throwaway, unlocked gnome-keyring in this D-Bus session (desktop.md 5a), and a
  # "system browser": for upstreams one that only records the URLs the app asks it to
  # open, for claude-desktop one that follows the waiting page like a browser tab.
  export XDG_DATA_HOME="$RUN_DIR/xdg-data"
  mkdir -p "$XDG_DATA_HOME"
  eval "$(printf %s throwaway-test-pw | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  export MCP_BROKER_KEYCHAIN_SERVICE="mcp-broker-e2e-$$"
  export BROWSER_LOG="$RUN_DIR/browser.log"
  : > "$BROWSER_LOG"
  if [ "$MODE" = upstreams ] || [ "$MODE" = accounts-oauth ]; then
    export BROWSER="$HERE/browser.sh"
  else
    export BROWSER="$HERE/follow_consent.py"
  fi
fi

if [ "$MODE" = tray ] || [ "$MODE" = claude-desktop ] || [ "$MODE" = accounts-oauth ]; then
  trayer --edge bottom --align right --widthtype request --height 32 \
    --transparent false --tint 0x808080 > "$RUN_DIR/trayer.log" 2>&1 &
  pids+=($!)
fi

wd_port=$(free_port)
native_port=$(free_port)
tauri-driver --port "$wd_port" --native-port "$native_port" > "$RUN_DIR/app.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$wd_port/status" >/dev/null 2>&1 && break
  sleep 0.1
done

WEBDRIVER_URL="http://127.0.0.1:$wd_port" node "$HERE/e2e.mjs"
