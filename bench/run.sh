#!/usr/bin/env bash
# Builds the release binary and the bare-hyper floor (bench/hyper_echo.rs), then prints the
# benchmark figures (see bench/bench.mjs). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --no-default-features --bin mcp-broker --example hyper_echo
BROKER=$PWD/target/release/mcp-broker FLOOR=$PWD/target/release/examples/hyper_echo \
  node bench/bench.mjs "${1:-5000}"
