#!/bin/sh
# Start redis-server with redis/redis.conf, the ACL users of redis/users.acl and
# settings from the environment:
#   WORDCOUNT_SECRETS  where the passwords are (default /run/secrets): for each
#                      user (admin, worker, client) either a directory USER/ (a
#                      volume of its own, as docker-compose.yml mounts them),
#                      where a random password is generated the first time
#                      (USER/redis-USER-password; kept afterwards, never
#                      printed), or a file redis-USER-password (refuses to
#                      start without it). See redis/acl.sh.
#   REDIS_SAVE         RDB schedule, default "1 1" (snapshot every 1 s if >= 1
#                      write happened); set it to "" to turn snapshots off
#   REDIS_APPENDONLY   yes|no, default no
# Extra arguments are passed on to redis-server (e.g. --maxmemory 1gb); a first
# argument that isn't an option is run as a command instead (e.g. redis-cli).
# The default user is off: every connection names its user (admin, worker,
# client). Only SHA-256 hashes of the passwords are written, to a 0600 aclfile
# outside /data (rendered again at every start, so new passwords take effect on
# a restart); no password is ever in argv, the environment, `ps` or the logs.
# Operators: `docker compose exec redis wordcount-redis-cli ...` (redis-cli as
# admin, the password read from its file).
set -eu

CONF=${REDIS_CONF:-/etc/wordcount/redis.conf}
ACL_TEMPLATE=${REDIS_ACL_TEMPLATE:-/etc/wordcount/users.acl}
ACLFILE=${REDIS_ACLFILE:-/tmp/wordcount-users.acl}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

save=${REDIS_SAVE-1 1}
appendonly=${REDIS_APPENDONLY:-no}
case $appendonly in
    yes|no) ;;
    *) echo "redis-entrypoint: REDIS_APPENDONLY must be yes or no, not '$appendonly'" >&2; exit 64 ;;
esac

umask 077
wordcount-redis-acl --generate "$ACL_TEMPLATE" >"$ACLFILE.new" || { rm -f "$ACLFILE.new"; exit 64; }
mv "$ACLFILE.new" "$ACLFILE"
users=$(cut -d' ' -f2,3 "$ACLFILE" | tr '\n' ',' | sed 's/,$//; s/,/, /g')

echo "redis-entrypoint: redis-server $CONF (save \"$save\", appendonly $appendonly, dir /data, users: $users)"
exec redis-server "$CONF" --dir /data --appendonly "$appendonly" --save "$save" \
    --aclfile "$ACLFILE" "$@"
