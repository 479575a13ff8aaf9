"""Experiments on Redis's own failures and persistence (E13, E16/E17, E19): a job on a
``LocalCluster`` in this process, whose redis-server a nemesis kills (SIGKILL) and restarts
from its last RDB snapshot on a schedule. Each run records a **timeline** (tasks settled over
time, as the client saw them) and its **events** (each kill, each restart); the runner adds
``lost`` and ``doubled`` (word occurrences missing or extra against the serial engine)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import redis

from .core import Context, Experiment, Variant, find, ratio, secs

MiB = 1 << 20
CHUNK = 1 << 20  # 1 MiB tasks: enough of them to see a rollback


def job(corpus: Path, counts: Path, *, kill_every: float = 0.0, kill_once: bool = False,
        wipe: bool = False, downtime: float = 0.3, save: str = "1 1", aof: str = "",
        workers: int = 2) -> dict[str, Any]:
    """One job with its own Redis (snapshots per ``save``; ``aof`` "everysec"/"always" turns
    the AOF on); Redis killed every ``kill_every`` s, or once (``kill_once``) as soon as a
    third of the tasks are settled, restarted from its files, or from nothing with ``wipe``.
    The table goes to ``counts``."""
    from ... import apps, client
    from ...embedded import LocalCluster, RedisServer

    server = RedisServer(save=save, appendonly=bool(aof))
    events: list[list[Any]] = []
    timeline: list[list[Any]] = []
    with server:
        if aof:
            r = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
            r.config_set("appendfsync", aof)
            r.close()
        log = counts.with_name("workers.log")  # (this run's: the last run's is kept)
        log.unlink(missing_ok=True)
        with LocalCluster(workers, server, log_path=str(log)) as cluster:
            conn = cluster.connect(retry_seconds=120)
            planned = client.plan_job([str(corpus)], CHUNK, pack_size=0)  # a task a file
            planned.queue = "stream"
            started = time.monotonic()
            kills = [0]

            def nemesis(elapsed: float) -> None:
                seen = timeline[-1] if timeline else [0, 0, 1]
                due = (kill_every and elapsed >= kill_every * (kills[0] + 1)) or (
                    kill_once and not kills[0] and 3 * seen[1] >= seen[2] > seen[1])
                if not due:
                    return
                server.kill()
                kills[0] += 1
                events.append([round(time.monotonic() - started, 3), "Redis killed"])
                if wipe:
                    server.wipe()
                time.sleep(downtime)
                server.start()
                events.append([round(time.monotonic() - started, 3),
                               "Redis restarted" + (" empty" if wipe else " from its RDB")])

            def sample() -> None:
                try:
                    p = client.progress(conn, planned.name)
                except Exception:  # noqa: BLE001 - Redis is down: no sample this time
                    return
                timeline.append([round(time.monotonic() - started, 3), p.done + p.dead,
                                 p.all_tasks])

            waited = cluster.run(conn, planned, timeout_s=900, on_poll=sample, poll_s=0.02,
                                 nemesis=nemesis if (kill_every or kill_once) else None,
                                 every_s=0.02)
            result, progress = client.result(conn, planned, time.monotonic() - started, waited)
            seconds = time.monotonic() - started
            timeline.append([round(seconds, 3), progress.done + progress.dead,
                             progress.all_tasks])
            apps.get("wordcount").write(result.counts, str(counts))
            conn.close()
    return {"seconds": seconds, "exit": 0, "timeline": timeline, "events": events,
            "check": progress.check, "kills": kills[0], "resubmits": progress.resubmits,
            "tasks": progress.all_tasks, "stolen": progress.stolen,
            "duplicates": progress.duplicates}


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


# -- E13 ---------------------------------------------------------------------------------------

def _e13_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    base = find(s, "no faults")
    rdb, empty = find(s, "killed once", "from RDB"), find(s, "killed once", "from nothing")
    return (f"Redis SIGKILLed once mid-job and restarted from its last snapshot: "
            f"{ratio(rdb, base)} the time without faults; restarted empty (its files wiped): "
            f"{ratio(empty, base)}, the client submitting the job again. Every table exact "
            f"({_check(doc)}).")


E13 = Experiment(
    "E13", "Redis killed", "Redis killed and restarted during a job (from its RDB, and from "
    "nothing)", "restart", lambda ctx: ["from RDB", "from nothing"],
    lambda ctx, x: _corpus(ctx, "e13", 64 * MiB),
    [Variant("no faults", call=lambda c, x, out: job(c, out), only=lambda x: x == "from RDB"),
     Variant("killed once", call=lambda c, x, out: job(
         c, out, kill_once=True, wipe=x == "from nothing"))],
    _e13_answer, setup=lambda ctx: "16 files in 1 MiB tasks, 2 workers, Redis saving every "
                                   "second (`save 1 1`), SIGKILLed once a third of the tasks "
                                   "are settled, down 0.3 s")


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
    rows = sorted((r for r in s if r["variant"] == "killed every N s" and r["n"]),
                  key=lambda r: r["x"])
    parts = [f"every {r['x']} s: {ratio(r, base)}" for r in rows]
    return ("Redis SIGKILLed on a schedule and restarted from its last snapshot, against no "
            f"faults ({secs(base)}): " + ", ".join(parts) + f" (the goal at 10 s: ≤ 1.5×). "
            f"Every table exact ({_check(doc)}).")


E19 = Experiment(
    "E19", "Redis killed every N s", "Redis killed every N seconds", "seconds between kills",
    lambda ctx: [0.5, 1.0] if ctx.tiny else [2, 5, 10],
    lambda ctx, x: _corpus(ctx, "e19", 96 * MiB, files=24),
    [Variant("no faults", call=lambda c, x, out: job(c, out), only=lambda x: x in (0.5, 2)),
     Variant("killed every N s", call=lambda c, x, out: job(c, out, kill_every=x))],
    _e19_answer, setup=lambda ctx: "24 files in 1 MiB tasks, 2 workers, `save 1 1`, each "
                                   "kill down 0.3 s")


FAULT_EXPERIMENTS = (E13, E16, E19)
