#!/usr/bin/env bash
# Regenerates the bundle icons named in tauri.conf.json from icon.svg, with the Tauri CLI
# (runs offline once the npm package is cached). Only the files tauri.conf.json names are kept.
set -euo pipefail
cd "$(dirname "$0")"
npx --yes @tauri-apps/cli@2.12.5 icon icon.svg -o .
rm -rf android ios Square*Logo.png StoreLogo.png 64x64.png
