#!/usr/bin/env bash
# Pin the images' Python dependencies: services/requirements/{base,fast,chaos}.txt,
# made by `uv pip compile` (uv pinned below, installed from PyPI into
# build/tools/uv-venv on first use) from pyproject.toml's runtime dependencies
# plus, for fast and chaos, that extra (for base: the dashboard extra); resolved for the images' interpreter:
# CPython 3.11.2 (bookworm's python3) on x86_64 manylinux, so the lock is exactly
# what an image installs (e.g. async-timeout, which redis needs before 3.11.3;
# python:3.11-slim installs it too, harmlessly). Each file records the
# SHA-256 of the pyproject.toml it was made from; scripts/wheelhouse.sh runs this
# again when pyproject.toml changed since (`make lock` does it by hand).
# Usage: scripts/lock.sh [--check]   (--check: exit 1 if a lock is stale, no network)
set -euo pipefail

UV_VERSION=0.13.9
log() { echo "lock: $*"; }
die() { echo "lock: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=services/requirements
want=$(sha256sum pyproject.toml | cut -d' ' -f1)

stale() {   # the names of the locks not made from this pyproject.toml
    for name in base fast chaos; do
        grep -qx "# pyproject.toml sha256: $want" "$OUT/$name.txt" 2>/dev/null || echo "$name"
    done
}
if [[ ${1:-} == --check ]]; then
    s=$(stale | tr '\n' ' ')
    [[ -z $s ]] || { echo "lock: stale ($s): pyproject.toml changed since; run \`make lock\`"; exit 1; }
    exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument '$1' (usage: $0 [--check])"

UV=build/tools/uv-venv/bin/uv
if ! [[ -x $UV && $("$UV" --version 2>/dev/null) == "uv $UV_VERSION"* ]]; then
    PYTHON=${PYTHON:-python3}
    log "installing uv $UV_VERSION into build/tools/uv-venv"
    rm -rf build/tools/uv-venv
    "$PYTHON" -m venv build/tools/uv-venv || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    build/tools/uv-venv/bin/pip install -q --disable-pip-version-check "uv==$UV_VERSION" \
        || die "pip install uv==$UV_VERSION failed (PyPI unreachable?)"
fi

mkdir -p "$OUT"
for name in base fast chaos; do
    # (base: the package and its dashboard, which runs in the client image)
    extra=(--extra "$name"); [[ $name != base ]] || extra=(--extra dashboard)
    tmp=$(mktemp)
    if ! "$UV" pip compile --quiet --python-version 3.11.2 \
            --python-platform x86_64-manylinux_2_28 --no-header \
            --no-annotate "${extra[@]}" pyproject.toml -o "$tmp" 2>"$tmp.err"; then
        cat "$tmp.err" >&2; rm -f "$tmp" "$tmp.err"
        die "uv pip compile failed for $name"
    fi
    { echo "# The $name image's Python dependencies (wordcount${extra[1]:+[${extra[1]}]}), pinned."
      echo "# Made by scripts/lock.sh (uv $UV_VERSION pip compile, CPython 3.11.2 x86_64); do not edit."
      echo "# pyproject.toml sha256: $want"
      cat "$tmp"; } >"$OUT/$name.txt"
    rm -f "$tmp" "$tmp.err"
    log "$OUT/$name.txt: $(grep -c '==' "$OUT/$name.txt") pins"
done
