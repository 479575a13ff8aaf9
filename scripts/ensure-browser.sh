#!/usr/bin/env bash
# Make headless Chromium and its driver available for the dashboard's browser test
# (tests/test_dashboard.py): Debian's `chromium` and `chromium-driver` packages, at
# /usr/bin/chromium and /usr/bin/chromedriver. Installs them with apt-get when missing
# (needs root or passwordless sudo); the test points Selenium at these two paths, so
# Selenium Manager never downloads a browser or a driver.
# Idempotent: when both are there it only checks that they run and names their versions.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

log() { echo "ensure-browser: $*"; }
die() { echo "ensure-browser: ERROR: $*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    fi
fi
can_be_root() { [[ $(id -u) -eq 0 || -n "$SUDO" ]]; }

missing=()
[[ -x $CHROMIUM ]] || missing+=(chromium)
[[ -x $DRIVER ]] || missing+=(chromium-driver)

if (( ${#missing[@]} )); then
    if ! can_be_root; then
        die "${missing[*]} not installed and this user can't install it (not root, no passwordless sudo). Install with: sudo apt-get install chromium chromium-driver   (Debian; the browser test skips without them)"
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "${missing[*]} not installed and apt-get is not available: install Chromium at $CHROMIUM and chromedriver at $DRIVER (the browser test skips without them)"
    log "installing ${missing[*]} with apt-get"
    aptlog=$(mktemp)
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$aptlog" 2>&1; then
        cat "$aptlog" >&2; rm -f "$aptlog"
        die "apt-get install ${missing[*]} failed (output above)"
    fi
    rm -f "$aptlog"
fi

[[ -x $CHROMIUM ]] || die "$CHROMIUM still missing after install"
[[ -x $DRIVER ]] || die "$DRIVER still missing after install"
# Both must start: a broken install is an error here, and a failure (not a skip) in the test.
bver=$("$CHROMIUM" --headless --no-sandbox --version 2>/dev/null) \
    || die "$CHROMIUM is installed but does not run ($CHROMIUM --version failed)"
dver=$("$DRIVER" --version 2>/dev/null) \
    || die "$DRIVER is installed but does not run ($DRIVER --version failed)"
log "$bver at $CHROMIUM; ${dver%% (*} at $DRIVER"
