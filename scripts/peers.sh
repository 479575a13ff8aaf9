#!/usr/bin/env bash
# The peers of experiment E24 (`make peers`): a separate venv, .venv-peers at the repo root
# ($WORDCOUNT_PEERS_VENV overrides), with Dask (bag) and PySpark from PyPI at the pinned
# versions below (their dependencies pinned too), and a JRE for PySpark: Debian's
# default-jre-headless when `java` is not on PATH (needs root or passwordless sudo).
# GNU coreutils (tr, sort, uniq), the third peer, are always there.
# Idempotent: a stamp file in the venv records the pins it holds; a second run only checks.
set -euo pipefail

log() { echo "peers: $*"; }
die() { echo "peers: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${WORDCOUNT_PEERS_VENV:-$ROOT/.venv-peers}
PYTHON=${PYTHON:-python3}

# Resolved for CPython 3.11 on x86_64 Linux (pip's resolver, 2026): PySpark 4.3 needs
# Python >= 3.11 and Java 17 or 21.
PINS=(
    "dask[bag]==2026.8.0"
    "pyspark==4.3.0"
    "py4j==0.10.9.9"
    "click==8.5.1"
    "cloudpickle==3.1.3"
    "fsspec==2026.9.0"
    "importlib_metadata==10.2.0"
    "lazy-importer==0.1.0"
    "locket==1.0.0"
    "packaging==26.4"
    "partd==1.4.2"
    "PyYAML==6.0.4"
    "toolz==1.2.0"
    "zipp==4.1.2"
)
MIN_JAVA=17

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
fi

java_major() {  # "17" from `java -version` (1.8.0_x reads as 1: too old)
    java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1
}

# -- the JRE -----------------------------------------------------------------------------------
if ! command -v java >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 || -n $SUDO ]] || die "no \`java\` on PATH and this user can't install \
one (not root, no passwordless sudo): sudo apt-get install default-jre-headless"
    command -v apt-get >/dev/null 2>&1 || die "no \`java\` on PATH and no apt-get: install a \
JRE (Java ${MIN_JAVA} or 21) and put it on PATH"
    log "installing default-jre-headless with apt-get (PySpark needs a JRE)"
    aptlog=$(mktemp)
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends default-jre-headless; } \
            >"$aptlog" 2>&1; then
        cat "$aptlog" >&2; rm -f "$aptlog"
        die "apt-get install default-jre-headless failed (output above)"
    fi
    rm -f "$aptlog"
    command -v java >/dev/null 2>&1 || die "java still not on PATH after the install"
fi
major=$(java_major)
[[ -n $major ]] || die "can't read the version of $(command -v java)"
(( major >= MIN_JAVA )) || die "$(command -v java) is Java $major; PySpark 4 needs ${MIN_JAVA}+ \
(Debian: apt-get install openjdk-17-jre-headless, then put it first on PATH)"
log "java $major at $(command -v java)"

# -- the venv ----------------------------------------------------------------------------------
stamp="$VENV/.installed-$(printf '%s\n' "${PINS[@]}" | cksum | cut -d' ' -f1)"
if [[ -e $stamp && -x $VENV/bin/python ]]; then
    log "$VENV is up to date"
else
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$PYTHON is not Python >= 3.11 (PySpark 4.3 needs it): set PYTHON=python3.11"
    if ! [[ -x $VENV/bin/python ]]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"
    fi
    log "installing ${PINS[0]} and ${PINS[1]} into $VENV (PySpark is a ~300 MB download)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" \
        || die "pip install failed (output above)"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
"$VENV/bin/python" - <<'EOF' || die "the peers venv does not import dask.bag and pyspark"
import dask, dask.bag, pyspark
print(f"peers: dask {dask.__version__}, pyspark {pyspark.__version__} ready")
EOF
