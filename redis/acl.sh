#!/bin/sh
# Render ACL templates (redis/users.acl; + redis/raft-users.acl on RedisRaft
# nodes) into the aclfile redis-server loads, on stdout:
#   wordcount-redis-acl [--generate] [--append USER RULES]... TEMPLATE... > ACLFILE
# Comments (# ...) and blank lines are dropped; --append adds RULES to USER's
# line (RedisRaft nodes add +raft to the worker and client users: the module
# wraps every command in RAFT, then checks the wrapped one against the same
# ACL), and so does a template line `append USER RULES`, wherever it is (so
# redis/raft-users.acl gives the dashboard user +raft on RedisRaft nodes only;
# redis-server would refuse +raft where the module is not loaded); every
# `user NAME ...` line but the default user's gets
# `#<sha256 of NAME's password>` appended. Only hashes reach the aclfile.
# Where NAME's password is, under $WORDCOUNT_SECRETS (default /run/secrets):
#   redis-NAME-password        if that file exists (a directory of files, as
#                              tests/test_acl.py or compose `secrets:` make it)
#   NAME/redis-NAME-password   else, if the directory NAME/ exists: one volume
#                              per user (the compose clusters: each service
#                              mounts only its own user's volume)
# Trailing newlines are ignored. A missing or empty password file is an error
# (exit 64) naming the file.
# --generate: a user whose directory NAME/ exists but holds no password yet
# gets one first: 48 random hex digits from /dev/urandom, written to a
# temporary file and hard-linked into place, which fails if another process
# (another RedisRaft node on the same volume) was first: every writer then
# reads back the one that won. Never overwrites a password and never prints
# one; the file is 0644 if its directory may be entered by others (a worker or
# client reads it as another uid), else 0600.
# Used by redis/entrypoint.sh and redis/raft-entrypoint.sh (with --generate),
# and by tests/test_acl.py, which runs this very script on the host.
set -eu

dir=${WORDCOUNT_SECRETS:-/run/secrets}
extra= generate=0
while [ "$#" -gt 0 ]; do
    case $1 in
        --append) [ "$#" -ge 3 ] || { echo "redis-acl: --append needs USER RULES" >&2; exit 64; }
                  extra="$extra$2 $3
"; shift 3 ;;
        --generate) generate=1; shift ;;
        --) shift; break ;;
        -*) echo "redis-acl: unknown option $1" >&2; exit 64 ;;
        *) break ;;
    esac
done
[ "$#" -gt 0 ] || { echo "redis-acl: usage: $0 [--generate] [--append USER RULES]... TEMPLATE..." >&2; exit 64; }
for t in "$@"; do [ -r "$t" ] || { echo "redis-acl: can't read the template $t" >&2; exit 64; }; done
# the templates' own `append USER RULES` lines, after the --append ones
extra="$extra$(sed -n 's/^[[:space:]]*append[[:space:]][[:space:]]*//p' "$@")
"

password_file() {   # password_file NAME: where NAME's password is (or is to be)
    if [ ! -e "$dir/redis-$1-password" ] && [ -d "$dir/$1" ]; then
        echo "$dir/$1/redis-$1-password"
    else
        echo "$dir/redis-$1-password"
    fi
}

generate() {   # generate NAME: a new random password for NAME, unless it has one
    d=$dir/$1 f=$(password_file "$1")
    [ "$f" = "$d/redis-$1-password" ] && [ ! -s "$f" ] || return 0
    tmp=$(mktemp "$d/.new-password.XXXXXX") \
        || { echo "redis-acl: can't write a password into $d (whose volume is it?)" >&2; return 64; }
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$tmp"
    if [ "$(wc -c <"$tmp")" -ne 48 ]; then rm -f "$tmp"; echo "redis-acl: could not read /dev/urandom" >&2; return 64; fi
    if [ -n "$(find "$d" -maxdepth 0 -perm -o+x)" ]; then chmod 0644 "$tmp"; else chmod 0600 "$tmp"; fi
    ln "$tmp" "$f" 2>/dev/null || true   # (exists already: another node was first)
    rm -f "$tmp"
    [ -s "$f" ] || { echo "redis-acl: could not create $f" >&2; return 64; }
}

hash_of() {   # hash_of FILE: hex SHA-256 of the password in FILE
    [ -r "$1" ] || { echo "redis-acl: can't read the password file $1" >&2; return 64; }
    pw=$(cat "$1")
    [ -n "$pw" ] || { echo "redis-acl: the password file $1 is empty" >&2; return 64; }
    printf '%s' "$pw" | sha256sum | cut -d' ' -f1
}

cat "$@" | while IFS= read -r line || [ -n "$line" ]; do
    line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    case $line in
        ""|"#"*) continue ;;
        "append "*) continue ;;   # (read above)
        "user default "*) printf '%s\n' "$line" ;;
        "user "*)
            name=$(printf '%s' "$line" | cut -d' ' -f2)
            more=$(printf '%s' "$extra" | sed -n "s/^$name //p" | tr '\n' ' ')
            if [ "$generate" = 1 ]; then generate "$name" || exit 64; fi
            h=$(hash_of "$(password_file "$name")") || exit 64
            printf '%s %s#%s\n' "$line" "$more" "$h" ;;
        *) echo "redis-acl: not a user line: $line" >&2; exit 64 ;;
    esac
done
