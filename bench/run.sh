#!/usr/bin/env bash
# Builds the release binary and prints the benchmark figures (see bench/bench.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --no-default-features
BROKER=$PWD/target/release/mcp-broker node bench/bench.mjs "${1:-5000}"
