#!/bin/sh
# Start one RedisRaft node (redis/raft.Dockerfile): redis-server 7.2.6 with the
# RedisRaft module, its Raft log in /data/raft.db, no RDB schedule and no AOF
# (the Raft log is the persistence; RedisRaft writes its own snapshots).
#   WORDCOUNT_SECRETS    where the password files are (default /run/secrets, the
#                        compose secrets): redis-{admin,worker,client}-password
#                        for the users of redis/users.acl, redis-raft-password
#                        for the `raft` user the nodes talk to each other as
#                        (raft.cluster-user / raft.cluster-password)
#   RAFT_ADDR            host:port the OTHER nodes reach this one at
#                        (default: $(hostname):$REDIS_PORT; compose sets hostname)
#   REDIS_PORT           default 6379
# Extra arguments go to redis-server (e.g. --raft.election-timeout 500); a first
# argument that isn't an option is run as a command instead (e.g. redis-cli).
# The config goes to redis-server on stdin (the `-` argument) and the aclfile
# holds only hashes: no password in argv, `ps` or the logs. A node that already
# has a Raft log replays it and rejoins by itself; a new one waits for
# RAFT.CLUSTER INIT / JOIN (wordcount-raft-init).
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

secrets=${WORDCOUNT_SECRETS:-/run/secrets}
ACLFILE=${REDIS_ACLFILE:-/tmp/wordcount-users.acl}
umask 077
# the worker and client users need the RAFT wrapper command RedisRaft turns
# every command into; the wrapped command is then checked against their ACL
wordcount-redis-acl --append worker +raft --append client +raft \
    /etc/wordcount/users.acl /etc/wordcount/raft-users.acl >"$ACLFILE.new" \
    || { rm -f "$ACLFILE.new"; exit 64; }
mv "$ACLFILE.new" "$ACLFILE"
raft_password=$(cat "$secrets/redis-raft-password")

port=${REDIS_PORT:-6379}
addr=${RAFT_ADDR:-$(hostname):$port}
module=${RAFT_MODULE:-/usr/local/lib/redis/modules/redisraft.so}

# Quote for redis.conf syntax: backslash and double quote escaped, in "...".
conf_quote() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }

state=new
[ -s /data/raft.db ] && state="has a Raft log: replaying it and rejoining"
echo "raft-entrypoint: redis-server :$port + RedisRaft, raft.addr $addr, dir /data ($state), users: admin worker client raft"
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
