"""How an experiment runs: points × variants × repeats of a whole ``wordcount`` command, each
run's table checked against the serial engine's, medians with their spread, and a JSON record
with the machine it ran on.

An ``Experiment`` answers one lab question. At each point ``x`` (a number of workers, a file
size, ...) it makes a corpus (``corpus(ctx, x)``, generated once and cached), counts it with
the serial engine once (the oracle: every word, every count, as a TSV), then runs every
variant ``repeat`` times, **alternating** the variants (run 1: A B C, run 2: B C A, ...), so
that a machine slowing down or speeding up mid-experiment affects them all alike. Each run is
its own process (``lab.clirun``); its wall time is measured around it, its ``--json`` summary
is kept, and its ``--counts-out`` table is compared byte for byte with the oracle's. A run
whose table differs, or whose command fails, is **not a point**: it is recorded as failed,
printed in red, left out of every median, and makes the experiment (and ``make experiments``)
fail.

The corpus is generated and then read by the serial oracle before any timed run: every timed
run reads it from the page cache (warm), and the JSON says so.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clirun import timed

SCHEMA = 1  # the JSON layout the report reads (report.validate)


@dataclass(frozen=True)
class Variant:
    """One way of answering: a ``wordcount`` command line (without ``--json`` and
    ``--counts-out``, which the runner adds) for the corpus at point ``x``; or, for what a
    command cannot do (kill its own Redis on a schedule), ``call(corpus, x, counts)``: a job
    run in this process that writes its table to ``counts`` and returns its record
    (``seconds``, ``exit``, and e.g. a ``timeline`` and ``events``)."""

    label: str
    argv: Callable[[Path, Any], list[str]] | None = None
    only: Callable[[Any], bool] = lambda x: True  # the points it runs at
    call: Callable[[Path, Any, Path], dict[str, Any]] | None = None
    # None when it can run here, else why not (Docker, a peer not installed): then it is
    # left out, and the JSON's ``skipped_variants`` says why
    requires: Callable[[], str | None] = lambda: None

    def measure(self, corpus: Path, x: Any, counts: Path
                ) -> tuple[float, int, dict[str, Any] | None, str]:
        if self.call is None:
            return _run(self.argv(corpus, x), counts)  # type: ignore[misc]
        try:
            doc = self.call(corpus, x, counts)
        except Exception as e:  # noqa: BLE001 - a failed run, reported as such
            return 0.0, 1, None, f"{type(e).__name__}: {e}"
        return doc.pop("seconds"), doc.pop("exit", 0), doc, doc.pop("stderr", "")


@dataclass(frozen=True)
class Experiment:
    name: str  # "E2"
    title: str  # "workers"
    question: str
    x_label: str  # the axis, with its unit: "worker processes", "file size (bytes)"
    points: Callable[[Context], list[Any]]
    corpus: Callable[[Context, Any], Path]
    variants: Sequence[Variant]
    answer: Callable[[dict[str, Any]], str]  # the sentence, from the JSON's summary
    setup: Callable[[Context], str] = lambda ctx: ""  # what it ran on, in words
    metric: str = "seconds"  # the plot's y: "seconds" or "mb_s"
    # None when it can run here, else why not (RedisRaft not built, a peer not installed): the
    # experiment is then recorded as skipped with that reason, never as passed or failed
    requires: Callable[[Context], str | None] = lambda ctx: None
    # what the serial oracle is given besides the corpus at point x (an app: ["--app", ...])
    oracle: Callable[[Any], list[str]] = lambda x: []


@dataclass
class Context:
    """What one ``make experiments`` shares: the scale, the repeats, where corpora and
    results go, and how to say what happens."""

    workdir: Path  # corpora (cached) and each run's counts
    scale: float = 1.0  # sizes x SCALE
    repeat: int = 3
    tiny: bool = False  # seconds, not minutes: the tests' mode
    say: Callable[[str], None] = print
    step: Callable[[str], None] = lambda what: None  # one run done (the progress display)
    failures: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # --text: the real-text corpus's sources
    scales: dict[str, float] = field(default_factory=dict)  # --scale-for E6=4: × the scale
    real_what: str = ""  # what the last real-text corpus was made of (real_text)

    def size(self, nbytes: int, tiny: int) -> int:
        """``nbytes`` × the scale; ``tiny`` in the tiny mode."""
        return tiny if self.tiny else max(1, int(nbytes * self.scale))

    def corpus(self, key: str, make: Callable[[Path], None]) -> Path:
        """The corpus called ``key``, made by ``make(dir)`` the first time (kept under the
        workdir: a second experiment of the same corpus reuses it)."""
        path = self.workdir / "corpora" / key
        done = path.with_suffix(".ok")
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            make(path)
            done.touch()
        return path

    def real_text(self, files: int, size: int) -> Path:
        """``files`` files of ``size`` bytes of real text (``real_what`` says what it is): the
        ``--text`` files,
        else a public-domain text installed here (Debian's bible-kjv-text), replicated to the
        size (the lab's ``cat in.txt in.txt ...``); without either, the synthetic corpus, and
        a note saying so."""
        from .. import corpus as corpora

        if self.texts:
            key = hashlib.sha256("\0".join(os.path.abspath(t) for t in self.texts).encode()
                                 ).hexdigest()[:8]
            self.real_what = ("the text files given (" + ", ".join(Path(t).name for t in
                                                                  self.texts) + ")")
            return self.corpus(f"text-{key}-{files}x{size}", lambda d: corpora.replicate(
                self.texts, d, files, size))
        source = self.workdir / "corpora" / "public-domain.txt"
        source.parent.mkdir(parents=True, exist_ok=True)
        found = corpora.public_domain_text(source)
        if found is None:
            self.real_what = ("the synthetic corpus: no real text was given (`--text "
                              "FILE...`) or is installed (Debian's bible-kjv-text)")
            return self.corpus(f"synthetic-{files}x{size}-s1", lambda d: corpora.generate(
                d, files, size, seed=1))
        self.real_what = found[1]
        return self.corpus(f"kjv-{files}x{size}", lambda d: corpora.replicate(
            [found[0]], d, files, size))


def checksum(path: Path) -> str:
    """sha256 over a corpus's files (names, sizes and bytes), the first 16 hex digits."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(f"{p.relative_to(path) if p != path else p.name}\0{p.stat().st_size}\0"
                 .encode())
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:16]


