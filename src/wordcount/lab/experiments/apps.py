"""The apps against their sequential oracles (E25): the inverted index and PageRank, each as
`wordcount run` (2 workers, and with workers crashing) beside `count --engine serial --app`,
and PageRank's rounds with Redis SIGKILLed every few seconds (a `wordcount submit` client,
workers on a ``LocalCluster``, a Redis that restarts from its last snapshot: rounds roll back
and are counted again). Every table, the index's lists and PageRank's exact decimal ranks, is
compared byte for byte with the oracle's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..corpus import human
from .core import Context, Experiment, Variant, find, ratio, secs
from .faults import About

MiB = 1 << 20
ROUNDS = 10
KILL_EVERY = 2.0  # s


def _corpus(ctx: Context, x: str) -> Path:
    from .. import corpus as corpora
    from .. import graph

    if x == "index":
        size = ctx.size(16 * MiB, 256 * 1024) // 16
        return ctx.corpus(f"apps-index-16x{size}", lambda d: corpora.generate(
            d, 16, size, seed=25))
    pages = ctx.size(40_000, 2_000)
    return ctx.corpus(f"apps-graph-{pages}", lambda d: graph.generate(
        str(d), pages=pages, links=4, files=8, seed=25))


def _app(x: str) -> list[str]:
    """The app's arguments, the same for the oracle and every run."""
    return (["--app", "index"] if x == "index" else
            ["--app", "pagerank", "--rounds", str(ROUNDS), "--epsilon", "0"])


def _run(*flags: str):
    return lambda c, x: ["run", str(c), *_app(x), "--workers", "2", *flags]


def rounds_killed(corpus: Path, x: str, counts: Path) -> dict[str, Any]:
    """PageRank's rounds driven by a `wordcount submit` process, 2 workers on a LocalCluster,
    Redis (``save 1 1``) SIGKILLed about every ``KILL_EVERY`` s (``faults.About``) and
    restarted from its snapshot.
    The timeline sums the tasks settled over every round's job (a rollback shows as a drop)."""
    from ... import client
    from ...connection import Connection
    from ...embedded import LocalCluster, Nemesis, RedisServer
    from ...settings import Settings
    from ..clirun import wc_bg

    server = RedisServer(save="1 1")
    events: list[list[Any]] = []
    timeline: list[list[Any]] = []
    names = ["pr-links", *(f"pr-r{i}" for i in range(1, ROUNDS + 1))]
    started = time.monotonic()
    kills = [0]
    due = About(KILL_EVERY, first=0.5)  # (the first soon: a short job's rounds see one too)

    def at() -> float:
        return round(time.monotonic() - started, 3)

    def nemesis(elapsed: float) -> None:
        if due(elapsed):
            server.kill()
            kills[0] += 1
            events.append([at(), "Redis killed"])
            time.sleep(0.3)
            server.start()
            events.append([at(), "Redis restarted from its RDB"])

    with server:
        log = counts.with_name("workers.log")
        log.unlink(missing_ok=True)
        env = server.env()
        with LocalCluster(2, server, log_path=str(log), block_ms=100) as cluster:
            conn = Connection(Settings.from_env({}, redis_url=env["REDIS_URL"],
                                                redis_password=env.get("REDIS_PASSWORD"),
                                                retry_seconds=120), name="e25-sampler")
            proc = wc_bg("submit", str(corpus), *_app(x), "--job", "pr", "--json", "-q",
                         "--counts-out", str(counts), env=env)
            try:
                with Nemesis(nemesis, 0.05) as running:
                    per_round = 0
                    while proc.poll() is None:
                        cluster.tend()
                        running.check()
                        try:
                            ps = [client.progress(conn, n) for n in names]
                        except Exception:  # noqa: BLE001 - Redis is down: no sample
                            ps = []
                        if ps:
                            per_round = per_round or ps[0].all_tasks
                            timeline.append([at(), sum(p.done + p.dead for p in ps),
                                             per_round * len(names)])
                        time.sleep(0.05)
                running.check()
                out, err = proc.communicate()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
                conn.close()
    seconds = time.monotonic() - started
    if timeline:
        timeline.append([round(seconds, 3), timeline[-1][2], timeline[-1][2]])
    return {"seconds": seconds, "exit": proc.returncode, "timeline": timeline, "events": events,
            "kills": kills[0], "stderr": err.strip()[-400:]}


def _answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = []
    for x, what in (("index", "The inverted index"), ("pagerank", f"PageRank ({ROUNDS} rounds)")):
        oracle = find(s, "sequential oracle", x)
        run, crashing = find(s, "run ×2", x), find(s, "run ×2, workers crashing", x)
        parts.append(f"{what}: the sequential oracle {secs(oracle)}, `run` ×2 "
                     f"{ratio(run, oracle)} its time, with workers crashing "
                     f"{ratio(crashing, oracle)}")
    killed = find(s, f"Redis killed every {KILL_EVERY:g} s", "pagerank")
    calm = find(s, "run ×2", "pagerank")
    kills = sum(r.get("kills", 0) for r in doc["runs"])
    return ("; ".join(parts) + ". PageRank's rounds with Redis SIGKILLed about every "
            f"{KILL_EVERY:g} s ({kills} kills in all) took {ratio(killed, calm)} the "
            "fault-free `run` ×2 (rolled-back rounds counted again). Every table equal to the "
            "oracle's, byte for byte: the index's lists and the ranks' exact decimals.")


E25 = Experiment(
    "E25", "apps", "The apps: the inverted index and PageRank against their sequential "
    "oracles, and PageRank's rounds under faults", "app", lambda ctx: ["index", "pagerank"],
    _corpus,
    [Variant("sequential oracle", lambda c, x: ["count", str(c), *_app(x), "--engine",
                                                "serial"]),
     Variant("run ×2", _run()),
     Variant("run ×2, workers crashing", _run("--crash-at", "any", "--crash-prob", "0.05",
                                              "--max-attempts", "1000", "--claim-timeout",
                                              "500")),
     Variant(f"Redis killed every {KILL_EVERY:g} s", call=rounds_killed,
             only=lambda x: x == "pagerank")],
    _answer, oracle=_app,
    setup=lambda ctx: f"the index of {human(ctx.size(16 * MiB, 256 * 1024))} of synthetic "
                      f"text in 16 files; PageRank of a {ctx.size(40_000, 2_000)}-page "
                      f"generated graph (about 4 links a page, 8 files), {ROUNDS} rounds "
                      "(`--epsilon 0`); crashes at any point of 5% of task attempts "
                      "(`--claim-timeout 500`); Redis "
                      f"(`save 1 1`) SIGKILLed about every {KILL_EVERY:g} s (gaps 0.75-1.25×, "
                      "seeded), down 0.3 s")

APP_EXPERIMENTS = (E25,)
