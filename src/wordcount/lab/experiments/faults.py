"""Experiments on Redis's own failures and persistence (E13, E16/E17, E19): a job on a
``LocalCluster`` in this process, whose redis-server a nemesis kills (SIGKILL) and restarts
from its last RDB snapshot on a schedule. Each run records a **timeline** (tasks settled over
time, as the client saw them) and its **events** (each kill, each restart); the runner adds
``lost`` and ``doubled`` (word occurrences missing or extra against the serial engine)."""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path
from typing import Any

import redis

from ..corpus import human
from .core import Context, Experiment, Variant, find, ratio, secs, series

MiB = 1 << 20
CHUNK = 1 << 20  # 1 MiB tasks: enough of them to see a rollback
TIMEOUT_S = 300  # a faulty run not done by then is a failed run (a liveness failure)


class About:
    """``due(elapsed)``: True about every ``every`` s, each gap drawn in [0.75, 1.25] x
    ``every`` (seeded: the same gaps each run; the first about ``first`` s if given). Not an
    exact period: on one, the restarts of a
    killed Redis keep one phase against its whole-second save clock, and with a 2 s period that
    phase can rule out every snapshot for good (ARCHITECTURE: "Redis killed more often than
    ...")."""

    def __init__(self, every: float, first: float | None = None) -> None:
        self.every, self.gaps = every, random.Random(f"kills-{every}")
        self.next = (every if first is None else first) * self.gaps.uniform(0.75, 1.25)

    def __call__(self, elapsed: float) -> bool:
        if elapsed < self.next:
            return False
        self.next = elapsed + self.every * self.gaps.uniform(0.75, 1.25)
        return True


