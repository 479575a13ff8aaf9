"""``wordcount bench history``: what the job's history (``keys.history``, written inside the
Functions that take and settle tasks) costs per task, measured side by side in one run.

One redis-server on loopback; the same job of small tasks (each a few words) taken and
committed by one client through the real wrappers (``functions.take`` + ``Queues.complete``),
alternately with the shipped library and with the same library whose ``remember`` returns at
once (loaded under the shipped identity, so the callers are the same). Each round runs every
task of a fresh job; rounds alternate A/B so that drift of a noisy machine hits both. Printed:
Redis CPU per task (``INFO commandstats``: FCALL usec) and the client's wall time per task,
with and without, and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from .. import client, functions
from ..connection import BUILD, Connection, library_code
from ..queue import Queues
from ..settings import Settings

NO_HISTORY = ("local function remember(history, now, what, id, worker, counted)\n"
              "  if not history then return end",
              "local function remember(history, now, what, id, worker, counted)\n"
              "  if true then return end")


def _variant() -> str:
    code = library_code()
    if NO_HISTORY[0] not in code:
        raise RuntimeError("remember() is not where the bench expects it in wordcount.lua")
    return code.replace(NO_HISTORY[0], NO_HISTORY[1], 1)


def _load(conn: Connection, code: str) -> None:
    conn.call(lambda r: r.function_load(code, replace=True))


def _fcall_usec(conn: Connection) -> tuple[int, int]:
    stats = conn.call(lambda r: r.info("commandstats"))
    s = stats.get("cmdstat_fcall", {})
    return int(s.get("usec", 0)), int(s.get("calls", 0))


def _round(conn: Connection, root: Path, name: str, queue: str) -> tuple[float, float]:
    """One job of every file under ``root``: (Redis usec per task, wall ms per task)."""
    job = client.plan_job([str(root)], 1 << 20, name, pack_size=0)
    job.queue = queue
    client.submit(conn, job)
    q = Queues(conn, "bench", conn.settings)
    conn.call(lambda r: r.config_resetstat())
    started = time.perf_counter()
    n = 0
    while True:
        c = (functions.take(conn, name, "bench") if queue == "stream"
             else functions.lease_claim(conn, name, "bench", 60_000))
        if c is None:
            break
        q.complete(c, Counter({"alpha": 2, "beta": 1, f"w{n}": 1}), c.task.end - c.task.start, 1)
        n += 1
    wall = time.perf_counter() - started
    usec, _ = _fcall_usec(conn)
    assert n == len(job.tasks), (n, len(job.tasks))
    functions.delete(conn, name, force=True)
    return usec / n, wall * 1000 / n


def main(args: argparse.Namespace) -> int:
    from ..embedded import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "in"
        root.mkdir()
        for i in range(args.tasks):
            (root / f"f{i:05d}.txt").write_text(f"alpha beta alpha w{i}\n")
        server = RedisServer(directory=str(Path(tmp) / "redis"), save="")
        server.start()
        try:
            conn = Connection(Settings.from_env({}, redis_url=server.url,
                                                redis_password=server.password))
            variants = {"with history": library_code(), "without": _variant()}
            got: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
            for r in range(args.rounds):
                for label, code in (variants.items() if r % 2 == 0
                                    else reversed(variants.items())):
                    _load(conn, code)
                    got[label].append(_round(conn, root, f"bench-{r}", args.queue))
            conn.close()
        finally:
            server.stop()
    print(f"history cost: {args.tasks} tasks x {args.rounds} rounds per variant, "
          f"{args.queue} queue, build {BUILD} (medians; rounds alternate)")
    med = {k: (statistics.median(u for u, _ in v), statistics.median(w for _, w in v))
           for k, v in got.items()}
    for label, (usec, ms) in med.items():
        print(f"  {label:13} Redis {usec:7.1f} us/task (FCALL)   client {ms:6.3f} ms/task")
    (u1, w1), (u0, w0) = med["with history"], med["without"]
    print(f"  ratio with/without: Redis CPU {u1 / u0:.3f}x, client wall {w1 / w0:.3f}x "
          f"(2 list entries per task: its take and its commit)")
    return 0


def add_parser(kinds) -> None:
    h = kinds.add_parser("history", help="the job history's cost per task: the Functions with "
                                         "and without it, side by side")
    h.add_argument("--tasks", type=int, default=2000, help="tasks per job (default 2000)")
    h.add_argument("--rounds", type=int, default=6, help="rounds per variant (default 6)")
    h.add_argument("--queue", choices=("stream", "lease"), default="stream")
    h.set_defaults(handler=main)
