#!/usr/bin/env bash
# The README's first command: runs the product a person uses, with the demo upstream
# (tests/demo/demo.toml, a tiny Python MCP server).
#
# With a display (DISPLAY or WAYLAND_DISPLAY): installs what is missing (Debian packages
# for the desktop build, via .ci/install-desktop.sh; the UI's npm packages), builds the UI
# and the desktop app (release) and starts it: tray, grants window, native consent.
# Without a display: says so and starts the headless broker, whose consent is an HTML page.
#
#   bash tests/demo/start.sh            # port 7391, data in ~/.local/share/mcp-broker-demo
#   PORT=0 DATA_DIR=/tmp/d bash tests/demo/start.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
port="${PORT:-7391}"
data="${DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mcp-broker-demo}"
config="tests/demo/demo.toml"

need() { command -v "$1" >/dev/null 2>&1; }
for tool in cargo python3; do
  need "$tool" || { echo "start: $tool is needed (Rust from rustup.rs, Python 3 from your OS)" >&2; exit 1; }
done

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  need node || { echo "start: node is needed to build the desktop app's UI" >&2; exit 1; }
  if ! pkg-config --exists webkit2gtk-4.1 ayatana-appindicator3-0.1 2>/dev/null; then
    if need apt-get; then
      echo "start: installing the desktop build's packages (.ci/install-desktop.sh)"
      bash .ci/install-desktop.sh
    else
      echo "start: the desktop build needs WebKitGTK 4.1 and libayatana-appindicator3 (see .ci/install-desktop.sh)" >&2
      exit 1
    fi
  fi
  [ -d ui/node_modules ] || (cd ui && npm ci --no-audit --no-fund)
  (cd ui && npm run build)
  cargo build --release
  echo "start: the desktop app (its window and tray icon), demo upstream at http://127.0.0.1:$port/mcp/demo"
  exec target/release/mcp-broker serve --config "$config" --data-dir "$data" --port "$port"
fi

echo "start: no display (DISPLAY and WAYLAND_DISPLAY are unset): starting the headless broker;"
echo "       consent is an HTML page your browser opens"
cargo build --release --no-default-features
exec target/release/mcp-broker serve --headless --config "$config" --data-dir "$data" --port "$port"
