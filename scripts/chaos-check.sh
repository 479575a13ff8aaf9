#!/usr/bin/env bash
# The verdict of `make chaos`: PASS only if the job under chaos (1) exited 0,
# (2) produced a counts.tsv byte-identical (cmp) to the serial engine's count of
# the same data, and (3) really had containers killed while it ran.
#
# Usage: scripts/chaos-check.sh JOB_STATUS DATA_DIR RESULTS_DIR
# Env:   BIN (default .venv/bin): where `wordcount` and `python` are
# A kill counts as mid-job if it came after the job started: chaos.json's end
# (just after the client exited) minus result.json's job seconds. Kills while
# the client was still generating the corpus don't count.
set -uo pipefail

status=$1 data=$2 results=$3
BIN=${BIN:-.venv/bin}
fail() { echo "FAIL: $*"; exit 1; }

kills=$("$BIN/python" - "$results/chaos.json" "$results/result.json" <<'PY' 2>/dev/null
import json, sys
chaos, result = (json.load(open(p)) for p in sys.argv[1:3])
start = chaos["ended_at"] - result["seconds"]
mid = [e for e in chaos["events"] if e["killed_at"] >= start]
by_target = {t: sum(e["target"] == t for e in mid) for t in sorted({e["target"] for e in mid})}
print(len(mid), ", ".join(f"{t} {n}" for t, n in by_target.items()) or "none")
PY
) || kills="0 none"
n=${kills%% *}
what="$n kills during the job ($([[ $n == 0 ]] && echo none || echo "${kills#* }"))"

[[ $status == 0 ]] || fail "the job exited with status $status; $what"
echo "chaos: counting $data with the serial engine to check the result"
"$BIN/wordcount" count "$data" --counts-out "$results/serial.tsv" >/dev/null \
    || fail "the serial count of $data failed"
cmp "$results/serial.tsv" "$results/counts.tsv" \
    || fail "counts.tsv differs from the serial engine's counts; $what"
[[ $n -gt 0 ]] || fail "exact, but no container was killed during the job (too short? raise CHAOS_SLOWDOWN)"
if [[ $kills == "$n redis $n" ]]; then
    echo "PASS: exact counts after $n Redis kills"
else
    echo "PASS: exact counts after $what"
fi
