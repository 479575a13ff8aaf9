#!/usr/bin/env bash
# Host copies of redis-server / redis-cli 7.2.6 and redisraft.so, for the tests
# that run 3-node RedisRaft clusters as plain processes on 127.0.0.1
# (src/wordcount/lab/raft.py, tests/test_raft_cluster.py), in
#   $WORDCOUNT_RAFT_BIN (default ~/.cache/wordcount/raft-bin)
#       redis-server  redis-cli  redisraft.so  MANIFEST (the pinned commits)
# Made from the wordcount/redisraft image (built by scripts/build-images.sh raft
# when missing or stale: docker's cache makes that quick once built) with
# `docker create` + `docker cp`; without a Docker engine, or when the copied
# binaries don't run on this host, built here instead (needs cc, make, cmake).
# Both need the pinned sources in the source cache (scripts/raft-sources.sh).
# Does nothing when the binaries there already match the pins.
#
# Usage: scripts/raft-bin.sh [--if-possible] [--force]
#   --if-possible  (make test) when the sources or the means to build are
#                  missing, say so in ONE line and exit 0 (the raft tests then
#                  skip, naming what is missing); a broken build still fails
#   --force        rebuild / copy again even when up to date
set -euo pipefail

log() { echo "raft-bin: $*"; }
die() { echo "raft-bin: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if_possible=0 force=0
for arg in "$@"; do
    case $arg in
        --if-possible) if_possible=1 ;;
        --force|-f) force=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (see --help)" ;;
    esac
done
skip() {   # skip REASON: one line; exit 0 with --if-possible, else 1
    if [[ $if_possible == 1 ]]; then log "skipped: $*"; exit 0; fi
    die "$*"
}

BIN=${WORDCOUNT_RAFT_BIN:-$HOME/.cache/wordcount/raft-bin}
IMAGE=wordcount/redisraft:latest
eval "$(bash scripts/raft-sources.sh --pins)"   # REDIS_TAG REDIS_COMMIT REDISRAFT_COMMIT CACHE
MANIFEST=$(printf 'redis %s\nredisraft %s\n' "$REDIS_COMMIT" "$REDISRAFT_COMMIT")

works() {   # works DIR: the three files are there and redis-server runs here, version REDIS_TAG
    local dir=$1
    [[ -x $dir/redis-server && -x $dir/redis-cli && -f $dir/redisraft.so ]] || return 1
    "$dir/redis-server" --version 2>/dev/null | grep -q "v=$REDIS_TAG " || return 1
    ! { command -v ldd >/dev/null && ldd "$dir/redisraft.so" 2>&1 | grep -q 'not found'; }
}

if [[ $force == 0 && -f $BIN/MANIFEST && $(cat "$BIN/MANIFEST") == "$MANIFEST" ]] && works "$BIN"; then
    log "up to date in $BIN (Redis $REDIS_TAG, RedisRaft ${REDISRAFT_COMMIT:0:8})"
    exit 0
fi
why=$(bash scripts/raft-sources.sh --check) || skip "$why"

mkdir -p "$(dirname "$BIN")"
tmp=$(mktemp -d "$(dirname "$BIN")/.raft-bin.XXXXXX")
container=
cleanup() {
    [[ -z $container ]] || docker rm -f "$container" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

from_image() {
    bash scripts/build-images.sh raft >&2 || return 1
    local sources
    container=$(docker create "$IMAGE") || return 1
    sources=$(docker cp "$container:/usr/local/share/wordcount/raft-SOURCES" - | tar -xO) || return 1
    [[ $sources == "$MANIFEST" ]] || { log "$IMAGE holds other sources: $sources"; return 1; }
    docker cp "$container:/usr/local/bin/redis-server" "$tmp/redis-server" \
        && docker cp "$container:/usr/local/bin/redis-cli" "$tmp/redis-cli" \
        && docker cp "$container:/usr/local/lib/redis/modules/redisraft.so" "$tmp/redisraft.so" \
        || return 1
    docker rm -f "$container" >/dev/null; container=
}

on_host() {
    local src=$tmp/src jobs=${WORDCOUNT_BUILD_JOBS:-2}
    mkdir -p "$src"
    bash scripts/raft-sources.sh --stage "$src" >&2
    log "building Redis $REDIS_TAG on this host (log: $src/redis-build.log)"
    make -C "$src/redis" -j"$jobs" BUILD_TLS=no USE_SYSTEMD=no >"$src/redis-build.log" 2>&1 \
        || { tail -n 30 "$src/redis-build.log" >&2; return 1; }
    log "building RedisRaft ${REDISRAFT_COMMIT:0:8} on this host"
    mkdir -p "$src/redisraft/build"
    { (cd "$src/redisraft/build" && cmake .. -DCMAKE_BUILD_TYPE=Release && make -j"$jobs" redisraft); } \
        >"$src/raft-build.log" 2>&1 || { tail -n 30 "$src/raft-build.log" >&2; return 1; }
    cp "$src/redis/src/redis-server" "$src/redis/src/redis-cli" "$src/redisraft/redisraft.so" "$tmp/"
    strip "$tmp/redis-server" "$tmp/redis-cli" 2>/dev/null || true
    rm -rf "$src"
}

have_docker() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
have_toolchain() { command -v cc >/dev/null && command -v make >/dev/null && command -v cmake >/dev/null; }

t0=$(date +%s)
how=
if have_docker; then
    if from_image && works "$tmp"; then how="copied from $IMAGE"
    elif have_toolchain; then
        log "the binaries of $IMAGE don't run here; building them on this host"
        rm -f "$tmp"/redis-server "$tmp"/redis-cli "$tmp"/redisraft.so
        on_host && works "$tmp" && how="built on this host" || die "building on this host failed"
    else
        die "could not get working binaries from $IMAGE (and no cc/make/cmake here to build them)"
    fi
elif have_toolchain; then
    on_host && works "$tmp" && how="built on this host" || die "building on this host failed"
else
    skip "no Docker engine and no cc/make/cmake to build redis-server + redisraft.so (\`make raft-bin\` needs one of them)"
fi
printf '%s\n' "$MANIFEST" >"$tmp/MANIFEST"
chmod 0755 "$tmp" "$tmp/redis-server" "$tmp/redis-cli"
rm -rf "$BIN"
mv "$tmp" "$BIN"
log "$how into $BIN in $(( $(date +%s) - t0 )) s: $("$BIN/redis-server" --version | cut -d' ' -f1-3)"
