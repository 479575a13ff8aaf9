"""The commit protocol, on the client side: one typed wrapper per Redis Function in
``redis/wordcount.lua``. Only this module knows argument orders and return codes.

A task's life: ``submit`` → (XREADGROUP | ``claim_stale`` | ``speculate``) → ``heartbeat`` while
counting → ``commit`` (or ``stage`` × N + ``commit_staged`` + ``merge`` × N for a huge
vocabulary) or ``dead``. Every call passes the protocol version and the caller's clock (``now``):
the Functions themselves never read the time.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError

from . import keys
from .connection import PROTOCOL, Connection
from .exceptions import JobConflictError
from .planner import Task


class Applied(enum.IntEnum):
    APPLIED = 1  # this call settled the task and its counts were added (or accepted to merge)
    DUPLICATE = 0  # already settled by someone else: nothing changed
    STALE = -1  # the job was re-planned (another epoch): nothing changed
    GONE = -2  # the job does not exist (deleted, or Redis lost it): nothing changed
    RESTAGE = -3  # a staged piece is missing (Redis rolled back): stage again, then commit


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Claimed:
    """A task a worker holds: which job incarnation (epoch) it belongs to, where it came from
    and how many times it was delivered."""

    job: str
    id: str
    task: Task
    epoch: str
    deliveries: int
    how: str  # "new" | "stale" | "backup"

    @classmethod
    def from_entry(cls, job: str, entry_id: str, fields: dict[str, str] | Sequence[str],
                   deliveries: int, how: str) -> Claimed:
        if not isinstance(fields, dict):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        task = Task(fields["path"], int(fields["start"]), int(fields["end"]))
        return cls(job, entry_id, task, fields.get("epoch", ""), int(deliveries), how)


@dataclass(frozen=True)
class Submitted:
    added: int  # tasks added by this call
    submitted: int  # tasks in Redis so far
    epoch: str  # the job incarnation in Redis
    state: str  # "running" | "done"


def submit(conn: Connection, job: str, plan_id: str, epoch: str, total: int, total_bytes: int,
           root: str, first_seq: int, tasks: Iterable[Task]) -> Submitted:
    """Append tasks first_seq.. of a job (creating it, with ``epoch``, on first call)."""
    args: list[object] = [PROTOCOL, now_ms(), job, plan_id, epoch, total, total_bytes, root,
                          keys.GROUP, first_seq]
    for t in tasks:
        args += [t.path, t.start, t.end]
    try:
        added, submitted, current, state = conn.fcall(
            "wc_submit", [keys.tasks(job), keys.meta(job), keys.jobs()], args)
    except ResponseError as exc:
        if "WCCONFLICT" in str(exc):
            raise JobConflictError(f"job {job!r} already exists with different inputs; "
                                   "choose another --job name or --fresh") from None
        raise
    return Submitted(int(added), int(submitted), current, state)


def _commit_keys(job: str) -> list[str]:
    return [keys.tasks(job), keys.meta(job), keys.jobs(), keys.merges(job), keys.done(job),
            keys.dead(job), keys.leases(job)]


def commit(conn: Connection, c: Claimed, pairs: Sequence[object], nbytes: int, nwords: int,
           busy_ms: int) -> Applied:
    """Settle the task + apply its counts + progress, in one call. ``pairs`` is a flat
    [word, count, ...] list; the call is refused unless the job still has ``c.epoch``."""
    return Applied(conn.fcall(
        "wc_commit", [*_commit_keys(c.job), keys.counts(c.job)],
        [PROTOCOL, now_ms(), keys.GROUP, c.id, c.epoch, c.job, nbytes, nwords, busy_ms,
         *pairs]))


def stage_keys(c: Claimed, attempt: str, pieces: int) -> list[str]:
    return [keys.stage(c.job, c.id, attempt, k) for k in range(pieces)]


def stage(conn: Connection, c: Claimed, key: str, pairs: Sequence[object]) -> Applied:
    """Write one piece (replacing it whole: a retry is harmless). Nothing is visible to the
    job until ``commit_staged`` accepts every piece."""
    return Applied(conn.fcall("wc_stage", [keys.meta(c.job), key],
                              [PROTOCOL, c.epoch, *pairs]))


def commit_staged(conn: Connection, c: Claimed, pieces: Sequence[str], distinct: int,
                  nbytes: int, nwords: int, busy_ms: int) -> Applied:
    """Settle the task and accept its staged pieces, only if all of them (``distinct`` pairs in
    all) are there; RESTAGE otherwise."""
    return Applied(conn.fcall(
        "wc_commit_staged", [*_commit_keys(c.job), *pieces],
        [PROTOCOL, now_ms(), keys.GROUP, c.id, c.epoch, c.job, nbytes, nwords, busy_ms,
         distinct]))


def merge(conn: Connection, job: str, epoch: str, piece: str) -> Applied:
    """Apply one accepted piece (APPLIED), or nothing if it already was (DUPLICATE)."""
    return Applied(conn.fcall(
        "wc_merge", [piece, keys.counts(job), keys.meta(job), keys.jobs(), keys.merges(job)],
        [PROTOCOL, now_ms(), epoch, job]))


def dead(conn: Connection, c: Claimed, reason: str) -> Applied:
    return Applied(conn.fcall("wc_dead", _commit_keys(c.job),
                              [PROTOCOL, now_ms(), keys.GROUP, c.id, c.epoch, c.job, reason]))


def _claimed(job: str, reply: object, how: str) -> Claimed | None:
    if not reply:
        return None
    entry_id, fields, deliveries = reply  # type: ignore[misc]
    return Claimed.from_entry(job, entry_id, fields, deliveries, how)


def claim_stale(conn: Connection, job: str, consumer: str, min_idle_ms: int) -> Claimed | None:
    reply = conn.fcall("wc_claim_stale", [keys.tasks(job), keys.meta(job), keys.leases(job)],
                       [PROTOCOL, now_ms(), keys.GROUP, consumer, min_idle_ms])
    return _claimed(job, reply, "stale")


def speculate(conn: Connection, job: str, consumer: str, min_ms: int, factor: float
              ) -> Claimed | None:
    reply = conn.fcall("wc_speculate", [keys.tasks(job), keys.meta(job), keys.leases(job)],
                       [PROTOCOL, now_ms(), keys.GROUP, consumer, min_ms, factor])
    return _claimed(job, reply, "backup")


def heartbeat(conn: Connection, c: Claimed, consumer: str, start: bool = False) -> bool:
    """Reset the task's idle time if we still own it; False when it was taken from us."""
    return bool(conn.fcall("wc_heartbeat", [keys.tasks(c.job), keys.leases(c.job)],
                           [PROTOCOL, now_ms(), keys.GROUP, consumer, c.id,
                            "start" if start else "beat"]))
