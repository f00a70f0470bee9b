#!/usr/bin/env bash
# The desktop suite for tests/all.sh: builds the UI and the desktop app (default
# features), then runs the end-to-end test four times (revoke in the grants window,
# revoke from the tray, secrets and upstream sign-in in the grants window, and Claude
# Desktop's path: stdio bridge -> this app -> native consent, a first start with no
# configuration: servers added and imported in the window, per-tool consent with the
# approval window and a changed tool's diff, a grant's activity view, and an upstream
# with two accounts: the choice at consent and a switch in the grants window, and a remote
# upstream whose two accounts sign in with OAuth: per-account Sign in / Sign out, the
# account in the tray, one account's sign-out failing only its grants). Needs what
# .ci/install-desktop.sh and .ci/install-keychain.sh install.
set -euo pipefail
cd "$(dirname "$0")/../.."
(cd ui && npm ci --no-audit --no-fund && npm run build)
# The desktop code only compiles with the UI built, so its lints run here.
cargo clippy --all-targets -- -D warnings
cargo build
APP="$PWD/target/debug/mcp-broker" bash tests/desktop/e2e.sh window tray upstreams claude-desktop servers tools activity accounts accounts-oauth
