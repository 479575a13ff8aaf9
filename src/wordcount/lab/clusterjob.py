"""The compose cluster's own commands (``python -m wordcount.lab.clusterjob ...``).

``job``      what the compose ``client`` service runs (services/client/run-job.sh execs it): the
             sample corpus into /data when it is empty, one ``wordcount submit`` of it (progress
             on stderr, every word into /results/counts.tsv, the JSON summary into
             /results/result.json), then the text report of report.py and what to do next.
             Exits with submit's status.
``verdict``  the verdict of ``make chaos`` / ``make chaos-raft`` on the host: PASS only if the job
             exited 0, its counts.tsv is byte-identical to the serial engine's count of the same
             data, and containers really were killed while the job ran.
``timeline`` ``make logs``: ``docker compose logs --timestamps`` (stdin) as one timeline in time
             order, without the noise (Redis's snapshot lines, DEBUG lines) unless ``--all``.

Bad arguments or an unusable directory: one line on stderr, exit 2; a FAIL verdict: exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from .. import report
from ..engines import Result, count_inputs
from ..exceptions import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, WordcountError
from ..planner import InputError

EXIT_VERDICT_FAIL = EXIT_FAILURE


class Refused(Exception):
    """A usage problem: one line, exit 2."""


# -- the client's job -------------------------------------------------------------------------

def _env_int(env: dict[str, str] | os._Environ, name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        return int(raw)
    except ValueError:
        raise Refused(f"{name}: not a number: {raw!r}") from None


def read_counts(path: Path) -> Counter[str]:
    """A --counts-out TSV (word<TAB>count per line) back into a Counter."""
    counts: Counter[str] = Counter()
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            word, _, n = line.rstrip("\n").rpartition("\t")
            counts[word] = int(n)
    return counts


def result_of(doc: dict[str, Any], counts: Counter[str]) -> Result:
    return Result(counts=counts, files=int(doc["files"]), bytes=int(doc["bytes"]),
                  seconds=float(doc["seconds"]),
                  errors=[InputError(e["path"], e["error"]) for e in doc.get("errors", [])])


def print_report(doc: dict[str, Any], counts: Counter[str] | None, status: int, k: int,
                 out: IO[str]) -> None:
    """The text report of ``wordcount count`` (report.print_text) for the job, from the full
    table when there is one, then the distributed figures and the verdict. Another app than
    word count (APP): its own top rows, from the JSON."""
    app_name = doc.get("app", "wordcount")
    if app_name != "wordcount":
        from .. import apps

        app = apps.get(app_name)
        out.write(f"top {len(doc.get('top', []))} of {int(doc['distinct']):,} "
                  f"{app.key_noun} ({app_name}):\n")
        app.text(doc.get("top", []), out)
        out.write(f"-- {int(doc['total']):,} {app.total_noun}, {int(doc['files']):,} files, "
                  f"{int(doc['bytes']):,} bytes in {float(doc['seconds']):.2f} s\n")
    else:
        if counts is None:  # no counts.tsv (submit failed part way): the JSON's top only
            counts = Counter(dict(doc.get("top", [])))
            out.write("(no counts.tsv: only the top words of result.json)\n")
        out.write(f"top {min(k, len(counts))} of {int(doc['distinct']):,} distinct words:\n")
        report.print_text(result_of(doc, counts), k, out)
    out.write(f"-- {doc.get('tasks', '?')} tasks: {doc.get('stolen', 0)} stolen, "
              f"{doc.get('backups', 0)} backups, {doc.get('duplicates', 0)} duplicates, "
              f"{doc.get('dead', 0)} dead, {doc.get('resubmits', 0)} resubmits\n")
    if status == EXIT_OK:
        out.write("-- complete: every task counted exactly once (self-check passed)\n")
    else:
        out.write(f"-- INCOMPLETE (exit {status}): {len(doc.get('errors', []))} errors, see "
                  "above\n")


def next_steps(env: dict[str, str] | os._Environ, out: IO[str], job: str | None = None
               ) -> None:
    """The last lines of the client's log: where the results are, the job's page on the
    dashboard (WORDCOUNT_DASHBOARD_URL), another job, stopping."""
    results = env.get("WORDCOUNT_RESULTS_HOST") or "./results"
    data = env.get("WORDCOUNT_DATA_HOST") or "./data"
    raft = "raft" in (env.get("REDIS_URL") or "")
    compose = "docker compose -f compose.raft.yml" if raft else "docker compose"
    what = "every word" if (env.get("APP") or "wordcount") == "wordcount" else env.get("APP")
    out.write(f"-- results: {results}/counts.tsv ({what}), {results}/result.json (summary)\n")
    dashboard = env.get("WORDCOUNT_DASHBOARD_URL")
    if dashboard and job:
        out.write(f"-- dashboard: {dashboard.rstrip('/')}/#job={urllib.parse.quote(job)} (its "
                  "timeline; while the cluster runs, or after `make start`)\n")
    scale = "--scale worker=8 --exit-code-from client"
    out.write(f"-- another job: put files in {data} (or empty it for a new sample), then "
              f"`make {'up-raft' if raft else 'up'}` (or `{compose} up {scale}`)\n")
    out.write(f"-- stop the cluster: `make {'down-raft' if raft else 'down'}` "
              f"(or `{compose} --profile '*' down -v`)\n")


def run_job(env: dict[str, str] | os._Environ | None = None, out: IO[str] | None = None) -> int:
    env = os.environ if env is None else env
    out = out or sys.stdout
    data = Path(env.get("DATA_DIR") or "/data")
    results = Path(env.get("RESULTS_DIR") or "/results")
    uid = os.getuid()
    if not results.is_dir() or not os.access(results, os.W_OK):
        raise Refused(f"{results} is not writable by uid {uid} (make up creates ./results; "
                      "or set WORDCOUNT_UID)")
    for name in ("result.json", "counts.tsv"):
        (results / name).unlink(missing_ok=True)

    if not data.is_dir() or not any(data.iterdir()):
        if not os.access(data, os.W_OK):
            raise Refused(f"{data} is empty but not writable by uid {uid}: can't generate the "
                          "sample")
        files, seed = _env_int(env, "SAMPLE_FILES", 16), _env_int(env, "SAMPLE_SEED", 0)
        size, skew = env.get("SAMPLE_SIZE") or "4MiB", env.get("SAMPLE_SKEW") or "32MiB"
        log(f"{data} is empty: generating {files} files x {size} + one {skew} skew file "
            f"(seed {seed})")
        # the CLI checks the sizes (a bad one: its own one-line error, exit 2)
        cmd = ["wordcount", "corpus", str(data), "--files", str(files), "--size", size,
               "--skew-size", skew, "--seed", str(seed)]
        if env.get("SAMPLE_UNICODE"):
            cmd.append("--unicode")
        status = subprocess.run(cmd, stdout=sys.stderr, env=dict(env)).returncode
        if status != EXIT_OK:
            log(f"generating the sample failed (exit {status})")
            return status
    else:
        log(f"counting the existing files in {data} (empty it to get a fresh sample)")

    # -v: progress lines on stderr even with --json (stdout is the JSON document)
    cmd = ["wordcount", "submit", str(data), "--data-root", str(data), "--json", "-v",
           "--counts-out", str(results / "counts.tsv"), "--app", env.get("APP") or "wordcount"]
    if (env.get("SUBMIT_FRESH") or "1") == "1":
        cmd.append("--fresh")
    cmd += (env.get("SUBMIT_ARGS") or "").split()
    tmp = results / "result.json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        status = subprocess.run(cmd, stdout=f, env=dict(env)).returncode
    if tmp.stat().st_size == 0:
        tmp.unlink()
        log(f"submit failed with exit status {status} and no result")
        return status
    os.replace(tmp, results / "result.json")
    doc = json.loads((results / "result.json").read_text(encoding="utf-8"))
    tsv = results / "counts.tsv"  # (another app's table: its own format, not read here)
    counts = read_counts(tsv) if tsv.is_file() and doc.get("app", "wordcount") == "wordcount" \
        else None
    print_report(doc, counts, status, len(doc.get("top", [])) or 10, out)
    next_steps(env, out, doc.get("job"))
    return status


def log(msg: str) -> None:
    print(f"client: {msg}", file=sys.stderr, flush=True)


# -- make chaos's verdict ---------------------------------------------------------------------

def kills_during(chaos: dict[str, Any], result: dict[str, Any]) -> Counter[str]:
    """Disruptions (kills, partitions or pauses: the chaos mode's) per target after the job
    started: chaos.json's end (just after the client exited) minus the job's seconds. Those
    while the client still generated the corpus don't count."""
    start = float(chaos["ended_at"]) - float(result["seconds"])
    return Counter(e["target"] for e in chaos.get("events", []) if e["killed_at"] >= start)


NOUNS = {"kill": "kills", "partition": "partitions", "pause": "pauses"}


def verdict(status: int, data: Path, results: Path, out: IO[str]) -> int:
    def fail(why: str) -> int:
        out.write(f"FAIL: {why}\n")
        return EXIT_VERDICT_FAIL

    try:
        chaos = json.loads((results / "chaos.json").read_text())
        kills = kills_during(chaos, json.loads((results / "result.json").read_text()))
        noun = NOUNS.get(chaos.get("mode", "kill"), "kills")
    except (OSError, ValueError, KeyError, TypeError):
        kills, noun = Counter(), "kills"
    n = sum(kills.values())
    per_target = ", ".join(f"{t} {c}" for t, c in sorted(kills.items())) or "none"
    what = f"{n} {noun} during the job ({per_target})"
    if status != 0:
        return fail(f"the job exited with status {status}; {what}")
    out.write(f"chaos: counting {data} with the serial engine to check the result\n")
    out.flush()
    try:
        serial = count_inputs([str(data)], "serial")
    except WordcountError as e:
        return fail(f"the serial count of {data} failed: {e}")
    report.write_counts(serial.counts, str(results / "serial.tsv"))
    got, want = results / "counts.tsv", results / "serial.tsv"
    if not got.is_file() or got.read_bytes() != want.read_bytes():
        return fail(f"counts.tsv differs from the serial engine's counts ({want}); {what}")
    if n == 0:
        return fail("exact, but no container was killed during the job (too short? raise "
                    "CHAOS_SLOWDOWN)")
    if set(kills) == {"redis"} and noun == "kills":
        out.write(f"PASS: exact counts after {n} Redis kills\n")
    else:
        out.write(f"PASS: exact counts after {what}\n")
    return EXIT_OK


# -- make logs: one timeline -------------------------------------------------------------------

# Lines that say nothing about the job (shown with --all): Redis saving its snapshot every
# second, and the workers' DEBUG lines.
NOISE = re.compile(r"Background saving|DB saved on disk|Fork CoW|changes in \d+ seconds\. Saving"
                   r"|BGSAVE done|RDB: \d+ MB of memory used by copy-on-write| DEBUG ")
_LOG_LINE = re.compile(r"^(?P<who>\S+)\s+\|\s(?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z?)\s?(?P<text>.*)$")


def timeline(lines: Iterable[str], everything: bool = False) -> list[str]:
    """Compose log lines (``service-N  | <RFC 3339 time> text``, from ``logs --timestamps``)
    merged into one list in time order (stable: a container's own order is kept within a
    tick), as ``HH:MM:SS.mmm service-N  text``; the NOISE lines left out unless
    ``everything``. A line of another shape (a compose message) keeps its place."""
    rows: list[tuple[str, int, str]] = []
    last = ""
    for i, line in enumerate(lines):
        line = line.rstrip("\n")
        m = _LOG_LINE.match(line)
        if not m:
            rows.append((last, i, line))
            continue
        last = m["ts"]
        if not everything and NOISE.search(m["text"]):
            continue
        clock = last[11:23]
        rows.append((last, i, f"{clock} {m['who']:<22} {m['text']}"))
    return [text for _, _, text in sorted(rows)]


# -- command line -----------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wordcount.lab.clusterjob",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("job", help="the compose client: sample, submit, report (env: see "
                   "docker-compose.yml)")
    v = sub.add_parser("verdict", help="make chaos's PASS/FAIL")
    v.add_argument("--status", type=int, required=True, help="the job's exit status")
    v.add_argument("data", type=Path)
    v.add_argument("results", type=Path)
    t = sub.add_parser("timeline", help="make logs: compose logs (stdin) in time order")
    t.add_argument("--all", action="store_true", help="keep Redis's saving and DEBUG lines")
    args = parser.parse_args(argv)
    try:
        if args.command == "job":
            return run_job()
        if args.command == "timeline":
            for line in timeline(sys.stdin, args.all):
                print(line)
            return EXIT_OK
        if not args.data.is_dir():
            raise Refused(f"{args.data}: not a directory")
        return verdict(args.status, args.data, args.results, sys.stdout)
    except Refused as e:
        print(f"clusterjob: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
