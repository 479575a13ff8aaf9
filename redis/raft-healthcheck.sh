#!/bin/sh
# Docker healthcheck of a RedisRaft node: healthy when it answers PING with the
# password (REDIS_PASSWORD or REDIS_PASSWORD_FILE, via REDISCLI_AUTH: never in
# argv). Deliberately NOT "has a leader": a new node is healthy before
# RAFT.CLUSTER INIT/JOIN (wordcount-raft-init waits for healthy nodes), and a
# node cut off from the majority must not be restarted for it. Prints the
# node's Raft state and role, which `docker inspect` shows.
set -eu
pw=${REDIS_PASSWORD:-}
[ -n "$pw" ] || { [ -n "${REDIS_PASSWORD_FILE:-}" ] && pw=$(cat "$REDIS_PASSWORD_FILE"); } || true
[ -n "$pw" ] || { echo "no REDIS_PASSWORD / REDIS_PASSWORD_FILE" >&2; exit 1; }
export REDISCLI_AUTH="$pw"
cli() { redis-cli --no-auth-warning -h 127.0.0.1 -p "${REDIS_PORT:-6379}" "$@"; }
cli ping | grep -q PONG
cli info raft 2>/dev/null | tr -d '\r' | grep -E '^raft_(state|role|leader_id|num_voting_nodes):' | tr '\n' ' ' || true
echo
