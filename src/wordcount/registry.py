"""The worker registry (``wordcount workers``): who is working, on what, since when, and how
much each worker has done, as ``rq info`` / ``celery inspect`` show it.

Each worker keeps one field of ``keys.workers()`` (name -> JSON), written with a plain HSET by a
thread of the worker's own: when it starts, when it goes from idle to busy or back, and
otherwise every ``every_s`` (its heartbeat interval) with what it is doing then; a worker that
stops cleanly removes its field. The same thread watches Redis's run_id (``events.RedisWatch``:
a Redis started anew becomes an event of the shared feed). Nothing here decides who
owns a task (leases do): the registry is for people, so a write that fails is only logged, and
a worker that died shows as "lost" once its report is older than a few intervals (no TTL: under
RedisRaft expiry is local to each node). ``wordcount workers`` drops reports older than
``FORGET_S``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field

from . import keys
from .connection import Connection
from .events import RedisWatch
from .protocol import Claimed

log = logging.getLogger(__name__)

FORGET_S = 3600.0  # reports older than this are removed by `wordcount workers`


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Report:
    """What one worker says of itself (the JSON value of its registry field)."""

    name: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_ms: int = field(default_factory=_now_ms)
    beat_ms: int = 0  # when this report was written
    every_s: float = 5.0  # how often it writes one at least (while alive)
    state: str = "idle"  # idle | busy | stopping
    job: str = ""
    task: str = ""
    task_since_ms: int = 0
    taken: int = 0
    applied: int = 0
    duplicates: int = 0
    dead: int = 0
    lost_leases: int = 0

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.beat_ms) / 1000)

    def silent(self, now_ms: int) -> bool:
        """Two intervals without a report: probably dead (a SIGKILL, a frozen machine), not
        LOST yet; what it held is stolen after the claim timeout, whatever its report says."""
        return self.age_s(now_ms) > 2 * self.every_s + 1

    def lost(self, now_ms: int) -> bool:
        """No report for several intervals: the worker died (or cannot reach Redis)."""
        return self.age_s(now_ms) > 3 * self.every_s + 5


class Registration:
    """A worker's own entry, written by a thread of its own (``start``): once every ``every_s``,
    and at once when the state changes (idle, busy, stopping). ``update`` only records what
    changed, with no I/O: it is called on the worker's path from one task to the next, where a
    slow or unreachable Redis must never delay a lease. The thread has its own connection, so
    its failures touch nothing of the worker's. ``stop`` ends it and removes the entry."""

    def __init__(self, conn: Connection, name: str, every_s: float) -> None:
        self.conn = Connection(conn.settings, name=f"{conn.name}-registry")
        self.report = Report(name, every_s=every_s)
        self.redis_watch = RedisWatch(name)  # a new Redis run_id: a redis-start event
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="registry")
        self._thread.start()

    def update(self, **changes: object) -> None:
        with self._lock:
            moved = "state" in changes and changes["state"] != self.report.state
            for k, v in changes.items():
                setattr(self.report, k, v)
        if moved:
            self._wake.set()

    def busy(self, c: Claimed) -> None:
        self.update(state="busy", job=c.job, task=c.id, task_since_ms=_now_ms())

    def idle(self) -> None:
        self.update(state="idle", job="", task="", task_since_ms=0)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            self._write()
            self._wake.wait(self.report.every_s)

    def _write(self) -> None:
        with self._lock:
            self.report.beat_ms = _now_ms()
            doc = json.dumps(asdict(self.report))
        try:
            self.conn.call(lambda r: r.hset(keys.workers(), self.report.name, doc),
                           retry_seconds=0)
        except Exception as exc:  # noqa: BLE001 - for people only: never stop the work for it
            log.debug("worker registry not updated: %s", exc)
            return
        self.redis_watch.check(self.conn)

    def stop(self) -> None:
        """End the thread (after its write in flight, if any), then remove the entry."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            self.conn.call(lambda r: r.hdel(keys.workers(), self.report.name), retry_seconds=0)
        except Exception as exc:  # noqa: BLE001 - shown as lost, then forgotten
            log.debug("worker registry entry not removed: %s", exc)
        self.conn.close()


def reports(conn: Connection, now_ms: int | None = None, prune: bool = True) -> list[Report]:
    """Every worker's last report, by name; reports older than FORGET_S are deleted (``prune``;
    a reader that writes nothing, as the dashboard, passes False: they are only left out)."""
    now_ms = _now_ms() if now_ms is None else now_ms
    raw = conn.call(lambda r: r.hgetall(keys.workers()))
    out, stale = [], []
    for name, doc in sorted(raw.items()):
        try:
            values = json.loads(doc)
            rep = Report(**{k: v for k, v in values.items() if k in Report.__dataclass_fields__})
        except (ValueError, TypeError):
            stale.append(name)  # not ours (or of another version): not a report
            continue
        if rep.age_s(now_ms) > FORGET_S:
            stale.append(name)
        else:
            out.append(rep)
    if stale and prune:
        conn.call(lambda r: r.hdel(keys.workers(), *stale))
    return out


def prune_lost(conn: Connection, now_ms: int | None = None) -> list[str]:
    """Forget the workers that are LOST (no report for several intervals): their names. A
    worker that was only cut off reports again, and is listed again, at its next interval."""
    now_ms = _now_ms() if now_ms is None else now_ms
    lost = [r.name for r in reports(conn, now_ms) if r.lost(now_ms)]
    if lost:
        conn.call(lambda r: r.hdel(keys.workers(), *lost))
    return lost
