#!/bin/sh
# Docker healthcheck of a RedisRaft node: healthy when it answers PING as the
# admin user (password in $WORDCOUNT_SECRETS/redis-admin-password, default
# /run/secrets; via REDISCLI_AUTH: never in argv). Deliberately NOT "has a leader": a new node is healthy before
# RAFT.CLUSTER INIT/JOIN (wordcount-raft-init waits for healthy nodes), and a
# node cut off from the majority must not be restarted for it. Prints the
# node's Raft state and role, which `docker inspect` shows.
set -eu
f=${WORDCOUNT_SECRETS:-/run/secrets}/redis-admin-password
[ -r "$f" ] || { echo "can't read $f" >&2; exit 1; }
pw=$(cat "$f")
export REDISCLI_AUTH="$pw"
cli() { redis-cli --no-auth-warning --user admin -h 127.0.0.1 -p "${REDIS_PORT:-6379}" "$@"; }
cli ping | grep -q PONG
cli info raft 2>/dev/null | tr -d '\r' | grep -E '^raft_(state|role|leader_id|num_voting_nodes):' | tr '\n' ' ' || true
echo
