#!/usr/bin/env bash
# Make ./.env hold the cluster's Redis passwords (docker-compose.yml and
# compose.raft.yml read them as compose secrets): each of
#   REDIS_ADMIN_PASSWORD REDIS_WORKER_PASSWORD REDIS_CLIENT_PASSWORD REDIS_RAFT_PASSWORD
# that .env does not define yet is added, 48 random hex digits from
# /dev/urandom. Never overwrites or prints a password; .env is created with mode
# 0600 (and an existing one that others may read is made 0600); it is
# git-ignored and kept out of every docker build context (.dockerignore).
# Run by `make env` and by every make target that starts the cluster; after
# it, a plain `docker compose up ...` works too.
# Usage: scripts/env.sh [ENV_FILE]   (default: .env at the repo root)
set -euo pipefail

log() { echo "env: $*" >&2; }
die() { echo "env: ERROR: $*" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_FILE=${1:-$ROOT/.env}
VARS=(REDIS_ADMIN_PASSWORD REDIS_WORKER_PASSWORD REDIS_CLIENT_PASSWORD REDIS_RAFT_PASSWORD)

umask 077
if [[ ! -e $ENV_FILE ]]; then
    : >"$ENV_FILE" || die "can't create $ENV_FILE"
    log "created $ENV_FILE (mode 0600)"
fi
[[ -f $ENV_FILE && -r $ENV_FILE && -w $ENV_FILE ]] || die "$ENV_FILE is not a readable and writable file"
if [[ -n $(find "$ENV_FILE" -perm /077 -print) ]]; then
    chmod 0600 "$ENV_FILE" || die "can't chmod 0600 $ENV_FILE"
    log "$ENV_FILE was readable by others: now mode 0600"
fi

added=()
for var in "${VARS[@]}"; do
    line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?$var=" "$ENV_FILE" | tail -n 1 || true)
    if [[ -n $line ]]; then
        value=${line#*=}; value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
        [[ -n $value ]] || die "$var is empty in $ENV_FILE: give it a value or delete that line (then run this again)"
        continue
    fi
    pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    [[ ${#pw} -eq 48 ]] || die "could not read /dev/urandom"
    # (a last line without a newline would swallow ours)
    [[ ! -s $ENV_FILE || -z $(tail -c 1 "$ENV_FILE") ]] || echo >>"$ENV_FILE"
    printf '%s=%s\n' "$var" "$pw" >>"$ENV_FILE"
    added+=("$var")
done
if [[ ${#added[@]} -gt 0 ]]; then
    log "generated ${added[*]} into $ENV_FILE (random; not shown)"
fi
