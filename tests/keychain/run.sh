#!/usr/bin/env bash
# Runs the keychain tests (tests/keychain.rs) against a real Secret Service: a private
# D-Bus session with gnome-keyring unlocked by a throwaway password, HOME in a temp dir so
# no real keyring is touched. Needs the packages from .ci/install-keychain.sh.
#
#   tests/keychain/run.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in dbus-run-session gnome-keyring-daemon secret-tool; do
    command -v "$tool" >/dev/null || {
        echo "keychain tests: $tool is missing; run .ci/install-keychain.sh" >&2
        exit 1
    }
done

# Build first, with the real HOME; inside the session HOME is a temp dir, so cargo,
# rustup and the Python interpreter are pinned to what they are now.
cargo test --no-default-features --test keychain --no-run
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
MCP_BROKER_TEST_PYTHON="$(python3 -c 'import sys; print(sys.executable)')"
export MCP_BROKER_TEST_PYTHON

KEYCHAIN_HOME="$(mktemp -d)"
trap 'rm -rf "$KEYCHAIN_HOME"' EXIT
export KEYCHAIN_HOME

dbus-run-session -- bash -c '
    set -euo pipefail
    export HOME="$KEYCHAIN_HOME"
    export XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
    # The explicit unlock creates the "login" keyring; without it every write fails with
    # NoStorageAccess because nobody can answer the unlock prompt (desktop.md 5a).
    eval "$(printf %s throwaway-test-pw | gnome-keyring-daemon --unlock --components=secrets)"
    export GNOME_KEYRING_CONTROL
    export MCP_BROKER_KEYCHAIN_TESTS=1
    cargo test --no-default-features --test keychain -- "$@"
' keychain-tests "$@" 2> >(grep -v -e "Failed to set fd limit" -e "Activating service name=" -e "Successfully activated service" >&2)
