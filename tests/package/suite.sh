#!/usr/bin/env bash
# The Debian package, as CI ships it: Tauri's bundler (the Tauri CLI from npm, pinned in
# tests/package/package.json) packages the desktop binary into a .deb; `dpkg -i` installs
# it; the installed `mcp-broker --version` answers with Cargo.toml's version; the binary
# is on PATH, the desktop entry and the icons are where the desktop finds them; `dpkg -r`
# removes every file it installed. Run by tests/all.sh after tests/desktop/suite.sh, whose
# desktop build (target/debug, default features) it packages (`tauri bundle --debug`:
# the binary the desktop e2e tested, no second build). Release packages: `tauri build`.
#   bash tests/package/suite.sh
# Then one desktop e2e scenario runs against the installed binary (APP=/usr/bin/mcp-broker):
# PACKAGE_E2E names the scenarios of tests/desktop/e2e.sh (default "window"; empty: none).
# CARGO_ARGS="--no-default-features": a quick check of the packaging alone, on the headless
# binary (no desktop build).
# Needs: root (or sudo) for dpkg, node/npm, what .ci/install-desktop.sh installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
fail() { echo "FAIL [package] $*"; exit 1; }
pass() { echo "PASS [package] $*"; }

if dpkg-query -W -f='${Status}' mcp-broker 2>/dev/null | grep -q "install ok installed"; then
    fail "an mcp-broker package is already installed on this machine; not touching it"
fi

(cd tests/package && npm ci --no-audit --no-fund --silent)
tauri="$root/tests/package/node_modules/.bin/tauri"

# The desktop binary (a no-op when tests/desktop/suite.sh built it already).
read -r -a cargo_args <<< "${CARGO_ARGS:-}"
if [ ${#cargo_args[@]} -eq 0 ] && [ ! -f ui/dist/index.html ]; then
    (cd ui && npm ci --no-audit --no-fund && npm run build)
fi
t0=$(date +%s)
cargo build "${cargo_args[@]}"
rm -rf target/debug/bundle/deb
"$tauri" bundle --debug --bundles deb --ci
deb=$(ls target/debug/bundle/deb/mcp-broker_*_amd64.deb)
echo "built $deb in $(( $(date +%s) - t0 )) s"
version=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')
[[ "$deb" == *"mcp-broker_${version}_amd64.deb" ]] && pass "the .deb carries Cargo.toml's version ($version)" \
    || fail "the .deb's name does not carry version $version: $deb"

removed=0
remove() {
    [ "$removed" = 1 ] && return
    removed=1
    $SUDO dpkg -r mcp-broker >/dev/null 2>&1 || true
}
trap remove EXIT

$SUDO dpkg -i "$deb" || fail "dpkg -i $deb"
pass "dpkg -i installs it"
files=$(dpkg -L mcp-broker)
[ "$(command -v mcp-broker)" = /usr/bin/mcp-broker ] && pass "mcp-broker is on PATH (/usr/bin)" \
    || fail "mcp-broker is not on PATH at /usr/bin: $(command -v mcp-broker || true)"
out=$(cd / && mcp-broker --version)
echo "$out"
[[ "$out" == "mcp-broker $version"$'\n'"data dir: "* ]] && pass "the installed mcp-broker --version" \
    || fail "mcp-broker --version printed: $out"
entry=/usr/share/applications/mcp-broker.desktop
grep -qx "Exec=mcp-broker" "$entry" && grep -qx "Icon=mcp-broker" "$entry" \
    && pass "the desktop entry starts the app" || fail "desktop entry: $(cat "$entry" 2>&1)"
for size in 32x32 128x128; do
    [ -f "/usr/share/icons/hicolor/$size/apps/mcp-broker.png" ] || fail "no $size icon"
done
pass "the icons are in the hicolor theme"

PACKAGE_E2E=${PACKAGE_E2E-window}
[ ${#cargo_args[@]} -eq 0 ] || PACKAGE_E2E=""  # a headless-only binary has no app to drive
if [ -n "$PACKAGE_E2E" ]; then
    # shellcheck disable=SC2086 # scenario names, space separated
    APP=/usr/bin/mcp-broker bash tests/desktop/e2e.sh $PACKAGE_E2E || fail "desktop e2e ($PACKAGE_E2E) against the installed binary"
    pass "desktop e2e ($PACKAGE_E2E) against the installed binary"
fi

removed=1
$SUDO dpkg -r mcp-broker || fail "dpkg -r mcp-broker"
dpkg-query -W -f='${Status}' mcp-broker 2>/dev/null | grep -q "install ok installed" && fail "still installed after dpkg -r"
left=()
while IFS= read -r f; do
    [ -f "$f" ] && left+=("$f")
done <<< "$files"
[ ${#left[@]} -eq 0 ] && ! command -v mcp-broker >/dev/null && pass "dpkg -r removes every file it installed" \
    || fail "left behind: ${left[*]} $(command -v mcp-broker || true)"
echo "package: all passed"
