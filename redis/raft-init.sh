#!/bin/sh
# Form the RedisRaft cluster of compose.raft.yml from inside its nodes: each
# node's entrypoint (redis/raft-entrypoint.sh) starts this in the background,
# detached, when RAFT_NODES is set; it ends once its own node is in the
# cluster. No separate service (a one-shot container that exits would end
# `docker compose up --exit-code-from client` as soon as it is done).
#   - this node is in a cluster already (it replayed its Raft log: a restart)
#                                   nothing to do: it rejoins by itself
#   - some other node is in one     RAFT.CLUSTER JOIN through those that are
#                                   (a new node, or one whose volume was wiped)
#   - none is, and every node answers as a new one
#                                   the FIRST node of RAFT_NODES runs
#                                   RAFT.CLUSTER INIT; the others wait for it
#                                   and then JOIN
# It retries until it is done (the others may still be starting), saying every
# 10 s what it waits for. INIT needs every node to answer and none to be in a
# cluster, so a node whose volume was wiped while the others are down never
# starts a second cluster: it waits for them and joins theirs (as a NEW
# member: its old identity stays in the configuration, as a dead voter, until
# someone runs RAFT.NODE REMOVE for it).
# Usage: wordcount-raft-init
# Env:   RAFT_NODES  every node's host:port, the first forms the cluster
#                    (default "raft1:6379 raft2:6379 raft3:6379")
#        RAFT_ADDR   this node's (default $(hostname):$REDIS_PORT), REDIS_PORT (6379)
#        WORDCOUNT_SECRETS  the admin password as wordcount-redis-cli finds it
#                    (it talks to every node as admin, through REDISCLI_AUTH)
set -eu

port=${REDIS_PORT:-6379}
self=${RAFT_ADDR:-$(hostname):$port}
nodes=${RAFT_NODES:-"raft1:6379 raft2:6379 raft3:6379"}
log() { echo "raft-init ($self): $*"; }

d=${WORDCOUNT_SECRETS:-/run/secrets}
f=$d/redis-admin-password
[ -e "$f" ] || f=$d/admin/redis-admin-password
# (the entrypoint made it before starting us; by hand, it may not be there yet)
until [ -s "$f" ]; do sleep 1; done
REDISCLI_AUTH=$(cat "$f")
export REDISCLI_AUTH

cli() {   # cli SECONDS HOST:PORT ARGS...: the reply, without CRs; never fails
    t=$1 hp=$2; shift 2
    timeout "$t" redis-cli --no-auth-warning --user admin -h "${hp%:*}" -p "${hp##*:}" "$@" \
        2>&1 | tr -d '\r' || true
}
state() { cli 5 "$1" info raft | sed -n 's/^raft_state://p'; }

# 1. our own node answers (it was just started)
until [ "$(cli 5 "127.0.0.1:$port" ping)" = PONG ]; do sleep 0.5; done

founder=${nodes%% *}
peers=
for n in $nodes; do [ "$n" = "$self" ] || peers="$peers $n"; done
first=1 said=0 start=$(date +%s)
while :; do
    mine=$(state "127.0.0.1:$port")
    case $mine in
        uninitialized) ;;
        "") log "ERROR: no 'INFO raft' on this node (is the RedisRaft module loaded?)" >&2; exit 1 ;;
        *) if [ "$first" = 1 ]; then
               log "in the cluster already (state $mine): it replays its Raft log and rejoins by itself"
           else
               log "in the cluster (state $mine)"
           fi
           exit 0 ;;
    esac
    members= silent=
    for p in $peers; do
        s=$(state "$p")
        case $s in
            up) members="$members $p" ;;
            uninitialized) ;;
            *) silent="$silent $p${s:+ ($s)}" ;;
        esac
    done
    if [ -n "$members" ]; then
        # shellcheck disable=SC2086 # one argument per member address
        reply=$(cli 60 "127.0.0.1:$port" RAFT.CLUSTER JOIN $members)
        case $reply in
            OK*) log "RAFT.CLUSTER JOIN$members: OK"; exit 0 ;;
        esac
        why="RAFT.CLUSTER JOIN$members: ${reply:-no reply}"
    elif [ "$self" = "$founder" ] && [ -z "$silent" ]; then
        reply=$(cli 30 "127.0.0.1:$port" RAFT.CLUSTER INIT)
        case $reply in
            OK*) log "RAFT.CLUSTER INIT: $reply (the others join it)"; exit 0 ;;
        esac
        why="RAFT.CLUSTER INIT: ${reply:-no reply}"
    elif [ -n "$silent" ]; then
        why="waiting for$silent to answer"
    else
        why="waiting for $founder to form the cluster"
    fi
    first=0 now=$(date +%s)
    if [ $((now - start)) -ge $(((said + 1) * 10)) ]; then
        log "$why ($((now - start)) s)"
        said=$((said + 1))
    fi
    sleep 1
done
