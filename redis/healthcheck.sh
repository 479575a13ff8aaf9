#!/bin/sh
# Docker/compose healthcheck: healthy when Redis answers PING with the
# password from $REDIS_PASSWORD. The password goes through REDISCLI_AUTH (not
# -a), so it is neither in argv nor echoed.
set -eu
[ -n "${REDIS_PASSWORD:-}" ] || { echo "REDIS_PASSWORD is not set" >&2; exit 1; }
REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping | grep -q PONG
