"""The commit protocol, on the client side: one typed wrapper per Redis Function in
``redis/wordcount.lua``. Only this module knows argument orders and return codes.

A task's life: ``submit`` → (XREADGROUP | ``claim_stale`` | ``speculate``) → ``heartbeat`` while
counting → ``commit`` (or ``commit_staged`` + ``merge`` for a huge vocabulary) or ``dead``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError

from . import keys
from .connection import Connection
from .exceptions import JobConflictError
from .planner import Task


class Applied(enum.IntEnum):
    APPLIED = 1  # this call acknowledged the task and its counts were added
    DUPLICATE = 0  # already acknowledged by someone else: nothing changed
    STALE = -1  # the job is gone or was re-planned: nothing changed


@dataclass(frozen=True)
class Claimed:
    """A task a worker holds: where it came from and how many times it was delivered."""

    job: str
    id: str
    task: Task
    deliveries: int
    how: str  # "new" | "stale" | "backup"

    @classmethod
    def from_entry(cls, job: str, entry_id: str, fields: dict[str, str] | Sequence[str],
                   deliveries: int, how: str) -> Claimed:
        if not isinstance(fields, dict):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        task = Task(fields["path"], int(fields["start"]), int(fields["end"]))
        return cls(job, entry_id, task, int(deliveries), how)


def task_id(seq: int) -> str:
    """Deterministic stream id of the seq-th task (1-based): replays can't duplicate it."""
    return f"0-{seq}"


def submit(conn: Connection, job: str, plan_id: str, total: int, total_bytes: int, root: str,
           first_seq: int, tasks: Iterable[Task]) -> tuple[int, int]:
    """Append tasks first_seq.. of a job (creating it on first call). Returns (added, submitted)."""
    args: list[object] = [job, plan_id, total, total_bytes, root, keys.GROUP, first_seq]
    for t in tasks:
        args += [t.path, t.start, t.end]
    try:
        added, submitted = conn.fcall("wc_submit", [keys.tasks(job), keys.meta(job), keys.jobs()],
                                      args)
    except ResponseError as exc:
        if "WCCONFLICT" in str(exc):
            raise JobConflictError(f"job {job!r} already exists with different inputs; "
                                   "choose another --job name or --fresh") from None
        raise
    return int(added), int(submitted)


def commit(conn: Connection, c: Claimed, plan_id: str, pairs: Sequence[object], nbytes: int,
           nwords: int, busy_ms: int) -> Applied:
    """XACK + counts + progress in one call. ``pairs`` is a flat [word, count, ...] list."""
    job = c.job
    return Applied(conn.fcall(
        "wc_commit",
        [keys.tasks(job), keys.counts(job), keys.meta(job), keys.jobs(), keys.merges(job)],
        [keys.GROUP, c.id, plan_id, job, nbytes, nwords, busy_ms, *pairs]))


def stage(conn: Connection, c: Claimed, attempt: str, pairs: Sequence[object],
          piece_pairs: int) -> str:
    """HSET a big task's pairs into this attempt's private stage hash, piece by piece (each a
    bounded command; HSET is idempotent, so a retried piece is harmless). Nothing is visible to
    the job until ``commit_staged``."""
    key = keys.stage(c.job, c.id, attempt)
    step = 2 * piece_pairs
    for i in range(0, len(pairs), step):
        piece = pairs[i:i + step]
        conn.call(lambda r, piece=piece: r.execute_command("HSET", key, *piece))
    conn.call(lambda r: r.expire(key, 24 * 3600))  # an abandoned attempt's stage vanishes
    return key


def commit_staged(conn: Connection, c: Claimed, plan_id: str, attempt: str, nbytes: int,
                  nwords: int, busy_ms: int) -> Applied:
    job = c.job
    return Applied(conn.fcall(
        "wc_commit_staged",
        [keys.tasks(job), keys.meta(job), keys.jobs(), keys.merges(job),
         keys.stage(job, c.id, attempt), keys.apply(job, c.id)],
        [keys.GROUP, c.id, plan_id, job, nbytes, nwords, busy_ms]))


def merge(conn: Connection, job: str, id_: str, piece_pairs: int) -> None:
    """Apply an accepted staged task, one bounded piece per call, until nothing is left."""
    cursor = "0"
    while True:
        left, cursor = conn.fcall(
            "wc_merge",
            [keys.apply(job, id_), keys.counts(job), keys.meta(job), keys.jobs(),
             keys.merges(job)],
            [id_, cursor, piece_pairs, job])
        if int(left) == 0:
            return


def dead(conn: Connection, c: Claimed, plan_id: str, reason: str) -> Applied:
    job = c.job
    return Applied(conn.fcall(
        "wc_dead",
        [keys.tasks(job), keys.meta(job), keys.jobs(), keys.merges(job), keys.dead(job)],
        [keys.GROUP, c.id, plan_id, job, reason]))


def _claimed(job: str, reply: object, how: str) -> Claimed | None:
    if not reply:
        return None
    entry_id, fields, deliveries = reply  # type: ignore[misc]
    return Claimed.from_entry(job, entry_id, fields, deliveries, how)


def claim_stale(conn: Connection, job: str, consumer: str, min_idle_ms: int) -> Claimed | None:
    reply = conn.fcall("wc_claim_stale", [keys.tasks(job), keys.meta(job), keys.leases(job)],
                       [keys.GROUP, consumer, min_idle_ms])
    return _claimed(job, reply, "stale")


def speculate(conn: Connection, job: str, consumer: str, min_ms: int, factor: float
              ) -> Claimed | None:
    reply = conn.fcall("wc_speculate", [keys.tasks(job), keys.meta(job), keys.leases(job)],
                       [keys.GROUP, consumer, min_ms, factor])
    return _claimed(job, reply, "backup")


def heartbeat(conn: Connection, c: Claimed, consumer: str, start: bool = False) -> bool:
    """Reset the task's idle time if we still own it; False when it was taken from us."""
    return bool(conn.fcall("wc_heartbeat", [keys.tasks(c.job), keys.leases(c.job)],
                           [keys.GROUP, consumer, c.id, "start" if start else "beat"]))
