#!/usr/bin/env bash
# Picked up by tests/all.sh: the keychain tests inside a private D-Bus session.
exec bash "$(dirname "$0")/run.sh" "$@"
