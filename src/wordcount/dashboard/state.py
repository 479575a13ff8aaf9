"""What the dashboard reads, and what it saw: one sample of Redis (jobs, workers, health) taken
through the read paths `wordcount jobs` and `wordcount workers` use, and the ``Observer`` that
compares each sample with the one before to keep an event feed (job state changes, dead
letters, Redis restarts -- a new ``run_id`` --, Redis unreachable and back, RedisRaft role and
leader changes, workers appearing, LOST, stopping) and each job's progress over time.

Everything here is synchronous (redis-py through the project's ``Connection``) and writes no key;
the web app (``app.py``) runs it in a thread. What the Observer keeps (the feed, the series of
settled tasks) lives in this process only; a job's timeline of attempts comes from the history
the Functions keep in Redis (``keys.history``), so it is the same after a dashboard restart.
Nothing that reaches the browser holds a credential: the Redis address is shown as its
host:port list only.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import client, events, jobs, keys, registry
from ..connection import Connection
from ..protocol import task_seq
from ..settings import RedisUrl, Settings

MAX_EVENTS = 500  # the feed keeps this many (oldest dropped)
MAX_POINTS = 2400  # a job's series: beyond this, every other point is dropped (coarser)
RECORDED = 200  # the newest events of the shared feed in Redis read at each sample
RATE_WINDOW_MS = 5_000  # "rate": tasks and bytes settled per second over this window
LISTED = 50  # dead letters / held tasks / top words shown on a job's page
TIMELINE_ENTRIES = 5000  # the newest entries of a job's history drawn on its timeline
STARTS = ("take", "steal", "backup")  # history entries that start an attempt
ENDS = ("done", "dup", "dead")  # ... and those that end one


def now_ms() -> int:
    return int(time.time() * 1000)


def redis_address(settings: Settings) -> str:
    """The Redis nodes as host:port (no user, no password)."""
    url = RedisUrl.parse(settings.redis_url)
    if url.scheme == "unix":
        return "unix socket"
    return ",".join(f"{h}:{p}" for h, p in url.nodes)


def read_health(conn: Connection) -> dict[str, Any]:
    """INFO of the node we reach: run_id, role, version, uptime, last RDB save, and on RedisRaft
    the raft section's state/role/term/leader. Raises when Redis is unreachable."""
    info = conn.call(lambda r: r.info())
    try:
        raft = conn.call(lambda r: r.info("raft"))
    except Exception:  # noqa: BLE001 - a Redis without the section (or refusing it): none
        raft = {}
    last_save = info.get("rdb_last_save_time")
    out: dict[str, Any] = {
        "reachable": True, "error": "",
        "run_id": info.get("run_id", ""), "role": info.get("role", ""),
        "version": info.get("redis_version", ""),
        "uptime_s": info.get("uptime_in_seconds"),
        "last_save_ms": int(last_save) * 1000 if last_save else None,
        "changes_since_save": info.get("rdb_changes_since_last_save"),
        "bgsave_status": info.get("rdb_last_bgsave_status", ""),
        "loading": bool(info.get("loading", 0)),
        "raft": None,
    }
    if raft and any(k.startswith("raft_") for k in raft):
        out["raft"] = {k: raft.get(f"raft_{k}") for k in
                       ("node_id", "state", "role", "current_term", "leader_id")}
    out["nodes"] = read_nodes(conn)
    return out


NODE_TIMEOUT_S = 0.5  # a node that does not answer INFO within this is shown down


