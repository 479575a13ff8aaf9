#!/bin/sh
# Start one RedisRaft node (redis/raft.Dockerfile): redis-server 7.2.6 with the
# RedisRaft module, its Raft log in /data/raft.db, no RDB schedule and no AOF
# (the Raft log is the persistence; RedisRaft writes its own snapshots).
#   WORDCOUNT_SECRETS    where the passwords are (default /run/secrets), as
#                        redis/acl.sh finds them: admin, worker, client (the
#                        users of redis/users.acl) and raft (the user the nodes
#                        talk to each other as: raft.cluster-user /
#                        raft.cluster-password), each a file redis-USER-password
#                        or a directory USER/ (compose.raft.yml: one volume per
#                        user, shared by the three nodes) where the first node
#                        to start generates it (atomically: all agree)
#   RAFT_ADDR            host:port the OTHER nodes reach this one at
#                        (default: $(hostname):$REDIS_PORT; compose sets hostname)
#   RAFT_NODES           every node's host:port (compose.raft.yml sets it): a
#                        node not in a cluster yet forms or joins it by itself
#                        (wordcount-raft-init, redis/raft-init.sh, started in
#                        the background; the first node of the list INITs).
#                        Unset: the node waits for RAFT.CLUSTER INIT / JOIN
#   REDIS_PORT           default 6379
# Extra arguments go to redis-server (e.g. --raft.election-timeout 500); a first
# argument that isn't an option is run as a command instead (e.g. redis-cli).
# The config goes to redis-server on stdin (the `-` argument) and the aclfile
# holds only hashes: no password in argv, the environment, `ps` or the logs. A
# node that already has a Raft log replays it and rejoins by itself; a new one
# is INITed or JOINed by wordcount-raft-init (RAFT_NODES) or by hand. Run it
# with an init (compose `init: true`): the detached wordcount-raft-init is
# reaped by it, not by redis-server.
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

secrets=${WORDCOUNT_SECRETS:-/run/secrets}
ACLFILE=${REDIS_ACLFILE:-/tmp/wordcount-users.acl}
umask 077
# the worker and client users need the RAFT wrapper command RedisRaft turns
# every command into; the wrapped command is then checked against their ACL
wordcount-redis-acl --generate --append worker +raft --append client +raft \
    /etc/wordcount/users.acl /etc/wordcount/raft-users.acl >"$ACLFILE.new" \
    || { rm -f "$ACLFILE.new"; exit 64; }
mv "$ACLFILE.new" "$ACLFILE"
raft_file=$secrets/redis-raft-password
[ -e "$raft_file" ] || raft_file=$secrets/raft/redis-raft-password
raft_password=$(cat "$raft_file")

port=${REDIS_PORT:-6379}
addr=${RAFT_ADDR:-$(hostname):$port}
module=${RAFT_MODULE:-/usr/local/lib/redis/modules/redisraft.so}

# Quote for redis.conf syntax: backslash and double quote escaped, in "...".
conf_quote() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }

state=new
[ -s /data/raft.db ] && state="has a Raft log: replaying it and rejoining"
echo "raft-entrypoint: redis-server :$port + RedisRaft, raft.addr $addr, dir /data ($state), users: admin worker client dashboard chaos raft"
if [ -n "${RAFT_NODES:-}" ]; then
    # detached (its parent exits at once): it outlives this shell's exec
    (RAFT_ADDR=$addr REDIS_PORT=$port wordcount-raft-init </dev/null &)
fi
exec redis-server - --port "$port" "$@" <<CONF
bind 0.0.0.0
protected-mode yes
dir /data
save ""
appendonly no
maxmemory-policy noeviction
busy-reply-threshold 5000
aclfile $ACLFILE
loadmodule $module
raft.addr $addr
raft.log-filename raft.db
raft.cluster-user raft
raft.cluster-password $(conf_quote "$raft_password")
CONF
