#!/usr/bin/env bash
# System packages for the keychain tests (tests/keychain/run.sh) and for building the
# `keyring` crate's Secret Service backend (libdbus-sys needs libdbus-1-dev and pkg-config).
# Idempotent; retries once because dpkg on these machines sometimes fails transiently.
set -euo pipefail

PKGS=(gnome-keyring dbus libdbus-1-dev libsecret-tools pkg-config python3)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-keychain: all packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
install() {
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q &&
        $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
}
install || { echo "install-keychain: retrying once"; sleep 2; install; }
