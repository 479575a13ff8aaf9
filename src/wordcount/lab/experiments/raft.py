"""RedisRaft against one Redis, and its failures (E20-E23): a job on a ``LocalCluster`` in this
process whose store is a fresh three-node ``RaftCluster`` (real redis-server + RedisRaft
processes on 127.0.0.1: the process-mode variant, no Docker), or for comparison one
``RedisServer``. A nemesis on its own thread SIGKILLs nodes and starts them again, or
SIGSTOPs the leader and SIGCONTs it, on a schedule, and watches who leads (``INFO raft`` of the
live nodes every ``LEADER_EVERY_S``): each run records a **timeline** (tasks settled over time,
as the client saw them) and its **events** (each kill, restart, pause, resume and leader
election); the runner adds ``lost`` and ``doubled`` against the serial engine.

Jobs run on the lease queue (RedisRaft refuses every stream command) with atomic commits, on
both stores, so that only the store differs. Without the RedisRaft binaries (``make
raft-bin``) the experiments are recorded as skipped, with ``RaftUnavailable``'s reason."""

from __future__ import annotations

import contextlib
import logging
import random
import statistics
import time
from pathlib import Path
from typing import Any

import redis

from .core import Context, Experiment, Variant, find, ratio, secs, series

KiB, MiB = 1 << 10, 1 << 20
NODES = 3
WORKERS = 2
POLL_S = 0.05  # the client's progress polls (and the timeline's samples)
NEMESIS_EVERY_S = 0.05
LEADER_EVERY_S = 0.1  # how often the nemesis asks the live nodes who leads


