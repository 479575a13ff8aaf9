#!/usr/bin/env bash
# Build the cluster's images: wordcount/worker, wordcount/client,
# wordcount/chaos, wordcount/redis (tag :latest), and on request
# wordcount/redisraft (compose.raft.yml; from the pinned sources in the source
# cache, scripts/raft-sources.sh: skipped, with one line saying why, when they
# are not there).
#   1. the local base images (scripts/base-images.sh; skipped when present)
#   2. build/wheelhouse/ on the host (scripts/wheelhouse.sh)
#   3. `docker compose build` of docker-compose.yml's services (services/worker/,
#      services/client/, chaos/ and redis/ Dockerfiles), with the classic builder and
#      no network inside; redisraft with `docker build` (a staged context)
#
# Usage: scripts/build-images.sh [worker|client|chaos|redis|raft ...]
#        (default: the four of docker-compose.yml; `make images` adds raft)
# Env:   WORDCOUNT_REGISTRY_BASES=1  use python:3.11-slim / redis:7.2 (and
#                                    debian:bookworm{,-slim} for raft) from a
#                                    registry instead of the local bases
#        WORDCOUNT_SKIP_WHEELHOUSE=1 reuse the existing build/wheelhouse/
#        DOCKER_BUILDKIT             default 0 (the classic builder)
set -euo pipefail

log() { echo "build-images: $*"; }
die() { echo "build-images: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

ALL=(worker client chaos redis)
images=()
for arg in "$@"; do
    case $arg in
        worker|client|chaos|redis|raft) images+=("$arg") ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown image '$arg' (choose from: ${ALL[*]} raft)" ;;
    esac
done
[[ ${#images[@]} -gt 0 ]] || images=("${ALL[@]}")

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "can't reach the Docker engine"

# raft: only when the pinned sources are in the cache (they are not in the repo)
if [[ " ${images[*]} " == *" raft "* ]] && ! why=$(bash scripts/raft-sources.sh --check); then
    log "wordcount/redisraft skipped: $why"
    mapfile -t images < <(printf '%s\n' "${images[@]}" | grep -vx raft || true)
    [[ ${#images[@]} -gt 0 && -n ${images[0]} ]] || exit 0
fi

if [[ ${WORDCOUNT_REGISTRY_BASES:-0} == 1 ]]; then
    PYTHON_BASE=python:3.11-slim
    REDIS_BASE=redis:7.2
    BUILD_BASE=debian:bookworm
    RUNTIME_BASE=debian:bookworm-slim
    log "using registry bases $PYTHON_BASE and $REDIS_BASE"
else
    PYTHON_BASE=wordcount/python-base:bookworm
    REDIS_BASE=wordcount/redis-base:bookworm
    BUILD_BASE=wordcount/build-base:bookworm
    RUNTIME_BASE=wordcount/runtime-base:bookworm
    want_bases=()
    for img in "${images[@]}"; do
        case $img in
            redis) want_bases+=(redis) ;;
            raft) want_bases+=(build runtime) ;;
            *) want_bases+=(python) ;;
        esac
    done
    mapfile -t want_bases < <(printf '%s\n' "${want_bases[@]}" | sort -u)
    bash scripts/base-images.sh "${want_bases[@]}"
fi

needs_wheels=0
for img in "${images[@]}"; do [[ $img == redis || $img == raft ]] || needs_wheels=1; done
if [[ $needs_wheels == 1 ]]; then
    if [[ ${WORDCOUNT_SKIP_WHEELHOUSE:-0} == 1 ]] && [[ -f build/wheelhouse/requirements.txt ]]; then
        log "reusing build/wheelhouse/ (WORDCOUNT_SKIP_WHEELHOUSE=1)"
    else
        bash scripts/wheelhouse.sh
    fi
fi

mkdir -p build/logs
image_size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# Drop the image a build replaced (if no container still uses it) so rebuilds
# don't pile up dangling images.
drop_replaced() {   # drop_replaced TAG OLD_ID
    local new; new=$(image_id "$1")
    if [[ -n $2 && $2 != "$new" ]]; then docker rmi "$2" >/dev/null 2>&1 || true; fi
}

services=()
for img in "${images[@]}"; do [[ $img == raft ]] || services+=("$img"); done
if [[ ${#services[@]} -gt 0 ]]; then
    bash scripts/ensure-compose.sh >/dev/null
    declare -A old=()
    for svc in "${services[@]}"; do old[$svc]=$(image_id "wordcount/$svc:latest"); done
    logf=build/logs/compose-build.log
    log "docker compose build ${services[*]} (BASE=$PYTHON_BASE, redis BASE=$REDIS_BASE)"
    t0=$(date +%s)
    if ! WORDCOUNT_PYTHON_BASE=$PYTHON_BASE WORDCOUNT_REDIS_BASE=$REDIS_BASE \
            docker compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" \
            build "${services[@]}" >"$logf" 2>&1; then
        tail -n 30 "$logf" >&2
        die "docker compose build failed (full log: $logf)"
    fi
    t1=$(date +%s)
    for svc in "${services[@]}"; do
        drop_replaced "wordcount/$svc:latest" "${old[$svc]}"
        log "built wordcount/$svc:latest ($(image_size "wordcount/$svc:latest"))"
    done
    log "compose build took $((t1 - t0)) s"
fi

if [[ " ${images[*]} " == *" raft "* ]]; then
    # the context: the pinned sources (exported from the cache only when they
    # changed, so docker's layer cache holds) + our scripts and ACL templates
    bash scripts/raft-sources.sh --stage build/raft-context
    rm -rf build/raft-context/wordcount && mkdir -p build/raft-context/wordcount
    cp redis/raft-entrypoint.sh redis/raft-healthcheck.sh redis/raft-init.sh redis/acl.sh \
        redis/cli.sh redis/users.acl redis/raft-users.acl build/raft-context/wordcount/
    tag=wordcount/redisraft:latest logf=build/logs/image-redisraft.log
    old_id=$(image_id "$tag")
    log "docker build $tag (-f redis/raft.Dockerfile, BASE=$RUNTIME_BASE BUILD_BASE=$BUILD_BASE)"
    t0=$(date +%s)
    if ! docker build --force-rm --file redis/raft.Dockerfile --build-arg "BASE=$RUNTIME_BASE" \
            --build-arg "BUILD_BASE=$BUILD_BASE" --tag "$tag" build/raft-context >"$logf" 2>&1; then
        tail -n 30 "$logf" >&2
        die "docker build of $tag failed (full log: $logf)"
    fi
    drop_replaced "$tag" "$old_id"
    log "built $tag in $(( $(date +%s) - t0 )) s ($(image_size "$tag"))"
fi
