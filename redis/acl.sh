#!/bin/sh
# Render ACL templates (redis/users.acl; + redis/raft-users.acl on RedisRaft
# nodes) into the aclfile redis-server loads, on stdout:
#   wordcount-redis-acl [--append USER RULES]... TEMPLATE... > ACLFILE
# Comments (# ...) and blank lines are dropped; --append adds RULES to USER's
# line (RedisRaft nodes add +raft to the worker and client users: the module
# wraps every command in RAFT, then checks the wrapped one against the same
# ACL); every `user NAME ...` line but the default user's gets
# `#<sha256 of NAME's password>` appended, the password read from
# $WORDCOUNT_SECRETS/redis-NAME-password (default /run/secrets: the compose
# secrets; trailing newlines ignored). Only hashes reach the aclfile.
# A missing or empty password file is an error (exit 64) naming the file.
# Used by redis/entrypoint.sh and redis/raft-entrypoint.sh, and by
# tests/test_acl.py, which runs this very script on the host.
set -eu

dir=${WORDCOUNT_SECRETS:-/run/secrets}
extra=
while [ "$#" -gt 0 ]; do
    case $1 in
        --append) [ "$#" -ge 3 ] || { echo "redis-acl: --append needs USER RULES" >&2; exit 64; }
                  extra="$extra$2 $3
"; shift 3 ;;
        --) shift; break ;;
        -*) echo "redis-acl: unknown option $1" >&2; exit 64 ;;
        *) break ;;
    esac
done
[ "$#" -gt 0 ] || { echo "redis-acl: usage: $0 [--append USER RULES]... TEMPLATE..." >&2; exit 64; }
for t in "$@"; do [ -r "$t" ] || { echo "redis-acl: can't read the template $t" >&2; exit 64; }; done

hash_of() {   # hash_of FILE: hex SHA-256 of the password in FILE
    [ -r "$1" ] || { echo "redis-acl: can't read the password file $1 (a compose secret: run \`make env\`)" >&2; return 64; }
    pw=$(cat "$1")
    [ -n "$pw" ] || { echo "redis-acl: the password file $1 is empty" >&2; return 64; }
    printf '%s' "$pw" | sha256sum | cut -d' ' -f1
}

cat "$@" | while IFS= read -r line || [ -n "$line" ]; do
    line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    case $line in
        ""|"#"*) continue ;;
        "user default "*) printf '%s\n' "$line" ;;
        "user "*)
            name=$(printf '%s' "$line" | cut -d' ' -f2)
            more=$(printf '%s' "$extra" | sed -n "s/^$name //p" | tr '\n' ' ')
            h=$(hash_of "$dir/redis-$name-password") || exit 64
            printf '%s %s#%s\n' "$line" "$more" "$h" ;;
        *) echo "redis-acl: not a user line: $line" >&2; exit 64 ;;
    esac
done
