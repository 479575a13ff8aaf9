#!/usr/bin/env bash
# The pinned Redis and RedisRaft sources that the RedisRaft image and the host
# binaries are built from, kept in a source cache OUTSIDE the repo (no upstream
# code is ever committed here):
#   $WORDCOUNT_SRC_CACHE/redis       git checkout of Redis, tag 7.2.6
#   $WORDCOUNT_SRC_CACHE/redisraft   git checkout of RedisRaft at commit ade4aa8e
#                                    (its dependencies are vendored in deps/)
# WORDCOUNT_SRC_CACHE defaults to ~/.cache/wordcount/src.
#
# Usage: scripts/raft-sources.sh            verify the cache; clone what is
#                                            missing (short timeout); without
#                                            network, say what to put where, exit 1
#        scripts/raft-sources.sh --check    verify only: exit 0, or print ONE line
#                                            saying what is missing and exit 1
#        scripts/raft-sources.sh --stage DIR  verify, then export clean trees (no
#                                            .git) to DIR/redis and DIR/redisraft,
#                                            only when DIR holds other commits
#        scripts/raft-sources.sh --pins     print the pins as shell assignments
# Env:   WORDCOUNT_SRC_CACHE       the cache (default ~/.cache/wordcount/src)
#        WORDCOUNT_REDIS_GIT       where to clone Redis from (default its public
#                                  GitHub repository; a local clone or mirror works)
#        WORDCOUNT_REDISRAFT_GIT   the same for RedisRaft
#        WORDCOUNT_GIT_TIMEOUT     seconds for the first contact with each remote
#                                  (default 20); the clone itself gets 15 minutes
set -euo pipefail

