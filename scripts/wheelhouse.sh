#!/usr/bin/env bash
# Build build/wheelhouse/ on the host (network to PyPI is allowed here; none is
# inside `docker build`): the wheels the Python images' Dockerfiles install with
# `pip install --no-index` (the project itself is copied from src/ by the
# Dockerfile, so a source change needs no new wheelhouse). Layout:
#   build/wheelhouse/deps/*.whl                  every pinned dependency, as the
#                                                CPython 3.11 manylinux x86_64 wheels
#   build/wheelhouse/requirements.txt            = services/requirements/base.txt  (client)
#   build/wheelhouse/requirements-fast.txt       = .../fast.txt  (worker: + pyarrow)
#   build/wheelhouse/requirements-chaos.txt      = .../chaos.txt (chaos: + docker SDK)
# The pins are the lock files of scripts/lock.sh (uv pip compile); made again
# first when pyproject.toml changed since. The wheels are a plain `pip download`
# of them for the images' platform (whatever python runs it), so the result does
# not depend on the host's python. Rebuilt from scratch each time (pip's cache
# makes that fast), so wheels no longer pinned don't pile up.
# Env: WHEELHOUSE (default build/wheelhouse), PYTHON (default .venv/bin/python if
#      it exists, else python3: any python >= 3.11 with pip)
set -euo pipefail

log() { echo "wheelhouse: $*"; }
die() { echo "wheelhouse: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WHEELHOUSE=${WHEELHOUSE:-build/wheelhouse}
LOCKS=services/requirements
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "python not found: $PYTHON"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (Debian: apt-get install python3-pip, or make install)"

bash scripts/lock.sh --check >/dev/null || { log "pyproject.toml changed: pinning again"; bash scripts/lock.sh; }

tmp="$WHEELHOUSE.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/deps"
trap 'rm -rf "$ROOT/$tmp" "$ROOT/$tmp.log"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1

run() {   # run WHAT CMD...: quiet unless it fails
    local what=$1; shift
    "$@" >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; die "$what failed (output above)"; }
}
platform=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3
          --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform any)
for name in base fast chaos; do
    run "pip download -r $LOCKS/$name.txt" "$PYTHON" -m pip download --quiet --no-deps \
        "${platform[@]}" --dest "$tmp/deps" --requirement "$LOCKS/$name.txt"
done
cp "$LOCKS/base.txt" "$tmp/requirements.txt"
cp "$LOCKS/fast.txt" "$tmp/requirements-fast.txt"
cp "$LOCKS/chaos.txt" "$tmp/requirements-chaos.txt"

rm -rf "$WHEELHOUSE"
mv "$tmp" "$WHEELHOUSE"
n=$(ls "$WHEELHOUSE"/deps/*.whl | wc -l)
log "$WHEELHOUSE/: $n dependency wheels ($(du -sh "$WHEELHOUSE" | cut -f1))"
