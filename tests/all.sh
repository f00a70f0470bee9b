#!/usr/bin/env bash
# Runs every test of mcp-broker. Needs what .ci/run installs (Rust, Node, Python, Chromium
# for the acceptance harness). Exit status 0 only if everything passed; the last lines
# are the Rust test runner's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
acceptance=${ACCEPTANCE_DIR:-$repo/../shared/acceptance}
failed=()
step() { printf '\n==== %s\n' "$*"; }
run() { local name=$1; shift; step "$name"; "$@" || failed+=("$name"); }

run "cargo fmt --check" cargo fmt --check
run "cargo check --no-default-features (nothing outside desktop/ imports tauri)" cargo check --no-default-features --all-targets
run "cargo clippy" cargo clippy --no-default-features --all-targets -- -D warnings
step "cargo build --no-default-features"
cargo build --no-default-features || { echo "build failed"; exit 1; }
broker=$repo/target/debug/mcp-broker

step "real clients: demo config and remote upstream (TS SDK)"
if [ ! -d tests/clients/node_modules ]; then (cd tests/clients && npm ci --no-audit --no-fund); fi
run "real clients" env BROKER="$broker" node tests/clients/run.mjs

if [ -x "$acceptance/run.sh" ]; then
  run "acceptance harness (ts-sdk, mcp-remote, python-sdk, deny, probes)" env BROKER="$broker" "$acceptance/run.sh"
else
  echo "acceptance harness not found at $acceptance (set ACCEPTANCE_DIR); skipped"
  failed+=("acceptance harness missing")
fi

# Extra suites register themselves as tests/*/suite.sh (keychain, desktop end to end).
for suite in tests/*/suite.sh; do
  [ -e "$suite" ] || continue
  run "$suite" bash "$suite"
done

step "Rust tests (unit, HTTP, proxy)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-default-features --no-fail-fast || failed+=("rust tests")
else
  cargo test --no-default-features --no-fail-fast || failed+=("rust tests")
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nFAILED: %s\n' "${failed[@]}"
  exit 1
fi