def machine() -> dict[str, Any]:
    """The facts a reader needs to weigh the numbers: cores, memory, versions, the commit."""
    from ... import __version__

    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    redis = shutil.which("redis-server")
    try:
        redis_v = subprocess.run([redis, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.split()[2] if redis else "not installed"
    except (OSError, IndexError, subprocess.SubprocessError):
        redis_v = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, cwd=Path(__file__).parent
                                ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"cores": os.cpu_count(), "memory_bytes": mem, "python": platform.python_version(),
            "redis": redis_v.removeprefix("v="), "wordcount": __version__, "commit": commit,
            "platform": platform.platform()}


def _run(argv: list[str], counts: Path) -> tuple[float, int, dict[str, Any] | None, str]:
    """One run as its own process: (seconds, exit status, its --json document with its peak
    RSS added, stderr's tail)."""
    run = timed(*argv, "--json", "--counts-out", str(counts))
    try:
        doc = json.loads(run.stdout) if run.stdout.strip() else None
    except json.JSONDecodeError:
        doc = None
    if doc is not None:
        doc["peak_rss"] = run.peak_rss
    return run.seconds, run.returncode, doc, run.stderr.strip()[-400:]


def _oracle(ctx: Context, corpus: Path, extra: list[str]) -> Path:
    tag = ("-" + hashlib.sha256("\0".join(extra).encode()).hexdigest()[:8]) if extra else ""
    out = corpus.with_name(corpus.name + f".serial{tag}.tsv")
    if not out.exists():
        seconds, rc, _, err = _run(["count", str(corpus), "--engine", "serial", *extra], out)
        if rc != 0:
            raise RuntimeError(f"the serial engine failed on {corpus}: {err}")
    return out


def lost_and_doubled(counts: Path, oracle: Path) -> dict[str, int]:
    """Word occurrences the run's table lacks (lost) or has too many of (doubled), against
    the serial engine's: both 0 is exactly once. (A table of other values than counts,
    PageRank's ranks: the rows that differ, missing or extra.)"""
    from ..clusterjob import read_counts

    try:
        got = read_counts(counts) if counts.exists() else {}
        want = read_counts(oracle)
    except ValueError:  # not integers: compare rows
        mine = set(counts.read_text(encoding="utf-8").splitlines()) if counts.exists() else set()
        theirs = set(oracle.read_text(encoding="utf-8").splitlines())
        return {"lost": len(theirs - mine), "doubled": len(mine - theirs)}
    lost = sum(max(0, n - got.get(w, 0)) for w, n in want.items())
    doubled = sum(max(0, n - want.get(w, 0)) for w, n in got.items())
    return {"lost": lost, "doubled": doubled}


KEPT = ("total", "distinct", "tasks", "stolen", "backups", "duplicates", "dead", "resubmits",
        "workers", "kills", "crashes", "wall", "peak_rss")


def run(exp: Experiment, ctx: Context) -> dict[str, Any]:
    """Every run of ``exp`` (its sizes × ``--scale-for``'s factor for it, if any); the JSON
    document (see the module)."""
    base = ctx.scale
    ctx.scale = base * ctx.scales.get(exp.name, 1.0)
    try:
        return _run_experiment(exp, ctx)
    finally:
        ctx.scale = base


def _run_experiment(exp: Experiment, ctx: Context) -> dict[str, Any]:
    if (why := exp.requires(ctx)) is not None:
        ctx.say(f"[yellow]{exp.name} skipped[/]: {why}")
        return _document(exp, ctx, [], [], {}, skipped=why)
    points = exp.points(ctx)
    runs: list[dict[str, Any]] = []
    corpora: dict[str, dict[str, Any]] = {}
    skipped = {v.label: why for v in exp.variants if (why := v.requires()) is not None}
    for label, why in skipped.items():
        ctx.say(f"[yellow]{exp.name} {label} skipped[/]: {why}")
    for x in points:
        corpus = exp.corpus(ctx, x)
        oracle = _oracle(ctx, corpus, exp.oracle(x))
        size = (corpus.stat().st_size if corpus.is_file() else
                sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file()))
        corpora[str(x)] = {"path": corpus.name, "bytes": size, "checksum": checksum(corpus)}
        variants = [v for v in exp.variants if v.only(x) and v.label not in skipped]
        for rep in range(ctx.repeat):
            shift = rep % len(variants)
            for v in variants[shift:] + variants[:shift]:  # alternate who goes first
                counts = ctx.workdir / "counts.tsv"
                counts.unlink(missing_ok=True)
                seconds, rc, doc, err = v.measure(corpus, x, counts)
                checked = (doc or {}).get("check", {}).get("ok", True)  # the self-check
                exact = rc == 0 and checked and counts.exists() and filecmp.cmp(
                    counts, oracle, shallow=False)
                record = {"x": x, "variant": v.label, "rep": rep, "seconds": round(seconds, 4),
                          "bytes": size, "exit": rc, "exact": exact,
                          **{k: doc[k] for k in KEPT if doc and k in doc}}
                if doc and "timeline" in doc:  # a fault run: what happened when, and the check
                    record.update(timeline=doc["timeline"], events=doc.get("events", []),
                                  **lost_and_doubled(counts, oracle))
                if not exact:
                    why = (f"exit {rc}: " + " / ".join(err.splitlines()) if rc != 0 else
                           "its self-check failed" if not checked else
                           "its table differs from the serial engine's")
                    record["error"] = why
                    ctx.failures.append(f"{exp.name} {v.label} at {x}: {why}")
                    ctx.say(f"[bold red]FAILED[/] {exp.name} {v.label} at {x} (run {rep + 1}): "
                            f"{why}")
                runs.append(record)
                ctx.step(f"{exp.name} {v.label} at {x}")
    return _document(exp, ctx, points, runs, corpora, skipped_variants=skipped)


