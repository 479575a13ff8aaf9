#!/bin/sh
# Form the RedisRaft cluster of compose.raft.yml (the one-shot raft-init
# service), then wait until every node is an up-to-date voter and one of them
# leads. Safe to run again at any time:
#   - no node in a cluster yet     RAFT.CLUSTER INIT on the first node, JOIN on the others
#   - some nodes in one already    JOIN only the uninitialized ones (a new or wiped node)
#   - all of them in it            nothing to do (a restarted node replays its Raft log
#                                  and rejoins by itself): just wait for a leader
# Usage: wordcount-raft-init [host:port ...]
#        (default: $RAFT_NODES, else "raft1:6379 raft2:6379 raft3:6379")
# Env:   WORDCOUNT_SECRETS (default /run/secrets: redis-admin-password, as the admin user); RAFT_INIT_TIMEOUT (seconds, default 120)
# A node whose volume was wiped joins as a NEW member: its old identity stays in
# the configuration (as a dead voter) until someone runs RAFT.NODE REMOVE for it.
set -eu

log() { echo "raft-init: $*"; }
die() { echo "raft-init: ERROR: $*" >&2; exit 1; }

nodes=$*
[ -n "$nodes" ] || nodes=${RAFT_NODES:-"raft1:6379 raft2:6379 raft3:6379"}
f=${WORDCOUNT_SECRETS:-/run/secrets}/redis-admin-password
[ -r "$f" ] || die "can't read the admin password file $f (a compose secret: run \`make env\`)"
pw=$(cat "$f")
[ -n "$pw" ] || die "the admin password file $f is empty"
export REDISCLI_AUTH="$pw"
deadline=$(( $(date +%s) + ${RAFT_INIT_TIMEOUT:-120} ))
time_left() { [ "$(date +%s)" -lt "$deadline" ]; }

cli() {   # cli HOST:PORT ARGS...: the reply, without CRs; never fails
    hp=$1; shift
    redis-cli --no-auth-warning --user admin -h "${hp%:*}" -p "${hp##*:}" "$@" 2>&1 | tr -d '\r' || true
}
field() { cli "$1" info raft | sed -n "s/^$2://p"; }

# 1. every node answers (compose starts us once they are healthy; by hand, maybe not)
for n in $nodes; do
    until [ "$(cli "$n" ping)" = PONG ]; do
        time_left || die "$n does not answer PING: $(cli "$n" ping)"
        sleep 1
    done
done

# 2. who is in the cluster already
members= fresh=
for n in $nodes; do
    state=$(field "$n" raft_state)
    case $state in
        uninitialized) fresh="$fresh $n" ;;
        "") die "$n has no 'INFO raft' (is the RedisRaft module loaded?)" ;;
        *) members="$members $n" ;;
    esac
done
if [ -z "$members" ]; then
    set -- $fresh
    first=$1; shift; fresh=$*
    reply=$(cli "$first" RAFT.CLUSTER INIT)
    case $reply in
        OK*) log "RAFT.CLUSTER INIT on $first: $reply" ;;
        *) die "RAFT.CLUSTER INIT on $first failed: $reply" ;;
    esac
    members=$first
else
    log "already in the cluster:$members"
fi
for n in $fresh; do
    while :; do
        # shellcheck disable=SC2086 # one argument per member address
        reply=$(cli "$n" RAFT.CLUSTER JOIN $members)
        case $reply in
            OK*) log "RAFT.CLUSTER JOIN on $n ->$members: OK"; break ;;
            *[Aa]lready*) log "$n is already a member"; break ;;
        esac
        time_left || die "RAFT.CLUSTER JOIN on $n failed: $reply"
        log "RAFT.CLUSTER JOIN on $n: $reply (retrying)"
        sleep 1
    done
    members="$members $n"
done

# 3. wait until every node is up and voting, and they agree on a leader
while :; do
    ok=1 leaders= summary=
    for n in $nodes; do
        state=$(field "$n" raft_state) voting=$(field "$n" raft_is_voting)
        role=$(field "$n" raft_role) leader=$(field "$n" raft_leader_id)
        summary="$summary $n=$state/$role/voting:$voting"
        [ "$state" = up ] && [ "$voting" = yes ] && [ -n "$leader" ] && [ "$leader" != -1 ] || ok=0
        leaders="$leaders $leader"
    done
    if [ $ok = 1 ] && [ "$(echo $leaders | tr ' ' '\n' | sort -u | wc -l)" = 1 ]; then
        log "cluster ready:$summary (leader id$(echo $leaders | cut -d' ' -f1 | sed 's/^/ /'))"
        exit 0
    fi
    time_left || die "cluster not ready after ${RAFT_INIT_TIMEOUT:-120} s:$summary"
    sleep 1
done
