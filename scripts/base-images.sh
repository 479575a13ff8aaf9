#!/usr/bin/env bash
# Build the two local base images the offline Dockerfiles start FROM, since no
# container registry can be reached here:
#   wordcount/python-base:bookworm  python3 + venv, ca-certificates, tini, passwd
#   wordcount/redis-base:bookworm   redis-server + redis-tools
# and, on request only (the RedisRaft image, redis/raft.Dockerfile):
#   wordcount/build-base:bookworm   build-essential + cmake: builds Redis and RedisRaft
#   wordcount/runtime-base:bookworm a bare Debian (+ passwd): runs what build-base built
# Each is a minimal Debian bookworm rootfs made with mmdebstrap (packages come
# from the Debian archive through apt) and loaded with `docker import`.
# Skips an image that already exists; --force rebuilds the ones asked for.
#
# Usage: scripts/base-images.sh [--force] [python|redis|build|runtime ...]
#        (default: python redis)
# Env:   WORDCOUNT_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#        WORDCOUNT_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security)
set -euo pipefail

PYTHON_IMAGE=wordcount/python-base:bookworm
REDIS_IMAGE=wordcount/redis-base:bookworm
BUILD_IMAGE=wordcount/build-base:bookworm
RUNTIME_IMAGE=wordcount/runtime-base:bookworm
SUITE=bookworm
MIRROR=${WORDCOUNT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${WORDCOUNT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

log() { echo "base-images: $*"; }
die() { echo "base-images: ERROR: $*" >&2; exit 1; }

force=0
wanted=()
for arg in "$@"; do
    case $arg in
        --force|-f) force=1 ;;
        python|redis|build|runtime) wanted+=("$arg") ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (usage: $0 [--force] [python|redis|build|runtime ...])" ;;
    esac
done
[[ ${#wanted[@]} -gt 0 ]] || wanted=(python redis)

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "can't reach the Docker engine (is dockerd running, and may this user use it?)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

todo=()
for w in "${wanted[@]}"; do
    case $w in
        python) img=$PYTHON_IMAGE ;; redis) img=$REDIS_IMAGE ;;
        build) img=$BUILD_IMAGE ;; runtime) img=$RUNTIME_IMAGE ;;
    esac
    if [[ $force -eq 0 ]] && image_exists "$img"; then
        log "$img already exists ($(image_size "$img")), skipping (--force rebuilds)"
    else
        todo+=("$w")
    fi
done
[[ ${#todo[@]} -gt 0 ]] || exit 0

# --- mmdebstrap ---------------------------------------------------------------
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
        || die "mmdebstrap must run as root here (root mode); run this as root or with passwordless sudo"
    SUDO="sudo -n"
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "mmdebstrap is missing and apt-get isn't available: install mmdebstrap (Debian package)"
    log "installing mmdebstrap with apt-get"
    aptlog=$(mktemp)
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends mmdebstrap; } >"$aptlog" 2>&1; then
        cat "$aptlog" >&2; rm -f "$aptlog"
        die "apt-get install mmdebstrap failed (output above)"
    fi
    rm -f "$aptlog"
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/wordcount-base.XXXXXX")
cleanup() { $SUDO rm -rf "$workdir"; }
trap cleanup EXIT

# Common slimming: no recommends, no docs/man/info/locales (copyright files are
# kept), no apt lists or caches. The stdlib's .pyc files stay (python:slim has
# them too): without them every container start recompiles what it imports.
mmdebstrap_common=(
    --variant=apt
    --mode=root
    --format=tar
    # merged-/usr the debootstrap way (symlinks + usr-is-merged): otherwise
    # bookworm's init-system-helpers pulls usrmerge, which drags in ~50 MB of perl
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --aptopt='APT::Install-Recommends "false"'
    --aptopt='APT::Install-Suggests "false"'
    --aptopt='Acquire::Languages "none"'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old'
    --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; : > "$1"/etc/hostname'
)
mirrors=(
    "deb $MIRROR $SUITE main"
    "deb $MIRROR $SUITE-updates main"
    "deb $SECURITY_MIRROR $SUITE-security main"
)

build_one() {   # build_one IMAGE "pkg,pkg" --change ... (extra args for docker import)
    local image=$1 include=$2; shift 2
    local tar="$workdir/${image//[\/:]/_}.tar" t0 t1 old
    old=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    log "mmdebstrap $SUITE (--include=$include) -> $image"
    t0=$(date +%s)
    # mmdebstrap is chatty on stderr; keep its log and show it only on failure.
    if ! $SUDO mmdebstrap --include="$include" "${mmdebstrap_common[@]}" "$SUITE" "$tar" "${mirrors[@]}" \
            >"$workdir/mmdebstrap.log" 2>&1; then
        tail -n 40 "$workdir/mmdebstrap.log" >&2
        die "mmdebstrap failed for $image (log above)"
    fi
    t1=$(date +%s)
    log "rootfs for $image: $(du -h "$tar" | cut -f1) tar in $((t1 - t0)) s; docker import"
    docker import "$@" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL org.opencontainers.image.base.name=debian:$SUITE org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$tar" "$image" >/dev/null || die "docker import failed for $image"
    rm -f "$tar"
    # --force: drop the image this one replaced, unless something still uses it
    if [[ -n $old && $old != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
    log "built $image ($(image_size "$image"))"
}

for w in "${todo[@]}"; do
    case $w in
        python)
            build_one "$PYTHON_IMAGE" python3,python3-venv,ca-certificates,tini,passwd \
                --change 'CMD ["python3"]'
            ;;
        redis)
            build_one "$REDIS_IMAGE" redis-server,redis-tools \
                --change 'CMD ["redis-server"]'
            ;;
        build)
            # compilers and cmake only: the sources come in the build context,
            # so nothing inside `docker build` needs the network
            build_one "$BUILD_IMAGE" build-essential,cmake,pkg-config \
                --change 'CMD ["bash"]'
            ;;
        runtime)
            build_one "$RUNTIME_IMAGE" passwd \
                --change 'CMD ["sh"]'
            ;;
    esac
done
