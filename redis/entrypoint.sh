#!/bin/sh
# Start redis-server with redis/redis.conf plus settings from the environment:
#   REDIS_PASSWORD    required: refuses to start without one
#   REDIS_SAVE        RDB schedule, default "1 1" (snapshot every 1 s if >= 1
#                     write happened); set it to "" to turn snapshots off
#   REDIS_APPENDONLY  yes|no, default no
# Extra arguments are passed on to redis-server (e.g. --maxmemory 1gb); a first
# argument that isn't an option is run as a command instead (e.g. redis-cli).
# The password goes to redis-server on stdin (the `-` argument), so it never
# shows in argv, `ps` or the logs.
set -eu

CONF=${REDIS_CONF:-/etc/wordcount/redis.conf}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ -z "${REDIS_PASSWORD:-}" ]; then
    echo "redis-entrypoint: REDIS_PASSWORD is empty: refusing to start Redis without a password (set REDIS_PASSWORD, e.g. in .env for docker compose)" >&2
    exit 64
fi

save=${REDIS_SAVE-1 1}
appendonly=${REDIS_APPENDONLY:-no}
case $appendonly in
    yes|no) ;;
    *) echo "redis-entrypoint: REDIS_APPENDONLY must be yes or no, not '$appendonly'" >&2; exit 64 ;;
esac

# Quote for redis.conf syntax: backslash and double quote escaped, in "...".
conf_quote() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }

echo "redis-entrypoint: redis-server $CONF (save \"$save\", appendonly $appendonly, dir /data, password set)"
exec redis-server "$CONF" --dir /data --appendonly "$appendonly" --save "$save" "$@" - <<CONF
requirepass $(conf_quote "$REDIS_PASSWORD")
CONF
