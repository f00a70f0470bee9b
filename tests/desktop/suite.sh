#!/usr/bin/env bash
# The desktop suite for tests/all.sh: builds the UI and the desktop app (default
# features), then runs the end-to-end test three times (revoke in the grants window,
# revoke from the tray, secrets and upstream sign-in in the grants window). Needs what .ci/install-desktop.sh installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
(cd ui && npm ci --no-audit --no-fund && npm run build)
cargo build
APP="$PWD/target/debug/mcp-broker" bash tests/desktop/e2e.sh window tray upstreams
