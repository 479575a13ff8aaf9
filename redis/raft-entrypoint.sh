#!/bin/sh
# Start one RedisRaft node (redis/raft.Dockerfile): redis-server 7.2.6 with the
# RedisRaft module, its Raft log in /data/raft.db, no RDB schedule and no AOF
# (the Raft log is the persistence; RedisRaft writes its own snapshots).
#   REDIS_PASSWORD       the password (requirepass), also used between the nodes
#   REDIS_PASSWORD_FILE  ... or a file holding it (e.g. a docker secret)
#   RAFT_ADDR            host:port the OTHER nodes reach this one at
#                        (default: $(hostname):$REDIS_PORT; compose sets hostname)
#   REDIS_PORT           default 6379
# Extra arguments go to redis-server (e.g. --raft.election-timeout 500); a first
# argument that isn't an option is run as a command instead (e.g. redis-cli).
# The passwords go to redis-server on stdin (the `-` argument): never in argv,
# `ps` or the logs. A node that already has a Raft log replays it and rejoins by
# itself; a new one waits for RAFT.CLUSTER INIT / JOIN (wordcount-raft-init).
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ -z "${REDIS_PASSWORD:-}" ] && [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
    [ -r "$REDIS_PASSWORD_FILE" ] || { echo "raft-entrypoint: can't read REDIS_PASSWORD_FILE=$REDIS_PASSWORD_FILE" >&2; exit 64; }
    REDIS_PASSWORD=$(cat "$REDIS_PASSWORD_FILE")
fi
if [ -z "${REDIS_PASSWORD:-}" ]; then
    echo "raft-entrypoint: no password: set REDIS_PASSWORD (or REDIS_PASSWORD_FILE); refusing to start without one" >&2
    exit 64
fi

port=${REDIS_PORT:-6379}
addr=${RAFT_ADDR:-$(hostname):$port}
module=${RAFT_MODULE:-/usr/local/lib/redis/modules/redisraft.so}

# Quote for redis.conf syntax: backslash and double quote escaped, in "...".
conf_quote() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }

state=new
[ -s /data/raft.db ] && state="has a Raft log: replaying it and rejoining"
echo "raft-entrypoint: redis-server :$port + RedisRaft, raft.addr $addr, dir /data ($state), password set"
exec redis-server - --port "$port" "$@" <<CONF
bind 0.0.0.0
protected-mode yes
dir /data
save ""
appendonly no
maxmemory-policy noeviction
busy-reply-threshold 5000
requirepass $(conf_quote "$REDIS_PASSWORD")
loadmodule $module
raft.addr $addr
raft.log-filename raft.db
raft.cluster-password $(conf_quote "$REDIS_PASSWORD")
CONF
