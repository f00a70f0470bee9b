#!/usr/bin/env bash
# Installs what the desktop build (`cargo build` with the default `desktop` feature) and the
# desktop end-to-end test (tests/desktop/e2e.sh) need on Debian 12. Idempotent.
# Package list and timings: ../shared/desktop.md sections 1, 3, 4 and 6.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

BUILD_PACKAGES=(
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  libssl-dev pkg-config build-essential curl file
)
TEST_PACKAGES=(
  xvfb xauth imagemagick x11-utils webkit2gtk-driver gnome-keyring dbus-x11
  dunst keyutils xdotool trayer libglib2.0-bin
)

apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "$@"
}

$SUDO apt-get update
# dpkg sometimes fails halfway with "cannot access archive '/tmp/apt-dpkg-install-…'";
# running the same command again finishes the job (desktop.md section 1).
apt_install "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}" \
  || apt_install "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

# tauri-driver proxies WebDriver sessions to WebKitWebDriver (webkit2gtk-driver above).
if ! command -v tauri-driver >/dev/null 2>&1; then
  cargo install tauri-driver --locked --version 2.1.0
fi