def _document(exp: Experiment, ctx: Context, points: list[Any], runs: list[dict[str, Any]],
              corpora: dict[str, dict[str, Any]], skipped: str | None = None,
              skipped_variants: dict[str, str] | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA, "name": exp.name, "title": exp.title, "question": exp.question,
            "x_label": exp.x_label, "metric": exp.metric, "setup": exp.setup(ctx),
            "params": {"scale": ctx.scale, "repeat": ctx.repeat, "tiny": ctx.tiny,
                       "points": points, "variants": [v.label for v in exp.variants]},
            "cache": "warm (each corpus was read by the serial oracle before the timed runs)",
            "machine": machine(), "corpora": corpora, "runs": runs,
            "summary": summarize(runs), **({"skipped": skipped} if skipped else {}),
            **({"skipped_variants": skipped_variants} if skipped_variants else {})}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (variant, x), over the exact runs only: median, min and max seconds and MB/s."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    order: list[tuple[str, str]] = []
    for r in runs:
        key = (r["variant"], json.dumps(r["x"]))
        if key not in groups:
            groups[key] = []
            order.append(key)
        if r["exact"]:
            groups[key].append(r)
    out = []
    for variant, x in order:
        ok = groups[(variant, x)]
        secs = [r["seconds"] for r in ok]
        row: dict[str, Any] = {"variant": variant, "x": json.loads(x), "n": len(ok),
                               "failed": sum(1 for r in runs if r["variant"] == variant
                                             and json.dumps(r["x"]) == x and not r["exact"])}
        if secs:
            nbytes = ok[0]["bytes"]
            row.update(median=statistics.median(secs), min=min(secs), max=max(secs),
                       mb_s=nbytes / statistics.median(secs) / 1e6, bytes=nbytes)
            for k in ("stolen", "backups", "duplicates", "tasks"):
                if all(k in r for r in ok):
                    row[k] = statistics.median(r[k] for r in ok)
        out.append(row)
    return out


def secs(row: dict[str, Any] | None) -> str:
    """A summary row's median time, for an answer; ``n/a`` without an exact run."""
    return f"{row['median']:.2f} s" if row else "n/a"


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """a's median time over b's, as ``1.23x``; ``n/a`` when either has no exact run."""
    return f"{a['median'] / b['median']:.2f}x" if a and b else "n/a"


def series(summary: list[dict[str, Any]], variant: str | None = None) -> list[dict[str, Any]]:
    """The summary rows of ``variant`` (every variant when None) that have exact runs, by x."""
    return sorted((r for r in summary if r["n"] and variant in (None, r["variant"])),
                  key=lambda r: r["x"])


def find(summary: list[dict[str, Any]], variant: str, x: Any = None) -> dict[str, Any] | None:
    """The summary row of ``variant`` at ``x`` (any x when None); None if it has no exact run."""
    for row in summary:
        if row["variant"] == variant and (x is None or row["x"] == x) and row["n"]:
            return row
    return None
