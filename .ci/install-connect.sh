#!/usr/bin/env bash
# System packages for `mcp-broker connect` (tokens in the OS keychain via the `keyring`
# crate's Secret Service backend: libdbus-sys needs libdbus-1-dev and pkg-config) and for
# its end-to-end test tests/connect/suite.sh (dbus-run-session, gnome-keyring,
# secret-tool). Idempotent; retries once because dpkg here sometimes fails transiently.
set -euo pipefail

PKGS=(gnome-keyring dbus libdbus-1-dev libsecret-tools pkg-config)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-connect: all packages present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
install() {
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q &&
        $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
}
install || { echo "install-connect: retrying once"; sleep 2; install; }
