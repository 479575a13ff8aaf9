#!/bin/sh
# Docker/compose healthcheck: healthy when Redis answers PING as the admin user
# (password from $WORDCOUNT_SECRETS/redis-admin-password, default /run/secrets).
# The password goes through REDISCLI_AUTH (not -a), so it is neither in argv
# nor echoed.
set -eu
f=${WORDCOUNT_SECRETS:-/run/secrets}/redis-admin-password
[ -r "$f" ] || { echo "can't read $f" >&2; exit 1; }
REDISCLI_AUTH=$(cat "$f") redis-cli --no-auth-warning --user admin -h 127.0.0.1 \
    -p "${REDIS_PORT:-6379}" ping | grep -q PONG