def job(corpus: Path, counts: Path, *, kill_every: float = 0.0, kill_once: bool = False,
        kill_submitting: bool = False, kill_finished: bool = False, wipe: bool = False,
        downtime: float = 0.3, save: str = "1 1", aof: str = "", workers: int = 2,
        crash_prob: float = 0.0, chunk: int = 0) -> dict[str, Any]:
    """One job with its own Redis (snapshots per ``save``; ``aof`` "everysec"/"always" turns
    the AOF on), SIGKILLed and restarted (from its files, or from nothing with ``wipe``, after
    ``downtime`` s):
    - about every ``kill_every`` s (each gap 0.75-1.25 x, seeded);
    - once (``kill_once``) as soon as a third of the tasks are settled;
    - once half-way through the submission (``kill_submitting``: 8 batches);
    - or once the job is done, before the client reads its result (``kill_finished``).
    ``crash_prob``: workers crash at any point of a task with that probability (and are
    started again). Tasks of ``chunk`` bytes (default 1 MiB), a file at most each. The table
    goes to ``counts``."""
    from ... import apps, client
    from ...embedded import LocalCluster, RedisServer
    from ...workeropts import WorkerOptions

    server = RedisServer(save=save, appendonly=bool(aof))
    events: list[list[Any]] = []
    timeline: list[list[Any]] = []
    options = WorkerOptions(crash_at="any", crash_prob=crash_prob) if crash_prob else None
    started = time.monotonic()
    kills = [0]

    def at() -> float:
        return round(time.monotonic() - started, 3)

    def bounce(when: str = "") -> None:
        server.kill()
        kills[0] += 1
        events.append([at(), "Redis killed" + when])
        if wipe:
            server.wipe()
        time.sleep(downtime)
        server.start()
        events.append([at(), "Redis restarted" + (" empty" if wipe else " from its RDB")])

    with server:
        if aof:
            r = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
            r.config_set("appendfsync", aof)
            r.close()
        log = counts.with_name("workers.log")  # (this run's: the last run's is kept)
        log.unlink(missing_ok=True)
        with LocalCluster(workers, server, log_path=str(log), options=options) as cluster:
            planned = client.plan_job([str(corpus)], chunk or CHUNK, pack_size=0)
            planned.queue = "stream"
            batches = 8 if kill_submitting else 1  # (more than one batch: a kill between)
            conn = cluster.connect(retry_seconds=120, submit_batch=max(
                1, -(-len(planned.tasks) // batches)))
            crashes = [0]
            due = About(kill_every)

            def nemesis(elapsed: float) -> None:
                seen = timeline[-1] if timeline else [0, 0, 1]
                if kill_every and due(elapsed):
                    bounce()
                elif kill_once and not kills[0] and 3 * seen[1] >= seen[2] > seen[1]:
                    bounce()

            def sample() -> None:
                while crashes[0] < cluster.crashes:  # (seen by the tend before this)
                    crashes[0] += 1
                    events.append([at(), "worker crashed"])
                try:
                    p = client.progress(conn, planned.name)
                except Exception:  # noqa: BLE001 - Redis is down: no sample this time
                    return
                timeline.append([at(), p.done + p.dead, p.all_tasks])

            def submitted(reply: Any) -> None:  # (a protocol.Submitted)
                sample()
                total = len(planned.tasks)
                if not kills[0] and 2 * reply.submitted >= total > reply.submitted:
                    bounce(f" ({reply.submitted} of {total} tasks submitted)")

            client.submit(conn, planned, on_batch=submitted if kill_submitting else None)
            waited = cluster.wait(conn, planned, timeout_s=TIMEOUT_S, on_poll=sample,
                                  poll_s=0.02,
                                  nemesis=nemesis if (kill_every or kill_once) else None,
                                  every_s=0.02)
            timeline.append([at(), waited.done + waited.dead, waited.all_tasks])
            if kill_finished:
                time.sleep(LINGER)  # the workers see no job left, and exit
                bounce()
            result, progress = client.result(conn, planned, time.monotonic() - started, waited,
                                             on_poll=lambda: (cluster.tend(), sample()),
                                             timeout_s=TIMEOUT_S)
            seconds = time.monotonic() - started
            timeline.append([round(seconds, 3), progress.done + progress.dead,
                             progress.all_tasks])
            apps.get("wordcount").write(result.counts, str(counts))
            conn.close()
    return {"seconds": seconds, "exit": 0, "timeline": timeline, "events": events,
            "check": progress.check, "kills": kills[0], "resubmits": progress.resubmits,
            "tasks": progress.all_tasks, "stolen": progress.stolen,
            "duplicates": progress.duplicates, "crashes": crashes[0]}


def _corpus(ctx: Context, key: str, size: int, files: int = 16) -> Path:
    from .. import corpus as corpora

    per = max(1, ctx.size(size, 2 * MiB) // files)
    return ctx.corpus(f"faults-{key}-{files}x{per}", lambda d: corpora.generate(
        d, files, per, seed=13))


def _check(doc: dict[str, Any]) -> str:
    runs = [r for r in doc["runs"] if "lost" in r]
    lost = sum(r["lost"] for r in runs)
    doubled = sum(r["doubled"] for r in runs)
    kills = sum(r.get("kills", 0) for r in runs)
    return f"over its {len(runs)} runs and {kills} kills: lost = {lost}, doubled = {doubled}"


RESTARTS = ["from RDB", "from nothing"]  # (E13-E15's points: what Redis restarts from)


def _restarts(name: str, title: str, question: str, label: str, answer, setup: str,
              extra: tuple[Variant, ...] = (), **kw: Any) -> Experiment:
    """One Redis kill (``kw`` for ``job`` says when), Redis restarted from its snapshot and
    from nothing, beside the same job without faults: E13-E15."""
    return Experiment(
        name, title, question, "restart", lambda ctx: RESTARTS,
        lambda ctx, x: _corpus(ctx, "e13", 64 * MiB),
        [Variant("no faults", call=lambda c, x, out: job(c, out), only=lambda x: x == RESTARTS[0]),
         Variant(label, call=lambda c, x, out: job(c, out, wipe=x == RESTARTS[1], **kw)),
         *extra],
        answer, setup=lambda ctx: "16 files in 1 MiB tasks, 2 workers, Redis saving every "
                                  f"second (`save 1 1`); {setup}")


def _rows(doc: dict[str, Any], label: str) -> tuple[dict | None, dict | None, dict | None]:
    """No faults, and ``label`` restarted from its snapshot and from nothing."""
    s = doc["summary"]
    return find(s, "no faults"), find(s, label, RESTARTS[0]), find(s, label, RESTARTS[1])


# -- E13 ---------------------------------------------------------------------------------------

def _e13_answer(doc: dict[str, Any]) -> str:
    base, rdb, empty = _rows(doc, "killed once")
    both = find(doc["summary"], "killed once, workers crashing", RESTARTS[0])
    crashes = sum(r.get("crashes", 0) for r in doc["runs"])
    return (f"Redis SIGKILLed once mid-job and restarted from its last snapshot: "
            f"{ratio(rdb, base)} the time without faults; restarted empty (its files wiped): "
            f"{ratio(empty, base)}, the client submitting the job again; with workers "
            f"crashing too (5% of task attempts; worker crashes in all: {crashes}): "
            f"{ratio(both, base)}. Every table exact ({_check(doc)}).")


E13 = _restarts(
    "E13", "Redis killed", "Redis killed and restarted during a job (from its RDB, and from "
    "nothing)", "killed once", _e13_answer,
    "SIGKILLed once a third of the tasks are settled, down 0.3 s; in one variant workers also "
    "crash at any point of 5% of task attempts (started again at once)",
    extra=(Variant("killed once, workers crashing", call=lambda c, x, out: job(
        c, out, kill_once=True, crash_prob=0.05), only=lambda x: x == RESTARTS[0]),),
    kill_once=True)


# -- E14, E15 ---------------------------------------------------------------------------------

def _e14_answer(doc: dict[str, Any]) -> str:
    base, rdb, empty = _rows(doc, "killed submitting")
    return (f"Redis SIGKILLed half-way through a submission of 8 batches: restarted from its "
            f"snapshot, {ratio(rdb, base)} the time without faults; restarted empty, "
            f"{ratio(empty, base)}. Each submission call answers how many tasks Redis holds "
            "and the client goes on from there, so batches lost with the snapshot are sent "
            f"again and none is skipped. Every table exact ({_check(doc)}).")


E14 = _restarts(
    "E14", "killed submitting", "Redis killed during the submission", "killed submitting",
    _e14_answer, "the job submitted in 8 batches, Redis SIGKILLed once half the tasks are "
    "submitted, down 0.3 s", kill_submitting=True)

LINGER = 4.0  # s from the job's end to the kill: longer than a `run` worker's idle grace (3 s)


def _e15_answer(doc: dict[str, Any]) -> str:
    base, rdb, empty = _rows(doc, "killed when done")
    return (f"Redis SIGKILLed {LINGER:g} s after the last commit, before the client read the "
            f"result (its workers had exited, seeing no work): restarted from its snapshot, "
            f"{ratio(rdb, base)} the time without faults (the {LINGER:g} s included), from "
            f"nothing {ratio(empty, base)}. The client reads a result only while the job is "
            "finished and unchanged; one rolled back (or lost) is waited for (or submitted) "
            f"again, the workers started again. Every table exact ({_check(doc)}).")


E15 = _restarts(
    "E15", "killed when done", "Redis killed after the last commit, before the client reads "
    "the result", "killed when done", _e15_answer,
    f"Redis SIGKILLed {LINGER:g} s after the job is done (the workers exit after 3 s without "
    "work), down 0.3 s", kill_finished=True)


# -- E16, E17 ----------------------------------------------------------------------------------

PERSISTENCE = {"no snapshots": {"save": ""}, "RDB every 1 s": {"save": "1 1"},
               "RDB every 60 s": {"save": "60 1000"},
               "AOF everysec": {"save": "", "aof": "everysec"},
               "AOF always": {"save": "", "aof": "always"}}


def _job_with(kw: dict[str, str], corpus: Path, x: Any, counts: Path) -> dict[str, Any]:
    return job(corpus, counts, **kw)  # type: ignore[arg-type]


def _e16_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    base = find(s, "no snapshots")
    parts = [f"{v}: {ratio(find(s, v), base)}" for v in PERSISTENCE if v != "no snapshots"]
    rows = [r for r in s if r["variant"] != "no snapshots" and r["n"]]
    worst = max(rows, key=lambda r: r["median"], default=None)
    return (f"Without faults, against no persistence ({secs(base)}): " + ", ".join(parts)
            + (f"; the costliest was {worst['variant']}." if worst else "."))


E16 = Experiment(
    "E16", "persistence", "The cost of RDB snapshots without faults, their frequency (E17), "
    "and the AOF for comparison", "persistence", lambda ctx: ["no faults"],
    lambda ctx, x: _corpus(ctx, "e16", 64 * MiB),
    [Variant(v, call=functools.partial(_job_with, kw)) for v, kw in PERSISTENCE.items()],
    _e16_answer, setup=lambda ctx: "16 files in 1 MiB tasks, 2 workers, no faults")


# -- E19 ---------------------------------------------------------------------------------------

def _e19_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    base = find(s, "no faults")
    rows = series(s, "killed every N s")
    parts = [f"about every {r['x']:g} s: {ratio(r, base)}" for r in rows]
    short = rows[0] if rows else None
    why = (f" Kills closer together than Redis can snapshot (with `save 1 1`, 1 to 2 s after "
           f"each restart) undo most of each window's work: hence the cost at "
           f"{short['x']:g} s." if short and short["x"] <= 2 else "")
    return ("Redis SIGKILLed on a schedule and restarted from its last snapshot, against no "
            f"faults ({secs(base)}): " + ", ".join(parts) + " (the goal at 10 s: ≤ 1.5×)."
            + why + f" Every table exact ({_check(doc)}).")


E19 = Experiment(
    "E19", "Redis killed every N s", "Redis killed every N seconds", "seconds between kills",
    lambda ctx: [0.5, 1.0] if ctx.tiny else [2, 5, 10],
    lambda ctx, x: _corpus(ctx, "e19", 96 * MiB, files=24),
    [Variant("no faults", call=lambda c, x, out: job(c, out), only=lambda x: x in (0.5, 2)),
     Variant("killed every N s", call=lambda c, x, out: job(c, out, kill_every=x))],
    _e19_answer, setup=lambda ctx: "24 files in 1 MiB tasks, 2 workers, `save 1 1`, a kill "
                                   "about every N s (each gap 0.75-1.25 N, seeded), down 0.3 s")


# -- E18 ---------------------------------------------------------------------------------------

def _e18_corpus(ctx: Context, size: int) -> Path:
    from .. import corpus as corpora

    total = ctx.size(32 * MiB, 2 * MiB)
    files = max(1, total // size)
    return ctx.corpus(f"faults-e18-{files}x{size}", lambda d: corpora.generate(
        d, files, size, seed=18))


def _e18_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = []
    for x in doc["params"]["points"]:
        base = find(s, "no faults", x)
        parts.append(f"{human(x)} files: killed once {ratio(find(s, 'killed once', x), base)}, "
                     f"every ~2 s {ratio(find(s, 'killed every ~2 s', x), base)}")
    return ("The same bytes in files (a task each) of each size, Redis SIGKILLed and restarted "
            "from its snapshot, against no faults: " + "; ".join(parts) + ". Small tasks lose "
            "little work to a rollback but pay a commit each; a big task redone costs its "
            f"whole count. Every table exact ({_check(doc)}).")


E18 = Experiment(
    "E18", "file size × failures", "File size against Redis failures", "file size (bytes)",
    lambda ctx: [64 * 1024, 512 * 1024] if ctx.tiny else [64 * 1024, MiB, 8 * MiB],
    _e18_corpus,
    [Variant("no faults", call=lambda c, x, out: job(c, out, chunk=x)),
     Variant("killed once", call=lambda c, x, out: job(c, out, chunk=x, kill_once=True)),
     Variant("killed every ~2 s", call=lambda c, x, out: job(c, out, chunk=x, kill_every=2))],
    _e18_answer, setup=lambda ctx: f"{human(ctx.size(32 * MiB, 2 * MiB))} in files of each "
                                   "size, a task a file, 2 workers, `save 1 1`; Redis "
                                   "SIGKILLed once a third of the tasks are settled, or about "
                                   "every 2 s (each gap 1.5-2.5 s, seeded), down 0.3 s")


FAULT_EXPERIMENTS = (E13, E14, E15, E16, E18, E19)
