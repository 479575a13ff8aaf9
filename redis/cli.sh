#!/bin/sh
# redis-cli as the admin user, for operators and healthchecks inside a Redis or
# RedisRaft container of the compose clusters:
#   docker compose exec redis wordcount-redis-cli INFO keyspace
#   docker compose -f compose.raft.yml exec raft1 wordcount-redis-cli INFO raft
# The password is read from $WORDCOUNT_SECRETS/redis-admin-password if that
# exists, else from $WORDCOUNT_SECRETS/admin/redis-admin-password (the admin
# volume; default /run/secrets: as redis/acl.sh finds it), and reaches
# redis-cli through REDISCLI_AUTH: never in argv, never printed.
# Host -h 127.0.0.1 and port $REDIS_PORT (6379) unless the arguments say otherwise.
set -eu
d=${WORDCOUNT_SECRETS:-/run/secrets}
f=$d/redis-admin-password
[ -e "$f" ] || f=$d/admin/redis-admin-password
[ -r "$f" ] || { echo "wordcount-redis-cli: can't read the admin password file $f" >&2; exit 1; }
REDISCLI_AUTH=$(cat "$f")
export REDISCLI_AUTH
exec redis-cli --no-auth-warning --user admin -h 127.0.0.1 -p "${REDIS_PORT:-6379}" "$@"
