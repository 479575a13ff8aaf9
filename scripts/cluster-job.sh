#!/usr/bin/env bash
# Run one job on the compose cluster (docker-compose.yml) and exit with the
# client's status: start Redis, WORKERS workers, the client (and whatever
# COMPOSE_PROFILES adds: chaos, straggler) detached; follow the client's (and
# the chaos monkey's) logs until the client exits; stop the cluster.
#
# Not `up --abort-on-container-exit`: that stops everything as soon as ANY
# container exits, and the chaos monkey's SIGKILLed Redis or worker is one.
#
# Usage: scripts/cluster-job.sh            (mk/cluster.mk: make up, make chaos)
# Env:   WORKERS (default 8), COMPOSE_PROJECT_NAME (default: the compose file's
#        name, wordcount), COMPOSE_PROFILES, WORDCOUNT_DATA (default ./data),
#        WORDCOUNT_RESULTS (default ./results), KEEP_RUNNING=1 (don't stop the
#        cluster afterwards), and everything docker-compose.yml reads.
set -euo pipefail

log() { echo "cluster-job: $*" >&2; }
die() { echo "cluster-job: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORKERS=${WORKERS:-8}
export WORDCOUNT_DATA=${WORDCOUNT_DATA:-$ROOT/data}
export WORDCOUNT_RESULTS=${WORDCOUNT_RESULTS:-$ROOT/results}
# The client writes the corpus and the results as you (see docker-compose.yml).
export WORDCOUNT_UID=${WORDCOUNT_UID:-$(id -u)}
export WORDCOUNT_GID=${WORDCOUNT_GID:-$(id -g)}

bash scripts/ensure-compose.sh >/dev/null
# (no passwords to prepare: Redis generates them into the project's volumes)
compose() { docker compose "$@"; }

mkdir -p "$WORDCOUNT_DATA" "$WORDCOUNT_RESULTS"
# Workers (uid 10001) read the corpus: the data dir must be searchable by them.
chmod a+rx "$WORDCOUNT_DATA" 2>/dev/null || true
rm -f "$WORDCOUNT_RESULTS"/{result.json,counts.tsv,chaos.json}

# A finished client (or chaos) container from an earlier run would be started
# again as is, logs and all: remove them so this run starts clean.
compose rm --force --stop client chaos >/dev/null 2>&1 || true

# what this cluster's Redis is, and the make target that removes it (make up-raft: compose.raft.yml)
if [[ ${COMPOSE_FILE:-} == *raft* ]]; then
    STORE="3 RedisRaft nodes" DOWN="make down-raft"
else
    STORE="Redis" DOWN="make down"
fi

t0=$(date +%s.%N)
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ ${KEEP_RUNNING:-0} != 1 ]]; then
        log "stopping the cluster ($DOWN removes it and its volumes)"
        compose stop --timeout 10 >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting ${COMPOSE_FILE:-docker-compose.yml}: $STORE, $WORKERS workers, client${COMPOSE_PROFILES:+ + profiles $COMPOSE_PROFILES}"
mkdir -p build/logs
if ! compose up --detach --scale "worker=$WORKERS" >build/logs/compose-up.log 2>&1; then
    cat build/logs/compose-up.log >&2
    die "docker compose up failed (see above; images that can't be built? run: make images)"
fi
client=$(compose ps --all --quiet client)
[[ -n $client ]] || die "no client container: see \`docker compose ps -a\`"
chaos=$(compose ps --all --quiet chaos 2>/dev/null || true)
follower=
if [[ -n $chaos ]]; then
    docker logs --follow "$chaos" &
    follower=$!
fi
docker logs --follow "$client" || true
rc=$(docker wait "$client")
t1=$(date +%s.%N)
if [[ -n $chaos ]]; then
    # The monkey notices within a second that the client is done, starts again
    # whatever it has down and writes chaos.json.
    timeout 60 docker wait "$chaos" >/dev/null || log "the chaos container did not stop within 60 s"
    kill "$follower" 2>/dev/null || true
    wait "$follower" 2>/dev/null || true
fi

took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
log "client exited with status $rc: $took s from \`up\` to the result ($WORKERS workers)"
exit "$rc"
