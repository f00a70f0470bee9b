#!/usr/bin/env bash
# The e2e's "system browser" ($BROWSER): records each URL the app opens, one per line;
# the test plays the person who signs in.
printf '%s\n' "$1" >> "${BROWSER_LOG:?}"
