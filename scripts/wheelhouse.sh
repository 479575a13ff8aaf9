#!/usr/bin/env bash
# Build build/wheelhouse/ on the host (network to PyPI is allowed here): the
# project's wheel plus every runtime dependency, including the [chaos] and
# [fast] extras, as wheels for CPython 3.11 on manylinux x86_64. The
# Dockerfiles then install from it with `pip install --no-index`, so
# `docker build` never needs the network. Layout (deps apart from the project,
# so that a source change only invalidates docker's cache from the
# project-wheel step on):
#   build/wheelhouse/deps/*.whl                third-party wheels
#   build/wheelhouse/requirements.txt          pins of the runtime closure
#   build/wheelhouse/requirements-chaos.txt    ... plus the [chaos] extra (docker SDK)
#   build/wheelhouse/requirements-fast.txt     ... plus the [fast] extra (pyarrow)
#   build/wheelhouse/app/wordcount-*.whl       the project
# (one requirements-EXTRA.txt per extra in WHEEL_EXTRAS; each image installs
# exactly one: worker -fast, client the plain one, chaos -chaos)
#
# The wheelhouse is rebuilt from scratch each time (pip's cache makes that
# fast) so wheels of versions no longer pinned don't pile up; the project wheel
# is built with a fixed SOURCE_DATE_EPOCH so that, while the sources don't
# change, its bytes don't either and docker's build cache keeps hitting.
#
# Env: WHEELHOUSE (default build/wheelhouse), PYTHON (default .venv/bin/python
#      if it exists, else python3), WHEEL_EXTRAS (default chaos,fast,
#      comma-separated),
#      WHEEL_TARGET_PYTHONS (default 3.11.2: also resolve markers for these)
set -euo pipefail

log() { echo "wheelhouse: $*"; }
die() { echo "wheelhouse: ERROR: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WHEELHOUSE=${WHEELHOUSE:-build/wheelhouse}
EXTRAS=${WHEEL_EXTRAS:-chaos,fast}
# Full versions of the python3 in the images: bookworm's (local bases) and
# python:3.11-slim's (any recent 3.11.x; the host's own version covers that).
TARGET_PYTHONS=${WHEEL_TARGET_PYTHONS:-3.11.2}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "python not found: $PYTHON"

# The images run Debian bookworm's CPython 3.11 (or python:3.11-slim), so the
# binary wheels (hiredis, charset-normalizer, ...) must be cp311 ones.
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $pyver == 3.11 ]] || die "$PYTHON is Python $pyver; the images need CPython 3.11 wheels: set PYTHON=python3.11"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (Debian: apt-get install python3-pip, or make install)"

spec=.
[[ -n $EXTRAS ]] && spec=".[$EXTRAS]"
log "building $WHEELHOUSE/ from '$spec' with $PYTHON ($pyver)"

tmp="$WHEELHOUSE.tmp"
# setuptools builds in-tree under build/lib: a module deleted from src/ would
# otherwise live on in the wheel, so start that clean too.
rm -rf "$tmp" build/lib build/bdist.*
mkdir -p "$tmp"
trap 'rm -rf "$ROOT/$tmp"' EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}   # 1980-01-01: reproducible zip timestamps
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$PYTHON" -m pip wheel --quiet --wheel-dir "$tmp" "$spec" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2; rm -f "$tmp.log"
    die "pip wheel '$spec' failed (see above)"
fi
rm -f "$tmp.log"

# pip evaluates dependency markers for the python running it (the host's, e.g.
# 3.11.7), but bookworm's python3 is 3.11.2: e.g. redis needs async-timeout only
# on python_full_version < "3.11.3". So walk the wheelhouse's dependency graph
# for the host and each target python, and add whatever is missing.
#   wheel_graph missing        -> requirements not satisfied by the wheelhouse
#   wheel_graph pins [EXTRA..] -> name==version of everything wordcount[EXTRA..] needs
wheel_graph() {
    "$PYTHON" - "$tmp" "$TARGET_PYTHONS" "$@" <<'PY'
import sys, zipfile, pathlib, email.parser
try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename

house, targets, mode, extras = pathlib.Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3], sys.argv[4:]
wheels = {}
for whl in house.glob("*.whl"):
    name, version, _, _ = parse_wheel_filename(whl.name)
    wheels[name] = (version, whl)

