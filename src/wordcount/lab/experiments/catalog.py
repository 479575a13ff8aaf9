"""The lab's questions (seed 000, labs 1-4; seed 004 for backup tasks), one ``Experiment``
each. Sizes are for this 2-core machine at ``SCALE=1`` (all of them in well under 30 min);
``SCALE`` multiplies every size. Each answer is a sentence whose numbers come from the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import corpus as corpora
from ..corpus import human
from . import compose
from .apps import APP_EXPERIMENTS
from .core import Context, Experiment, Variant, find, ratio, secs, series
from .faults import FAULT_EXPERIMENTS
from .peers import PEER_EXPERIMENTS
from .raft import RAFT_EXPERIMENTS

MiB = 1 << 20


def _files(ctx: Context, files: int, size: int, seed: int = 1, skew: int = 0) -> Path:
    """``files`` synthetic files of ``size`` bytes (+ ``skew.txt`` of ``skew`` bytes)."""
    key = f"synthetic-{files}x{size}" + (f"+{skew}" if skew else "") + f"-s{seed}"
    return ctx.corpus(key, lambda d: corpora.generate(d, files, size, skew_size=skew,
                                                      seed=seed))


def _count(engine: str, workers: int = 2):
    """``wordcount count`` with ``engine`` (``workers`` for the parallel engines only)."""
    parallel = ["--workers", str(workers)] if engine in ("threads", "processes") else []
    return lambda c, x: ["count", str(c), "--engine", engine, *parallel]


def _run(*flags: str, workers: int = 2):
    return lambda c, x: ["run", str(c), "--workers", str(workers), *flags]


# -- E1 ----------------------------------------------------------------------------------------

def _e1_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = []
    for x in doc["params"]["points"]:
        serial, threads, procs, naive = (find(s, v, x) for v in ("serial", "threads ×2",
                                                                 "processes ×2", "naive"))
        parts.append(f"on the {x} corpus the serial engine took {secs(serial)}; threads ×2 "
                     f"{ratio(threads, serial)} its time, processes ×2 {ratio(procs, serial)}, "
                     f"the naive tokenizer {ratio(naive, serial)}")
    return (f"On {doc['machine']['cores']} cores: " + "; ".join(parts) + " (the goal: serial "
            "≥ 5× faster than naive). Every table was the same, word for word.")


def _e1_corpus(ctx: Context, x: str) -> Path:
    size = ctx.size(128 * MiB, 2 * MiB)
    if x == "synthetic":
        return _files(ctx, 8, size // 8)
    return ctx.real_text(8, size // 8)


E1 = Experiment(
    "E1", "engines", "Serial vs threads vs processes: the same table, how fast?",
    "corpus", lambda ctx: ["synthetic", "real text"], _e1_corpus,
    [Variant("serial", _count("serial")), Variant("threads ×2", _count("threads")),
     Variant("processes ×2", _count("processes")), Variant("naive", _count("reference"))],
    _e1_answer, setup=lambda ctx: f"8 files of {human(ctx.size(128 * MiB, 2 * MiB) // 8)}: "
                                  "synthetic (Zipf prose), and real text: "
                                  f"{ctx.real_what or 'not made'}, replicated to the size "
                                  "(the lab's `cat in.txt in.txt …`); `wordcount count "
                                  "--engine`")


# -- E2 and COST -------------------------------------------------------------------------------

def _e2_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    serial = find(s, "serial")
    runs = series(s, "run")
    if not serial or not runs:
        return "No exact run: no answer."
    beats = [r["x"] for r in runs if r["median"] < serial["median"]]
    cost = (f"COST = {beats[0]} worker processes" if beats else
            f"COST > {runs[-1]['x']} (no worker count tried beat one serial thread)")
    best = min(runs, key=lambda r: r["median"])
    one = runs[0]
    cluster = series(s, "compose cluster")
    if cluster:
        wins = [r["x"] for r in cluster if r["median"] < serial["median"]]
        fastest = min(cluster, key=lambda r: r["median"])
        on_compose = (f" On the compose cluster (the job's own time, without the containers' "
                      f"start): the fastest was {fastest['x']} worker containers at "
                      f"{secs(fastest)}; COST = {wins[0]} containers." if wins else
                      f" On the compose cluster: COST > {cluster[-1]['x']} (no container "
                      f"count tried beat one serial thread; the fastest, {fastest['x']}, "
                      f"took {secs(fastest)}).")
    else:
        why = doc.get("skipped_variants", {}).get("compose cluster", "no exact run")
        on_compose = f" The compose cluster was not measured: {why}."
    return (f"One worker took {secs(one)}, the serial engine {secs(serial)}; the fastest "
            f"was {best['x']} workers at {secs(best)} ({one['median'] / best['median']:.2f}× "
            f"one worker's speed, on {doc['machine']['cores']} cores). {cost} (McSherry et "
            "al.: the cores a parallel system needs to beat one competent thread; the goal: "
            "≤ 2)." + on_compose)


E2 = Experiment(
    "E2", "workers", "More workers on a fixed input: how does `wordcount run` scale, and "
    "what is its COST?", "worker processes",
    lambda ctx: [1, 2] if ctx.tiny else [1, 2, 3, 4, 8],
    lambda ctx, x: _files(ctx, 16, ctx.size(128 * MiB, 2 * MiB) // 16),
    [Variant("run", lambda c, x: ["run", str(c), "--workers", str(x)]),
     Variant("processes", lambda c, x: ["count", str(c), "--engine", "processes",
                                        "--workers", str(x)]),
     Variant("serial", _count("serial"), only=lambda x: x == 1),
     compose.variant("compose cluster", workers="x", only=lambda x: x in (2, 4))],
    _e2_answer, metric="mb_s",
    setup=lambda ctx: "16 synthetic files; `wordcount run --workers N` (a private Redis, N "
                      "forked workers, the default shuffle commit) beside `count --engine "
                      "processes --workers N`; the serial engine once, for COST; the compose "
                      "cluster with N worker containers (`scripts/cluster-job.sh`, as `make "
                      "up`), timed by the job's own time")


# -- E3 ----------------------------------------------------------------------------------------

def _e3_answer(doc: dict[str, Any]) -> str:
    rows = series(doc["summary"])
    if len(rows) < 2:
        return "Too few exact runs: no answer."
    a, b = rows[0], rows[-1]
    return (f"From {a['x']} to {b['x']} files of {human(a['bytes'] / a['x'])} each, on 2 "
            f"workers, throughput went from {a['mb_s']:.1f} to {b['mb_s']:.1f} MB/s: a fixed "
            "cost per job (a private Redis, forked workers, planning) is spread over more "
            "bytes.")


E3 = Experiment(
    "E3", "files", "More files on fixed workers: how does the time grow with the input?",
    "files", lambda ctx: [1, 4] if ctx.tiny else [1, 2, 4, 8, 16, 32],
    lambda ctx, x: _files(ctx, x, ctx.size(4 * MiB, 64 * 1024), seed=3),
    [Variant("run ×2", _run())], _e3_answer, metric="mb_s",
    setup=lambda ctx: f"N synthetic files of {human(ctx.size(4 * MiB, 64 * 1024))} each; "
                      "`wordcount run --workers 2`")


# -- E4, E5 ------------------------------------------------------------------------------------

def _e4_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    serial, procs = find(s, "serial"), find(s, "processes ×2")
    atomic, shuffle = find(s, "run ×2 atomic"), find(s, "run ×2 shuffle")
    return (f"Against the serial engine ({secs(serial)}), `run` ×2 took "
            f"{ratio(atomic, serial)} its time with the atomic commit and "
            f"{ratio(shuffle, serial)} with the shuffle; processes ×2 took "
            f"{ratio(procs, serial)}. `run` ×2 against processes ×2: "
            f"{ratio(procs, shuffle)} the speed (shuffle; the goal: ≥ 0.95x).")


E4 = Experiment(
    "E4", "redis", "The Redis engine against serial and processes, in each commit mode",
    "engine", lambda ctx: [ctx.size(128 * MiB, 2 * MiB)],
    lambda ctx, x: _files(ctx, 8, x // 8),
    [Variant("serial", _count("serial")), Variant("processes ×2", _count("processes")),
     Variant("run ×2 atomic", _run("--commit", "atomic")),
     Variant("run ×2 shuffle", _run("--commit", "shuffle"))],
    _e4_answer, setup=lambda ctx: "8 synthetic files; `run --workers 2 --commit MODE`")


def _e5_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    per_word, atomic = find(s, "per-word ZINCRBY"), find(s, "combined first")
    if not per_word or not atomic:
        return "No exact run: no answer."
    mib = per_word["bytes"] / MiB
    return (f"On a {mib:.1f} MiB slice, one ZINCRBY per occurrence took {secs(per_word)} "
            f"against {secs(atomic)} when each task combines its counts first: "
            f"{per_word['median'] / atomic['median']:.1f}× slower. Extrapolated linearly "
            f"(the per-word mode's time is its number of occurrences), 1 GiB would take "
            f"about {per_word['median'] / mib * 1024 / 60:.0f} min per-word; this slice is "
            "all that was run, to keep the experiment short.")


E5 = Experiment(
    "E5", "per-word", "Per-word ZINCRBY against combining locally first",
    "mode", lambda ctx: [ctx.size(8 * MiB, 256 * 1024)],
    lambda ctx, x: _files(ctx, 4, x // 4, seed=5),
    [Variant("per-word ZINCRBY", _run("--commit", "per-word")),
     Variant("combined first", _run("--commit", "atomic"))],
    _e5_answer, setup=lambda ctx: "a small slice (the per-word mode is slow); `run --commit "
                                  "per-word` vs `--commit atomic`, 2 workers")


# -- E6 ----------------------------------------------------------------------------------------

def _e6_answer(doc: dict[str, Any]) -> str:
    rows = series(doc["summary"], "run ×2")
    if len(rows) < 2:
        return "Too few exact runs: no answer."
    small, big = rows[0], rows[-1]
    return (f"A {human(small['x'])} file took {secs(small)} end to end (the fixed cost of a "
            f"job: start a Redis, fork workers, plan, commit), a {human(big['x'])} file "
            f"{secs(big)}: {big['mb_s']:.1f} MB/s. Below a few MiB the fixed cost dominates.")


E6 = Experiment(
    "E6", "file size", "File size from 100 B up: throughput and the per-job overhead",
    "file size (bytes)",
    lambda ctx: ([100, 64 * 1024] if ctx.tiny else
                 [100, 10_000, MiB, ctx.size(32 * MiB, MiB), ctx.size(256 * MiB, MiB)]),
    lambda ctx, x: _files(ctx, 1, x, seed=6),
    [Variant("serial", _count("serial")), Variant("run ×2", _run())],
    _e6_answer, metric="mb_s",
    setup=lambda ctx: "one synthetic file of each size (SCALE=4 reaches 1 GiB)")


# -- E7 ----------------------------------------------------------------------------------------

def _e7_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    bal = find(s, "split", "balanced")
    split, whole = find(s, "split", "skewed"), find(s, "whole files", "skewed")
    why = ("a task per whole file leaves one worker with the big file while the other idles"
           if split and whole and whole["median"] > split["median"] else
           "at this size a job's fixed cost of about a second hides the imbalance; a larger "
           "SCALE shows it")
    return (f"With one file 10× the others, splitting into byte ranges took "
            f"{ratio(split, bal)} the balanced corpus's time, whole files "
            f"{ratio(whole, bal)} (the goal: ≤ 1.1×): {why}.")


def _e7_corpus(ctx: Context, x: str) -> Path:
    each = ctx.size(512 * 1024, 16 * 1024)
    if x == "balanced":  # the same bytes, spread evenly
        return _files(ctx, 110, each, seed=7)
    return _files(ctx, 100, each, seed=7, skew=10 * each)


E7 = Experiment(
    "E7", "skew", "Skew: 100 equal files and one 10× bigger, with and without byte-range "
    "splitting", "corpus", lambda ctx: ["balanced", "skewed"], _e7_corpus,
    [Variant("split", _run("--chunk-size", "256KiB")),
     Variant("whole files", _run("--chunk-size", "1GiB", "--pack-size", "0"),
             only=lambda x: x == "skewed")],
    _e7_answer, setup=lambda ctx: "100 files + skew.txt (10×), against 110 equal files; "
                                  "`run --chunk-size 256KiB` vs whole files")


# -- E8, E11, E12 ------------------------------------------------------------------------------

def _e8_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    none = find(s, "no straggler")
    backups, nobackups = find(s, "straggler, backups"), find(s, "straggler, no backups")
    nb = backups.get("backups", 0) if backups else 0
    c_none = find(s, "compose: no straggler")
    c_backups = find(s, "compose: cpus 0.5 straggler, backups")
    c_nobackups = find(s, "compose: cpus 0.5 straggler, no backups")
    why = doc.get("skipped_variants", {}).get("compose: no straggler")
    on_compose = (f" On the compose cluster, 3 workers and a fourth container capped at "
                  f"`cpus: 0.5`: {ratio(c_backups, c_none)} with backups, "
                  f"{ratio(c_nobackups, c_none)} without." if not why else
                  f" The compose cluster was not measured: {why}.")
    return (f"One of 4 workers at half speed: {ratio(backups, none)} the time of no "
            f"straggler with backup tasks ({nb:g} backups a run, median), "
            f"{ratio(nobackups, none)} without (the goal: ≤ 1.1×)." + on_compose)


_STRAGGLE = ("--workers", "4", "--slowdown", "2", "--stragglers", "1")
E8 = Experiment(
    "E8", "straggler", "A straggler at half speed, with and without backup tasks",
    "corpus", lambda ctx: [ctx.size(64 * MiB, 2 * MiB)],
    lambda ctx, x: _files(ctx, 16, x // 16, seed=8),
    [Variant("no straggler", lambda c, x: ["run", str(c), "--workers", "4"]),
     Variant("straggler, backups", lambda c, x: ["run", str(c), *_STRAGGLE]),
     Variant("straggler, no backups", lambda c, x: ["run", str(c), *_STRAGGLE,
                                                    "--speculate-factor", "0"]),
     compose.variant("compose: no straggler", workers=4),
     compose.variant("compose: cpus 0.5 straggler, backups", workers=3, straggler=True),
     compose.variant("compose: cpus 0.5 straggler, no backups", workers=3, straggler=True,
                     backups=False)],
    _e8_answer, setup=lambda ctx: "16 files, 4 workers (on 2 cores), one at `--slowdown 2`; "
                                  "on the compose cluster, 4 worker containers, or 3 and the "
                                  "`straggler` profile's container (`cpus: 0.5`, no slowdown), "
                                  "4 MiB tasks, timed by the job's own time")


def _e11_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    none, slow = find(s, "no straggler"), find(s, "straggler ×100")
    if not slow:
        return "No exact run: no answer."
    return (f"A worker at 1/100 speed: the job took {ratio(slow, none)} the time of no "
            f"straggler; per run (median) {slow.get('stolen', 0):g} tasks were stolen, "
            f"{slow.get('backups', 0):g} backed up and {slow.get('duplicates', 0):g} finished "
            "twice, each applied once (the table is exact in every run: E12).")


E11 = Experiment(
    "E11", "severe straggler", "A severe straggler (1/100 speed): stealing, backups, and "
    "how often a task is finished twice (E12)", "corpus",
    lambda ctx: [ctx.size(32 * MiB, MiB)], lambda ctx, x: _files(ctx, 16, x // 16, seed=11),
    [Variant("no straggler", _run("--chunk-size", "1MiB", "--pack-size", "0")),
     Variant("straggler ×100", _run("--slowdown", "100", "--stragglers", "1",
                                    "--chunk-size", "1MiB", "--pack-size", "0"))],
    _e11_answer, setup=lambda ctx: "16 files in 1 MiB tasks (no packing), 2 workers, one at "
                                   "`--slowdown 100`: its task outlives the 2 s before a "
                                   "backup may start")


# -- E9, E10 -----------------------------------------------------------------------------------

def _e9_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    failed = sum(r["failed"] for r in s)
    worst = max((r for r in s if r["n"]), key=lambda r: r["median"], default=None)
    clean = find(s, "p=0")
    return (f"Every crash point × probability ended with the serial engine's table "
            f"({failed} inexact runs). The slowest cell was {worst['variant']} at "
            f"{worst['x']}: {ratio(worst, clean)} the time without crashes (a crashed "
            "task waits for its claim timeout)." if worst else "No exact run.")


def _crashing(prob: float):
    """``run`` with crashes at point x with probability ``prob``."""
    return lambda c, x: ["run", str(c), "--workers", "2", "--crash-at", x, "--crash-prob",
                         str(prob), "--max-attempts", "1000", "--claim-timeout", "500",
                         "--commit", "atomic", "--chunk-size", "512KiB"]


CRASH_POINTS = ["after-claim", "after-count", "before-commit", "after-commit"]
E9 = Experiment(
    "E9", "crash points", "Crashes at each point of a task, at several probabilities: "
    "exactness and time", "crash point",
    lambda ctx: CRASH_POINTS[:2] if ctx.tiny else CRASH_POINTS,
    lambda ctx, x: _files(ctx, 16, ctx.size(16 * MiB, MiB) // 16, seed=9),
    [Variant(f"p={p}", _crashing(p)) for p in (0, 0.1, 0.3)],
    _e9_answer, setup=lambda ctx: "16 files in 512 KiB tasks, 2 workers, `--crash-at POINT "
                                  "--crash-prob P --claim-timeout 500`; crashed workers are "
                                  "started again")


def _e10_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    cells = {(r["variant"], r["x"]): r for r in s if r["n"]}
    parts = [f"{v} {x}: {secs(r)}" for (v, x), r in sorted(cells.items())]
    return ("Claim timeout against crashes (median): " + "; ".join(parts) + ". A short "
            "timeout recovers a crashed task sooner; without failures it costs nothing here, "
            "because live workers heartbeat their tasks.")


def _timeout(ms: int):
    """``run`` with claim timeout ``ms``, crashing at any point when x says so."""
    return lambda c, x: ["run", str(c), "--workers", "2", "--claim-timeout", str(ms),
                         "--max-attempts", "1000", "--chunk-size", "512KiB",
                         *(["--crash-at", "any", "--crash-prob", "0.2"] if x != "none" else [])]


E10 = Experiment(
    "E10", "claim timeout", "Claim timeout small against large, with and without failures",
    "failures", lambda ctx: ["none", "crashes p=0.2"],
    lambda ctx, x: _files(ctx, 16, ctx.size(32 * MiB, MiB) // 16, seed=10),
    [Variant(f"timeout {ms} ms", _timeout(ms)) for ms in (300, 5000)],
    _e10_answer, setup=lambda ctx: "16 files in 512 KiB tasks, 2 workers")


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in sorted((E1, E2, E3, E4, E5, E6, E7, E8, E9, E10, E11, *FAULT_EXPERIMENTS,
                               *RAFT_EXPERIMENTS, *PEER_EXPERIMENTS, *APP_EXPERIMENTS),
                              key=lambda e: int(e.name[1:]))}