class RunState:
    """What a nemesis sees and writes during one job: the cluster, the clock, the timeline the
    client samples, the events."""

    def __init__(self, cluster: Any, started: float) -> None:
        self.cluster, self.started = cluster, started
        self.timeline: list[list[Any]] = []
        self.events: list[list[Any]] = []
        self.kills = 0  # (pauses and elections: counted from the events)
        self.leader: tuple[int, int] | None = None  # (node, term) last seen leading
        self.leader_checked = 0.0
        self.clients: dict[int, Any] = {}  # a connection per node, for the leader watch

    def now(self) -> float:
        return time.monotonic() - self.started

    def event(self, text: str, at: float | None = None) -> None:
        self.events.append([round(self.now() if at is None else at, 3), text])

    def settled_fraction(self) -> float:
        if not self.timeline:
            return 0.0
        _, settled, total = self.timeline[-1]
        return settled / total if total else 0.0

    def kill(self, i: int, why: str = "") -> None:
        self.cluster.kill(i)
        self.kills += 1
        self.event(f"node {i} killed{why}")

    def restart(self, i: int) -> None:
        self.cluster.start(i)  # (returns once it answers PING: it rejoins by itself)
        self.event(f"node {i} restarted")

    def watch_leader(self, force: bool = False) -> tuple[int, int] | None:
        """Who leads now ((node, term), or None: no leader, or not asked this time, see
        LEADER_EVERY_S); records "leader elected: node i" when a leader of a newer term is
        seen (marked when the nodes were asked)."""
        at = self.now()
        if not force and at - self.leader_checked < LEADER_EVERY_S:
            return None
        self.leader_checked = at
        found = leader_and_term(self.cluster, self.clients)
        if found is None:
            return None
        if self.leader is not None and found[1] > self.leader[1]:
            self.event(f"leader elected: node {found[0]} (term {found[1]})", at)
        if self.leader is None or found[1] >= self.leader[1]:
            self.leader = found
        return found

    def current_leader(self, timeout: float = 15.0) -> int:
        """The leader now, waiting up to ``timeout`` s for one (an election it sees on the way
        is recorded as such)."""
        deadline = time.monotonic() + timeout
        while (found := self.watch_leader(force=True)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no RedisRaft leader within {timeout:g} s")
            time.sleep(0.05)
        return found[0]

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
        self.clients.clear()


def leader_and_term(cluster: Any, clients: dict[int, Any] | None = None
                    ) -> tuple[int, int] | None:
    """(index, term) of the live node that leads in the latest term, else None (paused nodes
    are not asked: they would only time out). ``clients``: a connection per node kept between
    calls (one that fails is dropped)."""
    clients = {} if clients is None else clients
    best: tuple[int, int] | None = None
    for node in cluster.nodes:
        if not node.alive or node.paused:
            continue
        if node.index not in clients:
            clients[node.index] = cluster.client(node.index, timeout=0.5)
        try:
            info = clients[node.index].info("raft")
        except redis.exceptions.RedisError:
            clients.pop(node.index).close()
            continue  # (down, loading its log, ...)
        if info.get("raft_role") == "leader" and info.get("raft_state") == "up":
            term = int(info.get("raft_current_term") or 0)
            if best is None or term > best[1]:
                best = (node.index, term)
    return best


# -- the nemeses: called with the run's state every NEMESIS_EVERY_S ---------------------------

class KillNodes:
    """Once a third of the tasks are settled: SIGKILL the leader (and, with ``count`` 2, the
    next node: no majority left, the job stalls), start them again ``downtime`` s later."""

    def __init__(self, count: int, downtime: float) -> None:
        self.count, self.downtime = count, downtime
        self.down: list[int] = []
        self.back_at = 0.0
        self.done = False

    def __call__(self, run: RunState) -> None:
        if not self.done and not self.down and 3 * run.settled_fraction() >= 1:
            leader = run.current_leader()
            self.down = [(leader + k) % NODES for k in range(self.count)]
            for i in self.down:
                run.kill(i, " (the leader)" if i == leader else "")
            self.back_at = run.now() + self.downtime
        elif self.down and run.now() >= self.back_at:
            for i in self.down:
                run.restart(i)
            self.down, self.done = [], True


class KillEvery:
    """Every ``every`` s, SIGKILL a random node (seeded: the same victims each run), start it
    again ``downtime`` s later."""

    def __init__(self, every: float, downtime: float, seed: int = 47) -> None:
        self.every, self.downtime = every, downtime
        self.rng = random.Random(seed)
        self.down: int | None = None
        self.back_at = 0.0
        self.n = 0

    def __call__(self, run: RunState) -> None:
        if self.down is not None and run.now() >= self.back_at:
            run.restart(self.down)
            self.down = None
        if self.down is None and run.now() >= self.every * (self.n + 1):
            self.n += 1
            self.down = self.rng.randrange(NODES)
            leader = run.watch_leader(force=True)  # (None: no leader right now)
            run.kill(self.down, " (the leader)" if leader and self.down == leader[0] else "")
            self.back_at = run.now() + self.downtime


class PauseLeader:
    """Once a third of the tasks are settled: SIGSTOP the leader, SIGCONT it ``seconds``
    later."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.paused: int | None = None
        self.until = 0.0
        self.done = False

    def __call__(self, run: RunState) -> None:
        if not self.done and self.paused is None and 3 * run.settled_fraction() >= 1:
            self.paused = run.current_leader()
            run.cluster.pause(self.paused)
            run.event(f"node {self.paused} paused (the leader)")
            self.until = run.now() + self.seconds
        elif self.paused is not None and run.now() >= self.until:
            run.cluster.resume(self.paused)
            run.event(f"node {self.paused} resumed")
            self.paused, self.done = None, True


class _Retries(logging.Filter):
    """Counts, and keeps off the console, the client's "...; retrying (attempt n)" warnings
    while a nemesis is at work (they are expected: the events say why)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "retrying (attempt" in str(record.msg):
            self.n += 1
            return False
        return True


@contextlib.contextmanager
def _quiet_retries():
    logger = logging.getLogger("wordcount.connection")
    retries = _Retries()
    logger.addFilter(retries)
    try:
        yield retries
    finally:
        logger.removeFilter(retries)


# -- one job ------------------------------------------------------------------------------------

def chunk_for(corpus: Path) -> int:
    """The task size: about 48 tasks, from 64 KiB to 1 MiB (tiny corpora still have enough
    tasks for a fault to land mid-job)."""
    total = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    return max(64 * KiB, min(MiB, total // 48 // KiB * KiB))


def job(corpus: Path, counts: Path, *, raft: bool = True, fault: Any = None,
        workers: int = WORKERS) -> dict[str, Any]:
    """One job on a fresh store: a three-node RaftCluster (``raft``), else one redis-server
    without persistence; ``fault(run_state)`` called on the nemesis thread every
    NEMESIS_EVERY_S (with RedisRaft, the leader watched there too). The table goes to
    ``counts``."""
    from ... import apps, client
    from ...embedded import LocalCluster, RedisServer
    from ..raft import RaftCluster, find_binaries

    store = RaftCluster(NODES, binaries=find_binaries()) if raft else RedisServer()
    with store, _quiet_retries():
        log = counts.with_name("workers.log")  # (this run's: the last run's is kept)
        log.unlink(missing_ok=True)
        with LocalCluster(workers, store, log_path=str(log)) as cluster:
            conn = cluster.connect(retry_seconds=120)
            planned = client.plan_job([str(corpus)], chunk_for(corpus), pack_size=0)
            planned.queue = "lease"  # (RedisRaft refuses streams)
            run = RunState(store, time.monotonic())
            if raft:
                run.watch_leader(force=True)  # the leader the job starts with (no event)

            def nemesis(elapsed: float) -> None:
                if fault is not None:
                    fault(run)
                run.watch_leader()

            def sample() -> None:
                try:
                    p = client.progress(conn, planned.name)
                except Exception:  # noqa: BLE001 - no quorum / Redis down: no sample this time
                    return
                run.timeline.append([round(run.now(), 3), p.done + p.dead, p.all_tasks])

            run.started = time.monotonic()
            try:
                waited = cluster.run(conn, planned, timeout_s=900, on_poll=sample,
                                     poll_s=POLL_S, nemesis=nemesis if raft else None,
                                     every_s=NEMESIS_EVERY_S)
                result, progress = client.result(conn, planned, run.now(), waited)
                seconds = run.now()
                if raft:  # an election in the job's last moments (seen now, marked now)
                    run.watch_leader(force=True)
            finally:
                run.close()
                if raft:
                    for node in store.nodes:  # never leave a node stopped (the workers' stop)
                        store.resume(node.index)
            run.timeline.append([round(seconds, 3), progress.done + progress.dead,
                                 progress.all_tasks])
            apps.get("wordcount").write(result.counts, str(counts))
            conn.close()
    return {"seconds": seconds, "exit": 0, "timeline": run.timeline, "events": run.events,
            "check": progress.check, "kills": run.kills, "resubmits": progress.resubmits,
            "tasks": progress.all_tasks, "stolen": progress.stolen,
            "duplicates": progress.duplicates}


def _requires(ctx: Context) -> str | None:
    from ..raft import RaftUnavailable, find_binaries

    try:
        find_binaries()
    except RaftUnavailable as e:
        return str(e)
    return None


def _corpus(ctx: Context, key: str, size: int, files: int, tiny: int = 2 * MiB) -> Path:
    from .. import corpus as corpora

    per = max(1, ctx.size(size, tiny) // files)
    return ctx.corpus(f"raft-{key}-{files}x{per}", lambda d: corpora.generate(
        d, files, per, seed=20))


def _large(ctx: Context) -> Path:
    """8 files of 8 MiB (× SCALE)."""
    return _corpus(ctx, "large", 64 * MiB, files=8)


SETUP = (f"RedisRaft: {NODES} redis-server 7.2.6 + RedisRaft processes on loopback "
         "(`RaftCluster`, a fresh cluster each run: the process-mode variant, no Docker); "
         "tasks of 1/48 of the corpus (64 KiB to 1 MiB); "
         f"{WORKERS} worker processes, the lease queue, atomic commits, the client polling "
         f"every {POLL_S:g} s; who leads is asked every {LEADER_EVERY_S:g} s (an election is "
         "marked when a leader of a newer term is first seen)")


def _stall(run: dict[str, Any]) -> float:
    """The longest time the client saw no task settled, in one run's timeline."""
    longest, since, last = 0.0, None, None
    for t, settled, _ in run["timeline"]:
        if since is None or settled != last:
            if since is not None:
                longest = max(longest, t - since)
            since, last = t, settled
    return longest


def _median_stall(doc: dict[str, Any], variant: str, x: Any) -> str:
    stalls = [_stall(r) for r in doc["runs"] if r["variant"] == variant and r["x"] == x
              and r["exact"] and r.get("timeline")]
    return f"{statistics.median(stalls):.1f} s" if stalls else "n/a"


def _check(doc: dict[str, Any]) -> str:
    """The counts check over every run: word occurrences lost and doubled."""
    runs = [r for r in doc["runs"] if "lost" in r]
    lost, doubled = sum(r["lost"] for r in runs), sum(r["doubled"] for r in runs)
    kills = sum(r.get("kills", 0) for r in runs)
    pauses = sum(1 for r in runs for _, what in r.get("events", []) if "paused" in what)
    return (f"over its {len(runs)} runs, {kills} kills and {pauses} pauses: lost = {lost}, "
            f"doubled = {doubled}")


def _count(doc: dict[str, Any], word: str) -> int:
    return sum(1 for r in doc["runs"] for _, what in r.get("events", []) if word in what)


# -- E20 ----------------------------------------------------------------------------------------

def _e20_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = []
    for x in ("large files", "small files"):
        one, rr = find(s, "single Redis", x), find(s, "RedisRaft ×3", x)
        parts.append(f"{x}: {ratio(rr, one)} ({secs(rr)} against {secs(one)})")
    rr, one = find(s, "RedisRaft ×3", "large files"), find(s, "single Redis", "large files")
    met = ("not measured" if not (rr and one) else
           "met" if rr["median"] <= 1.25 * one["median"] else "not met")
    return (f"RedisRaft ({NODES} nodes) against a single Redis, the same job: "
            + "; ".join(parts) + f". The goal (≤ 1.25× on large files) is {met}. Every table "
            "exact.")


E20 = Experiment(
    "E20", "RedisRaft vs Redis", "RedisRaft against a single Redis, small and large files",
    "files", lambda ctx: ["large files", "small files"],
    lambda ctx, x: (_large(ctx) if x == "large files" else
                    _corpus(ctx, "small", 8 * MiB, files=256, tiny=MiB)),
    [Variant("single Redis", call=lambda c, x, out: job(c, out, raft=False)),
     Variant("RedisRaft ×3", call=lambda c, x, out: job(c, out))],
    _e20_answer, requires=_requires,
    setup=lambda ctx: SETUP + "; the single Redis: one redis-server (the system's) without "
                              "persistence, "
                              "the same queue and workers; large files: 8 files; small "
                              "files: 256 files, a task each")


# -- E21 ----------------------------------------------------------------------------------------

DOWNTIME = 2.0  # E21: how long the killed nodes stay down


def _e21_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    base = find(s, "no faults")
    one, two = (find(s, "killed mid-job", x) for x in ("one node down", "two nodes down"))
    return (f"The leader SIGKILLed mid-job and started again: {ratio(one, base)} the time "
            f"without faults ({secs(base)}), the longest time without a task settled "
            f"{_median_stall(doc, 'killed mid-job', 'one node down')} (median); two nodes "
            f"down (no majority): {ratio(two, base)}, the job stalled for "
            f"{_median_stall(doc, 'killed mid-job', 'two nodes down')} and went on once they "
            f"were back ({_count(doc, 'elected')} leader elections in all). Every table exact "
            f"({_check(doc)}).")


E21 = Experiment(
    "E21", "Raft nodes down", "RedisRaft with one node down, and two (a stall, then recovery)",
    "nodes killed", lambda ctx: ["one node down", "two nodes down"],
    lambda ctx, x: _large(ctx),
    [Variant("no faults", call=lambda c, x, out: job(c, out),
             only=lambda x: x == "one node down"),
     Variant("killed mid-job", call=lambda c, x, out: job(
         c, out, fault=KillNodes(1 if x == "one node down" else 2, DOWNTIME)))],
    _e21_answer, requires=_requires,
    setup=lambda ctx: SETUP + f"; 8 files; once a third of the tasks "
                              f"are settled the leader (and for two, the next node) is "
                              f"SIGKILLed, started again {DOWNTIME:g} s later")


# -- E22 ----------------------------------------------------------------------------------------

def _e22_downtime(every: float) -> float:
    return min(1.0, every / 2)


def _e22_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    base = find(s, "no faults")
    rows = series(s, "a node killed every N s")
    parts = [f"every {r['x']:g} s: {ratio(r, base)}" for r in rows]
    return ("A random RedisRaft node SIGKILLed on a schedule and started again, against no "
            f"faults ({secs(base)}): " + ", ".join(parts) + f"; of its {_count(doc, 'killed')} "
            f"kills, {_count(doc, '(the leader)')} hit the leader, and "
            f"{_count(doc, 'elected')} leader elections followed. Every table exact "
            f"({_check(doc)}).")


E22 = Experiment(
    "E22", "Raft node killed every N s", "A random RedisRaft node killed every N seconds",
    "seconds between kills", lambda ctx: [0.5] if ctx.tiny else [3, 6],
    lambda ctx, x: _corpus(ctx, "e22", 64 * MiB, files=12, tiny=3 * MiB),
    [Variant("no faults", call=lambda c, x, out: job(c, out), only=lambda x: x in (0.5, 3)),
     Variant("a node killed every N s", call=lambda c, x, out: job(
         c, out, fault=KillEvery(x, _e22_downtime(x))))],
    _e22_answer, requires=_requires,
    setup=lambda ctx: SETUP + "; 12 files (a longer job: several kills); every N s a random "
                              "node (seeded) is SIGKILLed "
                              "and started again min(1 s, N/2) later")


# -- E23 ----------------------------------------------------------------------------------------

def _e23_answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    base = find(s, "no faults")
    rows = series(s, "leader paused N s")
    parts = [f"{r['x']:g} s: {ratio(r, base)} (longest without a task settled "
             f"{_median_stall(doc, r['variant'], r['x'])})" for r in rows]
    paused = [r for r in doc["runs"] if any("paused" in e[1] for e in r.get("events", []))]
    elected = sum(1 for r in paused if any("elected" in e[1] for e in r.get("events", [])))
    return ("The RedisRaft leader SIGSTOPped once a third of the tasks were settled, and "
            f"SIGCONTed N s later, against no faults ({secs(base)}): " + ", ".join(parts)
            + f"; a new leader was elected in {elected} of the {len(paused)} paused runs. "
            f"Every table exact ({_check(doc)}).")


E23 = Experiment(
    "E23", "Raft leader paused", "The RedisRaft leader paused (SIGSTOP) for N seconds",
    "seconds paused", lambda ctx: [1.5] if ctx.tiny else [2, 5],
    lambda ctx, x: _large(ctx),
    [Variant("no faults", call=lambda c, x, out: job(c, out), only=lambda x: x in (1.5, 2)),
     Variant("leader paused N s", call=lambda c, x, out: job(c, out, fault=PauseLeader(x)))],
    _e23_answer, requires=_requires,
    setup=lambda ctx: SETUP + "; 8 files; once a third of the tasks "
                              "are settled the leader is SIGSTOPped, SIGCONTed N s later")


RAFT_EXPERIMENTS = (E20, E21, E22, E23)