def read_nodes(conn: Connection) -> list[dict[str, Any]]:
    """Each node the URL lists, when it lists several (RedisRaft): up or down (why), and its
    role, Raft state, term, leader, commit index and last snapshot (the Raft log index it
    covers, and how many this node made) as that node sees them, its run_id and uptime. Each node
    is asked directly, once: a node down or paused is shown so, whoever leads."""
    out = []
    for host, port in conn.nodes if conn.clustered else []:
        node = f"{host}:{port}"
        try:
            info = conn.node_info((host, port), "server", "raft", timeout_s=NODE_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - a node down is what this shows
            out.append({"node": node, "up": False, "error": f"{type(e).__name__}: {e}"})
            continue
        out.append({"node": node, "up": True, "error": "", "run_id": info.get("run_id", ""),
                    "uptime_s": info.get("uptime_in_seconds"),
                    **{k: info.get(f"raft_{k}") for k in
                       ("node_id", "state", "role", "current_term", "leader_id",
                        "commit_index", "snapshot_last_idx", "snapshots_created")}})
    return out


CHECK_TIMEOUT_S = 10.0  # a finished job's self-check: how long its read may wait for it


def read_check(conn: Connection, name: str) -> dict[str, Any]:
    """The client's end-to-end self-check (``client.check``) of a finished job, as the
    dashboard runs it: its plan read back, the whole table read while the job stays finished,
    the protocol's invariants checked (words in the table = words committed = the meta's;
    bytes; every task settled once). ``ok`` False names what broke, or why it could not run."""
    try:
        job = jobs.load(conn, name)
        snap = client.read_finished(conn, job, timeout_s=CHECK_TIMEOUT_S)
        figures = client.check(job, snap)
    except Exception as e:  # noqa: BLE001 - shown as the check's outcome
        return {"ok": False, "text": f"{type(e).__name__}: {e}"}
    return {"ok": True, "figures": figures,
            "text": f"passed: {figures.get('words_in_table', '?')} "
                    "words in the table = words committed = the job's count"}


def read_jobs(conn: Connection) -> list[dict[str, Any]]:
    """Every job as `wordcount jobs --json` lists it (no expiry: the dashboard only reads)."""
    return [r.as_dict() for r in jobs.rows(conn)]


def read_workers(conn: Connection, now: int) -> list[dict[str, Any]]:
    """Every worker as `wordcount workers --json` lists it (without pruning the registry:
    the dashboard writes nothing, and its Redis user may not)."""
    return [{**dataclasses.asdict(r), "age_s": round(r.age_s(now), 3), "lost": r.lost(now),
             "silent": r.silent(now)} for r in registry.reports(conn, now, prune=False)]


def _spec_paths(conn: Connection, name: str, ids: Iterable[str]) -> dict[str, str]:
    """task id -> the path it reads (a packed task: its first part and how many more)."""
    ids = list(ids)
    if not ids:
        return {}
    specs = conn.call(lambda r: r.hmget(keys.specs(name), ids))
    out = {}
    for tid, spec in zip(ids, specs, strict=True):
        if not spec:
            out[tid] = "(reduce task)" if spec is None else ""
            continue
        path, start, end, _ident, parts = json.loads(spec)
        more = len(parts) - 1 if parts else 0
        out[tid] = f"{path} [{start}:{end}]" + (f" and {more} more files" if more > 0 else "")
    return out


def _history(entries: Iterable[str]) -> Iterator[tuple[int, str, str, str, int | None]]:
    """A job's history entries (``keys.history``) as (ms, what, task, worker, counted ms or
    None), oldest first; a line the Functions never wrote is passed over."""
    for entry in entries:
        parts = entry.split(" ")
        if len(parts) not in (4, 5) or not parts[0].isdigit():
            continue
        counted = int(parts[4]) if len(parts) == 5 and parts[4].isdigit() else None
        yield int(parts[0]), parts[1], parts[2], parts[3], counted


def timeline(entries: Iterable[str], maps: int | None = None) -> dict[str, Any]:
    """A job's history (``keys.history``: "<ms> <what> <task> <worker>[ <counted ms>]", oldest
    first) as attempts: each take, steal or backup opens one for its (task, worker), ended by
    that worker's done, dup or dead of the task; a commit's done or dup also says when its
    counting ended (``counted``: the attempt is claimed -> counted -> committed). An attempt
    whose task was stolen from it, or settled by another attempt after it began, and that never
    settled itself ends "lost" at that moment (a later dup of its own ends it instead); one
    still open is "running" (end None); a settle whose start is not in the history (older than its
    cap, or taken in an incarnation a rollback undid) is an attempt of no length. ``phases``:
    the map phase's end ("reduce") and the job's ("finished"). ``maps``: the job's map tasks
    (its meta ``total``): a task past them is a shuffle job's reduce task (``reduce`` True)."""
    attempts: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    settles: dict[str, list[int]] = {}  # task -> the times it was settled (done or dead)
    for ms, what, task, worker, counted in _history(entries):
        if what in STARTS:
            if what == "steal":
                for (t, w), a in open_.items():
                    if t == task and w != worker:
                        a.setdefault("lost_ms", ms)
            prev = open_.pop((task, worker), None)
            if prev is not None:  # (the same worker took it again: its first attempt lapsed)
                attempts.append({**prev, "end": ms, "outcome": "lost"})
            open_[(task, worker)] = {"task": task, "worker": worker, "how": what, "start": ms,
                                     "end": None, "outcome": "running"}
        elif what in ENDS:
            if what != "dup":
                settles.setdefault(task, []).append(ms)
            a = open_.pop((task, worker), None) or {"task": task, "worker": worker, "how": "",
                                                    "start": ms}
            a.pop("lost_ms", None)
            attempts.append({**a, "end": ms, "outcome": what,
                             **({"counted": min(max(counted, a["start"]), ms)}
                                if counted is not None else {})})
        elif what in ("reduce", "finished"):
            phases.append({"t": ms, "kind": what})
    for a in open_.values():
        # still open: robbed by a steal, or superseded by another attempt that settled the
        # task (a backup; a redelivery after a rollback took this one's commit away) and never
        # to end by itself (its worker died, or its commit was rolled back): lost, at that
        # moment. One whose task is not settled since it began is running.
        lost = a.pop("lost_ms", None)
        superseded = next((t for t in settles.get(a["task"], ()) if t >= a["start"]), None)
        if lost is None or (superseded is not None and superseded < lost):
            lost = superseded
        attempts.append({**a, "end": lost, "outcome": "lost"} if lost is not None else a)
    for a in attempts:
        a["reduce"] = maps is not None and task_seq(a["task"]) > maps
    attempts.sort(key=lambda a: (a["start"], a["worker"]))
    return {"attempts": attempts, "phases": phases,
            "workers": sorted({a["worker"] for a in attempts})}


def settled_series(entries: Iterable[str], done: int, dead: int) -> list[list[int]]:
    """The job's settled tasks over time, from its history: a point [ms, done, dead] at each
    done or dead entry (a requeued dead letter that is done later moves from one to the
    other). The history keeps only its newest entries: the counts before them are what the
    job's meta (``done``, ``dead``, read with it) says beyond what the entries account for."""
    points: list[list[int]] = []
    dead_now: set[str] = set()
    done_n = dead_n = 0
    for ms, what, task, _, _ in _history(entries):
        if what == "done":
            done_n += 1
            if task in dead_now:
                dead_now.discard(task)
                dead_n -= 1
        elif what == "dead":
            dead_now.add(task)
            dead_n += 1
        else:
            continue
        points.append([ms, done_n, dead_n])
    before_done, before_dead = max(done - done_n, 0), max(dead - dead_n, 0)
    return [[t, d + before_done, x + before_dead] for t, d, x in points]


def read_detail(conn: Connection, name: str, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """One job's dead letters (task, path, reason), its held tasks (the leases zset: the
    running attempts and since when, with the worker whose report says it holds the task), the
    top of its table so far, and its timeline and settled tasks over time (from the history
    the Functions keep: the same after a dashboard restart)."""
    def run(r):
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(keys.dead(name))
        pipe.zrange(keys.leases(name), 0, -1, withscores=True)
        pipe.zrevrange(keys.counts(name), 0, LISTED - 1, withscores=True)
        pipe.lrange(keys.history(name), -TIMELINE_ENTRIES, -1)
        pipe.hmget(keys.meta(name), "total", "done", "dead")
        return pipe.execute()
    dead, leases, top, history, (maps, n_done, n_dead) = conn.call(run)
    holders = {w["task"]: w["name"] for w in workers if w.get("job") == name and w.get("task")}
    # (a task being committed has left the leases zset: not listed while it commits; a
    # worker's report is only a hint -- it may be seconds old -- so it names holders, no more)
    held = {tid: int(ms) for tid, ms in leases}
    dead_ids = sorted(dead, key=task_seq)[:LISTED]
    held_ids = sorted(held, key=task_seq)[:LISTED]
    paths = _spec_paths(conn, name, dict.fromkeys(dead_ids + held_ids))
    return {
        "dead_letters": [{"task": t, "path": paths.get(t, ""), "reason": dead[t]}
                         for t in dead_ids],
        "dead_total": len(dead),
        "held": [{"task": t, "path": paths.get(t, ""), "since_ms": held[t],
                  "worker": holders.get(t, "")} for t in held_ids],
        "held_total": len(held),
        "top": [[w, int(n)] for w, n in top],
        "timeline": timeline(history, int(maps) if maps else None),
        "settled": settled_series(history, int(n_done or 0), int(n_dead or 0)),
    }


class Observer:
    """Samples Redis and remembers what changed between samples (``sample``), and each job's
    settled tasks over time. ``clock`` gives ms (tests pass their own)."""

    def __init__(self, conn: Connection, clock: Callable[[], int] = now_ms) -> None:
        self.conn = conn
        self.clock = clock
        self.address = redis_address(conn.settings)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS)
        self.markers: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS)
        self.series: dict[str, list[list[int]]] = {}
        self.redis: dict[str, Any] = {"reachable": False, "error": "not sampled yet"}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.details: dict[str, dict[str, Any]] = {}
        self.sampled_ms = 0
        self._seq = 0
        self._first = True
        self._run_id = ""
        self._raft: dict[str, Any] | None = None
        self._recorded: set[tuple] = set()  # the shared feed's events read last time
        self.checks: dict[tuple, dict[str, Any]] = {}  # (job, epoch, finished) -> self-check

    # -- the feed ---------------------------------------------------------------------------

    def _event(self, kind: str, text: str, job: str = "", marker: bool = False,
               t: int | None = None) -> None:
        self._seq += 1
        ev = {"id": self._seq, "t": self.clock() if t is None else t, "kind": kind,
              "text": text, "job": job}
        self.events.append(ev)
        if marker:
            self.markers.append(ev)

    def operator(self, text: str, job: str) -> None:
        """An operator's action through this dashboard, done or refused (a marker too)."""
        self._event("operator", text, job, marker=True)

    # -- one sample -------------------------------------------------------------------------

    def sample(self, watched: Iterable[str] = ()) -> None:
        """Read Redis once; record what changed. Redis unreachable is a state, not an error."""
        t = self.clock()
        try:
            health = read_health(self.conn)
            jobs_now = read_jobs(self.conn)
            workers_now = read_workers(self.conn, t)
            recorded = events.read(self.conn, RECORDED)
            details = {name: read_detail(self.conn, name, workers_now)
                       for name in watched if any(j["job"] == name for j in jobs_now)}
            for row in jobs_now:  # a watched job that finished: its self-check, once
                key = (row["job"], row["epoch"], row["finished_ms"])
                if row["job"] in details and row["state"] == "done" and key not in self.checks:
                    self.checks[key] = read_check(self.conn, row["job"])
        except Exception as e:  # noqa: BLE001 - shown on the page; the next sample tries again
            self._unreachable(f"{type(e).__name__}: {e}")
            return
        self._health(health)
        self._jobs(jobs_now, t)
        self._workers(workers_now, t)
        self._shared(recorded)
        self.details = details
        self.sampled_ms = t
        if self._first:
            self._event("dashboard", f"dashboard started: {len(jobs_now)} job(s), "
                        f"{len(workers_now)} worker(s) in Redis at {self.address}")
            self._first = False

    def _shared(self, recorded: list[events.Event]) -> None:
        """The shared feed's events (recorded in Redis by workers and clients) not read before:
        into this feed, as markers at their own time; a dashboard started later reads them
        too."""
        now = {(e.t, e.kind, e.job, e.source, e.text) for e in recorded}
        for e in recorded:
            if (e.t, e.kind, e.job, e.source, e.text) not in self._recorded:
                self._event(e.kind, f"{e.source}: {e.text}", e.job, marker=True, t=e.t)
        self._recorded = now

    def _unreachable(self, why: str) -> None:
        if self.redis.get("reachable") or self._first:
            self._event("redis-down", f"Redis unreachable at {self.address}: {why}",
                        marker=True)
            self._first = False
        self.redis = {**self.redis, "reachable": False, "error": why}
        self.sampled_ms = self.clock()

    def _health(self, health: dict[str, Any]) -> None:
        was_down = not self.redis.get("reachable") and not self._first
        if was_down:
            self._event("redis-up", f"Redis reachable again at {self.address}", marker=True)
        run_id = health["run_id"]
        if self._run_id and run_id and run_id != self._run_id:
            self._event("redis-restart", f"Redis restarted: run_id {self._run_id[:8]} -> "
                        f"{run_id[:8]} (uptime {health.get('uptime_s')} s; what it lost is "
                        "what its last snapshot did not hold)", marker=True)
        self._run_id = run_id or self._run_id
        raft = health.get("raft")
        if raft and self._raft and (raft.get("role"), raft.get("leader_id"),
                                    raft.get("current_term")) != (
                self._raft.get("role"), self._raft.get("leader_id"),
                self._raft.get("current_term")):
            self._event("raft", f"RedisRaft: node {raft.get('node_id')} is {raft.get('role')}, "
                        f"term {raft.get('current_term')}, leader {raft.get('leader_id')} "
                        f"(was {self._raft.get('role')}, term "
                        f"{self._raft.get('current_term')}, leader "
                        f"{self._raft.get('leader_id')})", marker=True)
        self._raft = raft
        before = {n["node"]: n for n in self.redis.get("nodes") or []}
        for n in health.get("nodes") or []:
            old = before.get(n["node"])
            if old is None:
                continue
            if old["up"] and not n["up"]:
                self._event("node-down", f"RedisRaft node {n['node']} down: {n['error']}",
                            marker=True)
            elif n["up"] and not old["up"]:
                self._event("node-up", f"RedisRaft node {n['node']} up again (run_id "
                            f"{n['run_id'][:8]}, {n['role']}, term {n['current_term']})",
                            marker=True)
        self.redis = health

    def _jobs(self, rows: list[dict[str, Any]], t: int) -> None:
        seen = {}
        for row in rows:
            name = row["job"]
            old = self.jobs.get(name)
            if old is None and not self._first:
                self._event("job", f"job {name} appeared: {row['total']} task(s), app "
                            f"{row['app']}, {row['queue']} queue, {row['state']}", name)
            elif old is not None:
                if old["state"] != row["state"]:
                    self._event("job", f"job {name}: {old['state']} -> {row['state']} "
                                f"({row['done']}/{row['total']} done, {row['dead']} dead)", name)
                if row["dead"] > old["dead"]:
                    self._event("dead", f"job {name}: {row['dead'] - old['dead']} more task(s) "
                                f"dead-lettered ({row['dead']} in all)", name)
                if row["phase"] and old.get("phase") and row["phase"] != old["phase"]:
                    self._event("job", f"job {name}: {old['phase']} phase -> {row['phase']}",
                                name)
            self._point(name, row, t)
            seen[name] = {**row, **self._rates(name, row)}
        for name in set(self.jobs) - set(seen):
            self._event("job", f"job {name} is gone from Redis (deleted, expired, or lost "
                        "with a Redis restart)", name)
        self.jobs = seen

    def _point(self, name: str, row: dict[str, Any], t: int) -> None:
        points = self.series.setdefault(name, [])
        point = [t, row["done"], row["dead"], row["pending"], row["done_bytes"]]
        if points and points[-1][1:] == point[1:] and len(points) > 1 \
                and points[-2][1:] == point[1:]:
            points[-1] = point  # a flat stretch: move its end, add no point
        else:
            points.append(point)
        if len(points) > MAX_POINTS:
            self.series[name] = points[::2] + ([points[-1]] if len(points) % 2 == 0 else [])

    def _rates(self, name: str, row: dict[str, Any]) -> dict[str, float]:
        """Tasks and bytes settled per second over the last RATE_WINDOW_MS of samples, and the
        job's average bytes per second."""
        points = self.series.get(name, [])
        last = points[-1] if points else None
        first = next((p for p in points if last and p[0] >= last[0] - RATE_WINDOW_MS), last)
        span = (last[0] - first[0]) / 1000 if last and first else 0
        secs = row.get("seconds") or 0
        return {
            "tasks_per_s": round((last[1] + last[2] - first[1] - first[2]) / span, 2)
            if span > 0 else 0.0,
            "bytes_per_s": round((last[4] - first[4]) / span) if span > 0 else 0,
            "avg_bytes_per_s": round(row["done_bytes"] / secs) if secs else 0,
        }

    def _workers(self, rows: list[dict[str, Any]], t: int) -> None:
        now = {w["name"]: w for w in rows}
        if not self._first:
            for name, w in now.items():
                old = self.workers.get(name)
                if old is None:
                    self._event("worker", f"worker {name} appeared (host {w['host']}, pid "
                                f"{w['pid']})" + (", LOST" if w["lost"] else ""))
                elif w["lost"] and not old["lost"]:
                    self._event("worker-lost", f"worker {name} LOST: no report for "
                                f"{w['age_s']:.0f} s" + (f" (it held {w['job']} {w['task']})"
                                                         if w["task"] else ""), marker=True)
                elif old["lost"] and not w["lost"]:
                    self._event("worker", f"worker {name} reports again")
            for name in set(self.workers) - set(now):
                self._event("worker", f"worker {name} left the registry (stopped, or pruned)")
        self.workers = now

    def refresh_detail(self, name: str) -> None:
        """Read one job's detail now (a page just opened it), if Redis answers."""
        try:
            self.details[name] = read_detail(self.conn, name, list(self.workers.values()))
        except Exception:  # noqa: BLE001 - the next sample tries again
            pass

    # -- what the web app serves ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the overview shows, JSON-ready."""
        return {
            "sampled_ms": self.sampled_ms,
            "redis": {**self.redis, "address": self.address},
            "jobs": list(self.jobs.values()),
            "workers": list(self.workers.values()),
            "events": list(self.events),
            "markers": list(self.markers),
        }

    def job(self, name: str, detail: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One job's page: its row, its series as this dashboard sampled it, the markers, and
        ``detail`` (dead letters, held tasks, top words), or None if no such job is known."""
        row = self.jobs.get(name)
        if row is None and name not in self.series:
            return None
        detail = dict(detail if detail is not None else self.details.get(name, {}))
        check = self.checks.get((name, row["epoch"], row["finished_ms"])) if row else None
        # the settled tasks over time: from the job's history up to this dashboard's first
        # sample of it (before it started, or while it was down), then its own samples
        own = self.series.get(name, [])
        first = own[0][0] if own else float("inf")
        early = [p for p in detail.pop("settled", []) if p[0] < first]
        return {"job": row, "check": check, "series": early + own,
                "markers": list(self.markers),
                "events": [e for e in self.events if e["job"] == name], **detail}
