#!/bin/sh
# The compose service `client`: one job, start to finish, then exit with its status.
#   1. /data empty?  generate the sample corpus there (wordcount corpus)
#   2. wordcount submit /data: waits for the job (progress lines on stderr every
#      2 s), writes every word to /results/counts.tsv and the JSON summary to
#      /results/result.json
#   3. print the top 10 and a one-line summary; exit with submit's status
#      (0 = complete and self-checked, 3 = some tasks were dead-lettered, 4 = Redis
#      unreachable, 5 = the result failed the self-check, ...)
# Env (defaults in brackets):
#   SAMPLE_FILES [16] SAMPLE_SIZE [4MiB] SAMPLE_SKEW [32MiB] SAMPLE_SEED [0]
#   SAMPLE_UNICODE [empty; 1 = mix in non-ASCII words]   the generated corpus
#   SUBMIT_ARGS  extra `wordcount submit` flags, e.g. "--chunk-size 8MiB --timeout 600"
#   SUBMIT_FRESH [1]  drop the job's old state first: Redis keeps finished jobs (in
#                its volume), and the same data is the same job, so without this a
#                second `make up` would just read the previous result back
# REDIS_URL / REDIS_PASSWORD / WORDCOUNT_* reach `wordcount` directly.
set -eu

DATA=${DATA_DIR:-/data}
RESULTS=${RESULTS_DIR:-/results}
log() { echo "client: $*" >&2; }
die() { log "ERROR: $*"; exit 2; }

if [ ! -d "$RESULTS" ] || [ ! -w "$RESULTS" ]; then
    die "$RESULTS is not writable by uid $(id -u) (make up creates ./results; or set WORDCOUNT_UID)"
fi
rm -f "$RESULTS/result.json" "$RESULTS/counts.tsv"

if [ -z "$(ls -A "$DATA" 2>/dev/null)" ]; then
    [ -w "$DATA" ] || die "$DATA is empty but not writable by uid $(id -u): can't generate the sample"
    files=${SAMPLE_FILES:-16} size=${SAMPLE_SIZE:-4MiB} skew=${SAMPLE_SKEW:-32MiB}
    log "$DATA is empty: generating $files files x $size + one $skew skew file (seed ${SAMPLE_SEED:-0})"
    wordcount corpus "$DATA" --files "$files" --size "$size" --skew-size "$skew" \
        --seed "${SAMPLE_SEED:-0}" ${SAMPLE_UNICODE:+--unicode} >&2
else
    log "counting the existing files in $DATA (empty it to get a fresh sample)"
fi

fresh=
[ "${SUBMIT_FRESH:-1}" = 1 ] && fresh=--fresh
rc=0
# -v: progress lines on stderr even with --json (stdout is the JSON document)
# shellcheck disable=SC2086  # SUBMIT_ARGS is a list of flags
wordcount submit "$DATA" --data-root "$DATA" --json -v $fresh \
    --counts-out "$RESULTS/counts.tsv" ${SUBMIT_ARGS:-} >"$RESULTS/result.json.tmp" || rc=$?
if [ -s "$RESULTS/result.json.tmp" ]; then
    mv "$RESULTS/result.json.tmp" "$RESULTS/result.json"
    python3 - "$RESULTS/result.json" "$rc" <<'PY'
import json, sys
doc, rc = json.load(open(sys.argv[1])), int(sys.argv[2])
width = max((len(w) for w, _ in doc["top"]), default=4)
print(f"top {len(doc['top'])} of {doc['distinct']:,} distinct words:")
for word, n in doc["top"]:
    print(f"  {word:<{width}}  {n:>12,}")
mb_s = doc["bytes"] / doc["seconds"] / 1e6 if doc["seconds"] else 0.0
print(f"-- {doc['total']:,} words, {doc['files']} files, {doc['bytes']:,} bytes in "
      f"{doc['seconds']:.1f} s ({mb_s:.1f} MB/s); {doc['tasks']} tasks: {doc['stolen']} stolen, "
      f"{doc['backups']} backups, {doc['duplicates']} duplicates, {doc['dead']} dead, "
      f"{doc['resubmits']} resubmits")
print("-- " + ("complete: every task counted exactly once (self-check passed)" if rc == 0 else
               f"INCOMPLETE (exit {rc}): {len(doc['errors'])} errors, see above"))
PY
else
    rm -f "$RESULTS/result.json.tmp"
    log "submit failed with exit status $rc and no result"
fi
exit "$rc"