REDIS_TAG=7.2.6
REDIS_COMMIT=ae6a2aa95cd094b032e7a69b8b59f64dd1ed085f   # what tag 7.2.6 points at
REDISRAFT_COMMIT=ade4aa8e6aa5c3b21678a1998309825f06567d4f
REDIS_GIT=${WORDCOUNT_REDIS_GIT:-https://github.com/redis/redis}
REDISRAFT_GIT=${WORDCOUNT_REDISRAFT_GIT:-https://github.com/RedisLabs/redisraft}
CACHE=${WORDCOUNT_SRC_CACHE:-$HOME/.cache/wordcount/src}
GIT_TIMEOUT=${WORDCOUNT_GIT_TIMEOUT:-20}
CLONE_TIMEOUT=900

log() { echo "raft-sources: $*"; }
die() { echo "raft-sources: ERROR: $*" >&2; exit 1; }

# --- verifying ------------------------------------------------------------------
# check NAME COMMIT: empty output when $CACHE/NAME is a clean checkout of COMMIT,
# else why not (one phrase).
check() {
    local dir=$CACHE/$1 want=$2 head
    [[ -e $dir ]] || { echo "$dir is missing"; return; }
    command -v git >/dev/null 2>&1 || { echo "git is not installed (needed to verify $dir)"; return; }
    head=$(git -C "$dir" rev-parse --verify -q 'HEAD^{commit}' 2>/dev/null) \
        || { echo "$dir is not a git checkout"; return; }
    [[ $head == "$want" ]] || { echo "$dir is at commit ${head:0:12}, not the pinned ${want:0:12}"; return; }
    git -C "$dir" diff --quiet HEAD -- 2>/dev/null \
        || { echo "$dir has local changes to tracked files (git -C $dir checkout -- . undoes them)"; return; }
}

problems() {   # one line per source that is not right
    local why
    why=$(check redis "$REDIS_COMMIT"); [[ -z $why ]] || echo "Redis $REDIS_TAG: $why"
    why=$(check redisraft "$REDISRAFT_COMMIT"); [[ -z $why ]] || echo "RedisRaft ${REDISRAFT_COMMIT:0:8}: $why"
}

# --- fetching ---------------------------------------------------------------------
GIT=(env GIT_TERMINAL_PROMPT=0 git -c advice.detachedHead=false)

reachable() {   # reachable URL: the remote answers within GIT_TIMEOUT
    GIT_TERMINAL_PROMPT=0 timeout "$GIT_TIMEOUT" git -c http.lowSpeedLimit=1 \
        -c http.lowSpeedTime="$GIT_TIMEOUT" ls-remote --heads "$1" >/dev/null 2>&1
}

# fetch_into NAME URL COMMIT [TAG]: a fresh checkout of COMMIT in $CACHE/NAME
# (built next to it, then moved into place: never a half-cloned cache).
fetch_into() {
    local name=$1 url=$2 commit=$3 tag=${4:-} tmp dest=$CACHE/$1
    tmp=$(mktemp -d "$CACHE/.$name.XXXXXX")
    log "fetching $name ${tag:-${commit:0:12}} from $url"
    "${GIT[@]}" init -q "$tmp"
    # the one commit (a shallow fetch) if the remote lets us; else everything
    if ! { [[ -n $tag ]] && timeout "$CLONE_TIMEOUT" "${GIT[@]}" -C "$tmp" fetch -q --depth 1 "$url" \
               "refs/tags/$tag:refs/tags/$tag"; } 2>/dev/null \
       && ! timeout "$CLONE_TIMEOUT" "${GIT[@]}" -C "$tmp" fetch -q --depth 1 "$url" "$commit" 2>/dev/null \
       && ! timeout "$CLONE_TIMEOUT" "${GIT[@]}" -C "$tmp" fetch -q "$url" \
               "+refs/heads/*:refs/remotes/origin/*" "+refs/tags/*:refs/tags/*"; then
        rm -rf "$tmp"
        return 1
    fi
    if ! "${GIT[@]}" -C "$tmp" checkout -q "$commit" 2>/dev/null; then
        rm -rf "$tmp"
        log "$url has no commit $commit"
        return 1
    fi
    git -C "$tmp" remote add origin "$url" 2>/dev/null || true
    rm -rf "$dest"
    mv "$tmp" "$dest"
}

instructions() {
    cat >&2 <<EOF
raft-sources: the RedisRaft sources are not in the cache and could not be fetched
raft-sources: (no network to their public repositories?). Put them there by hand:

  $CACHE/redis
      a git clone of $REDIS_GIT
      with tag $REDIS_TAG checked out (commit $REDIS_COMMIT)
  $CACHE/redisraft
      a git clone of $REDISRAFT_GIT
      with commit $REDISRAFT_COMMIT checked out
      (its dependencies are vendored in deps/: nothing else to fetch)

For example, on a machine that reaches them:
  git clone --branch $REDIS_TAG $REDIS_GIT redis
  git clone $REDISRAFT_GIT redisraft && git -C redisraft checkout $REDISRAFT_COMMIT
then copy both directories, .git included, into $CACHE/
(or set WORDCOUNT_REDIS_GIT / WORDCOUNT_REDISRAFT_GIT to local clones or
mirrors and run \`make raft-sources\` again). Then: make images, make raft-bin.
EOF
}

# --- staging a build context --------------------------------------------------------
stage() {   # stage DIR
    local dir=$1 want
    want=$(printf 'redis %s\nredisraft %s\n' "$REDIS_COMMIT" "$REDISRAFT_COMMIT")
    if [[ -f $dir/SOURCES && $(cat "$dir/SOURCES") == "$want" && -d $dir/redis && -d $dir/redisraft ]]; then
        return 0
    fi
    rm -rf "$dir/redis" "$dir/redisraft" "$dir/SOURCES"
    mkdir -p "$dir/redis" "$dir/redisraft"
    git -C "$CACHE/redis" archive --format=tar "$REDIS_COMMIT" | tar -x -C "$dir/redis"
    git -C "$CACHE/redisraft" archive --format=tar "$REDISRAFT_COMMIT" | tar -x -C "$dir/redisraft"
    printf '%s\n' "$want" >"$dir/SOURCES"
    log "staged Redis $REDIS_TAG and RedisRaft ${REDISRAFT_COMMIT:0:8} in $dir"
}

# --- main ------------------------------------------------------------------------------
mode=ensure stage_dir=
case ${1:-} in
    "") ;;
    --check) mode=check ;;
    --pins) printf 'REDIS_TAG=%s\nREDIS_COMMIT=%s\nREDISRAFT_COMMIT=%s\nCACHE=%q\n' \
                "$REDIS_TAG" "$REDIS_COMMIT" "$REDISRAFT_COMMIT" "$CACHE"; exit 0 ;;
    --stage) mode=stage stage_dir=${2:?--stage needs a directory} ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac

mapfile -t bad < <(problems)
case $mode in
    check)
        if [[ ${#bad[@]} -gt 0 ]]; then
            echo "RedisRaft sources not in the cache (${bad[0]}${bad[1]:+; ${bad[1]}}): run \`make raft-sources\`"
            exit 1
        fi
        exit 0 ;;
    stage)
        [[ ${#bad[@]} -eq 0 ]] || die "${bad[0]} (run \`make raft-sources\`)"
        stage "$stage_dir"
        exit 0 ;;
esac

if [[ ${#bad[@]} -eq 0 ]]; then
    log "Redis $REDIS_TAG (${REDIS_COMMIT:0:12}) and RedisRaft ${REDISRAFT_COMMIT:0:12} are in $CACHE"
    exit 0
fi
command -v git >/dev/null 2>&1 || die "git is not installed (apt-get install git)"
mkdir -p "$CACHE"
failed=0
if [[ -n $(check redis "$REDIS_COMMIT") ]]; then
    if reachable "$REDIS_GIT" && fetch_into redis "$REDIS_GIT" "$REDIS_COMMIT" "$REDIS_TAG"; then :
    else log "could not fetch Redis $REDIS_TAG from $REDIS_GIT"; failed=1; fi
fi
if [[ -n $(check redisraft "$REDISRAFT_COMMIT") ]]; then
    if reachable "$REDISRAFT_GIT" && fetch_into redisraft "$REDISRAFT_GIT" "$REDISRAFT_COMMIT"; then :
    else log "could not fetch RedisRaft ${REDISRAFT_COMMIT:0:12} from $REDISRAFT_GIT"; failed=1; fi
fi
mapfile -t bad < <(problems)
if [[ $failed -ne 0 || ${#bad[@]} -gt 0 ]]; then
    for b in "${bad[@]}"; do log "$b"; done
    instructions
    exit 1
fi
log "Redis $REDIS_TAG (${REDIS_COMMIT:0:12}) and RedisRaft ${REDISRAFT_COMMIT:0:12} are in $CACHE"
