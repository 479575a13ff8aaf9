"""The shared event feed (``keys.events()``): what the processes around Redis saw, kept in
Redis, so a dashboard opened or restarted later shows it (its feed, and markers on a job's
timeline). Written through one Function (``wc_event``), each write best effort: an event that
cannot be recorded is logged, never a reason to stop counting.

- ``redis-start``: a worker found Redis started anew (a run_id it had not seen: a restart,
  from a snapshot or from nothing), at the time Redis started (now - its uptime); once per
  Redis start, whichever worker notices it first (the Function keeps the last run id).
- ``resubmit``: a client resubmitted its job because Redis had lost all or part of it.

Like everything in Redis, the feed rolls back with a restart from an older snapshot; an event
recorded after the restart (both kinds are) describes it. On RedisRaft nothing rolls back, and
each node has its own run_id: workers record no ``redis-start`` there (the dashboard shows each
node's state and elections).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from . import functions, keys
from .connection import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    t: int  # ms
    kind: str
    job: str  # '' none
    source: str
    text: str

    @classmethod
    def parse(cls, line: str) -> Event | None:
        parts = line.split(" ", 4)
        if len(parts) != 5 or not parts[0].isdigit():
            return None
        t, kind, job, source, text = parts
        return cls(int(t), kind, "" if job == "-" else job, source, text)


def record(conn: Connection, kind: str, source: str, text: str, job: str = "",
           run_id: str = "", at_ms: int | None = None) -> bool:
    """Record one event; False when not recorded (already, or Redis would not take it)."""
    try:
        return functions.event(conn, kind, source, text, job, run_id, at_ms)
    except Exception as exc:  # noqa: BLE001 - for people only: never stop the work for it
        log.debug("event %s not recorded: %s", kind, exc)
        return False


class RedisWatch:
    """A worker's eye on Redis's run_id (``check``, from its registry thread): a run_id it has
    not seen is recorded as a ``redis-start`` event (the Function makes it once per start)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.run_id = ""

    def check(self, conn: Connection) -> None:
        if conn.clustered:
            return
        try:
            info = conn.call(lambda r: r.info("server"), retry_seconds=0)
        except Exception as exc:  # noqa: BLE001 - unreachable now: the next check sees it
            log.debug("Redis run_id not read: %s", exc)
            return
        run_id = str(info.get("run_id", ""))
        if not run_id or run_id == self.run_id:
            return
        uptime_s = int(info.get("uptime_in_seconds", 0))
        started = int(time.time() * 1000) - uptime_s * 1000
        text = (f"Redis started (run_id {run_id[:8]}, up {uptime_s} s when {self.source} "
                "saw it)")
        try:
            functions.event(conn, "redis-start", self.source, text, run_id=run_id,
                            at_ms=started)
        except Exception as exc:  # noqa: BLE001 - tried again at the next check
            log.debug("redis-start not recorded: %s", exc)
            return
        self.run_id = run_id


def read(conn: Connection, limit: int = 500) -> list[Event]:
    """The newest ``limit`` events, oldest first."""
    lines = conn.call(lambda r: r.lrange(keys.events(), -limit, -1))
    return [e for e in (Event.parse(line) for line in lines) if e is not None]
