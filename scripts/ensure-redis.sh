#!/usr/bin/env bash
# Make `redis-server` (>= 7.0) available on PATH for the host-side tests.
# Installs Debian's redis-server package when missing (needs root or sudo),
# then makes sure the distro's system service is NOT left running on :6379:
# the tests start their own redis-server processes on ports of their choosing.
# Idempotent: when redis-server is already there it only checks the version.
set -euo pipefail

MIN_MAJOR=7

log() { echo "ensure-redis: $*"; }
die() { echo "ensure-redis: ERROR: $*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    fi
fi
can_be_root() { [[ $(id -u) -eq 0 || -n "$SUDO" ]]; }

# Is the Debian package's own service (not some redis of ours) running?
system_redis_pid() {
    local pidfile=/run/redis/redis-server.pid pid
    [[ -r $pidfile ]] || return 1
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

stop_system_service() {
    # Stop now, and keep it from starting at boot. Containers/CI usually have
    # no systemd (PID 1 is something else), so try each mechanism and ignore
    # the ones that don't apply here.
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
    else
        $SUDO service redis-server stop >/dev/null 2>&1 || true
        if command -v update-rc.d >/dev/null 2>&1; then
            $SUDO update-rc.d redis-server disable >/dev/null 2>&1 || true
        fi
    fi
    local pid i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        pid=$(system_redis_pid) || return 0
        [[ $i -eq 1 ]] && $SUDO kill -TERM "$pid" 2>/dev/null || true
        sleep 0.5
    done
    die "the system redis-server service (pid $(system_redis_pid)) is still running on :6379; stop it by hand"
}

if ! command -v redis-server >/dev/null 2>&1; then
    if ! can_be_root; then
        die "redis-server is not installed and this user can't install it (not root, no passwordless sudo). Install it with: sudo apt-get install redis-server   (Debian/Ubuntu; any redis-server >= ${MIN_MAJOR}.0 on PATH will do)"
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "redis-server is not installed and apt-get is not available: install redis-server >= ${MIN_MAJOR}.0 and put it on PATH"
    log "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    aptlog=$(mktemp)
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends redis-server; } >"$aptlog" 2>&1; then
        cat "$aptlog" >&2; rm -f "$aptlog"
        die "apt-get install redis-server failed (output above)"
    fi
    rm -f "$aptlog"
    stop_system_service
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
elif system_redis_pid >/dev/null; then
    log "stopping the distro's redis-server service (tests start their own)"
    stop_system_service
fi

version=$(redis-server --version | sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p')
[[ -n $version ]] || die "can't read the version of $(command -v redis-server)"
major=${version%%.*}
if (( major < MIN_MAJOR )); then
    die "$(command -v redis-server) is version $version, need >= ${MIN_MAJOR}.0"
fi
log "redis-server $version at $(command -v redis-server)"