def requires(whl):
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(z.read(meta).decode())
    return [Requirement(r) for r in msg.get_all("Requires-Dist") or []]

envs = [default_environment()]
for full in targets:
    env = default_environment()
    env.update(python_full_version=full, python_version=".".join(full.split(".")[:2]),
               implementation_name="cpython", platform_python_implementation="CPython",
               sys_platform="linux", platform_system="Linux", os_name="posix",
               platform_machine="x86_64")
    envs.append(env)

root = canonicalize_name("wordcount")
missing, needed = set(), set()
for env in envs:
    todo, seen = [(root, frozenset(e for x in extras for e in x.split(",") if e))], set()
    while todo:
        name, want = todo.pop()
        if (name, want) in seen:
            continue
        seen.add((name, want))
        needed.add(name)
        for req in requires(wheels[name][1]):
            if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *want)):
                continue
            dep = canonicalize_name(req.name)
            if dep in wheels and req.specifier.contains(wheels[dep][0], prereleases=True):
                todo.append((dep, frozenset(req.extras)))
            else:
                req.marker = None
                missing.add(str(req))
if mode == "missing":
    for r in sorted(missing):
        print(r)
else:
    if missing:
        sys.exit(f"unresolved: {sorted(missing)}")
    for name in sorted(needed - {root}):
        print(f"{name}=={wheels[name][0]}")
PY
}
for round in 1 2 3 4 5; do
    out=$(wheel_graph missing "$EXTRAS") || die "dependency check of $tmp failed"
    [[ -n $out ]] || break
    mapfile -t missing <<<"$out"
    [[ $round -lt 5 ]] || die "still missing after 4 rounds: ${missing[*]}"
    log "adding for python ${TARGET_PYTHONS// /, }: ${missing[*]}"
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$tmp" "${missing[@]}" >"$tmp.log" 2>&1 \
        || { cat "$tmp.log" >&2; rm -f "$tmp.log"; die "pip wheel ${missing[*]} failed"; }
    rm -f "$tmp.log"
done

# Everything compiled must be usable by the images' python: cp311 manylinux
# or pure-python. Locally built linux_x86_64 wheels would only be safe by
# luck, so refuse them.
bad=()
for whl in "$tmp"/*.whl; do
    name=$(basename "$whl")
    case $name in
        *-py3-none-any.whl|*-py2.py3-none-any.whl) ;;
        *-cp311-*manylinux*x86_64*.whl|*-abi3-*manylinux*x86_64*.whl) ;;
        *) bad+=("$name") ;;
    esac
done
[[ ${#bad[@]} -eq 0 ]] || die "wheels not usable in the cp311/manylinux images: ${bad[*]}"
compgen -G "$tmp/wordcount-*.whl" >/dev/null || die "no wordcount-*.whl was built"

{ echo "# runtime closure of wordcount, made by scripts/wheelhouse.sh"; wheel_graph pins; } >"$tmp/requirements.txt" \
    || die "could not pin the runtime dependencies"
if [[ -n $EXTRAS ]]; then
    IFS=, read -r -a extra_list <<<"$EXTRAS"
    for extra in "${extra_list[@]}"; do
        { echo "# runtime closure of wordcount[$extra], made by scripts/wheelhouse.sh"; wheel_graph pins "$extra"; } \
            >"$tmp/requirements-$extra.txt" || die "could not pin the dependencies of [$extra]"
    done
fi
mkdir -p "$tmp/deps" "$tmp/app"
mv "$tmp"/wordcount-*.whl "$tmp/app/"
mv "$tmp"/*.whl "$tmp/deps/"

rm -rf "$WHEELHOUSE"
mv "$tmp" "$WHEELHOUSE"
trap - EXIT
n=$(ls "$WHEELHOUSE"/deps/*.whl | wc -l)
log "$WHEELHOUSE/: $(cd "$WHEELHOUSE/app" && ls wordcount-*.whl) + $n dependency wheels ($(du -sh "$WHEELHOUSE" | cut -f1))"
