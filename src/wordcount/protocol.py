"""The vocabulary both task queues share: what a worker holds (``Claimed``), what a commit
answered (``Applied``), what a submission answered (``Submitted``), and the clock every Redis
Function is given (the Functions never read the time themselves: RedisRaft replays them).
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .planner import Task

QUEUES = ("stream", "lease")  # the task queue kinds; a job records the one it was submitted to

CLOCK_SKEW_ENV = "WORDCOUNT_CLOCK_SKEW_MS"  # experiments: a process whose clock is off
CLOCK_WARN_MS = 2_000  # a machine clock this far off Redis's is logged (and corrected)
# A dead letter's reason for a task whose file is not what the plan recorded: the client never
# prints a result that holds such a task's file (a table mixing two versions of a file).
CHANGED = "input changed since planning"

_offset_ms = 0.0  # Redis's clock minus this machine's, measured by sync_clock


def local_ms() -> float:
    """This machine's clock in ms (plus $WORDCOUNT_CLOCK_SKEW_MS, to try a clock that is off)."""
    return time.time() * 1000 + int(os.environ.get(CLOCK_SKEW_ENV) or 0)


def now_ms() -> int:
    """The protocol's clock in ms: this machine's, corrected by the offset to Redis's clock that
    ``sync_clock`` last measured. Lease deadlines are computed from it, so a worker whose machine
    clock is hours off still sets deadlines on Redis's time (skew that remains, within the
    measuring round trip and the drift between syncs, can only make a lease expire a little early
    -- a task recounted, applied once -- or a little late: never a wrong count, settling is gated
    by the done/dead hashes, and never a task stuck for as long as the machine clock is off)."""
    return int(local_ms() + _offset_ms)


def sync_clock(conn) -> float:
    """Measure Redis's clock (TIME, outside any Function) against this machine's and keep the
    offset for ``now_ms``; returns it (ms). ``conn`` is a ``Connection``."""
    global _offset_ms
    before = local_ms()
    seconds, micros = conn.call(lambda r: r.time())
    after = local_ms()
    _offset_ms = seconds * 1000 + micros / 1000 - (before + after) / 2
    return _offset_ms


class Applied(enum.IntEnum):
    APPLIED = 1  # this call settled the task and its counts were added (or accepted to merge)
    DUPLICATE = 0  # already settled by someone else: nothing changed
    STALE = -1  # the job was re-planned (another epoch): nothing changed
    GONE = -2  # the job does not exist (deleted, or Redis lost it): nothing changed
    RESTAGE = -3  # a staged piece is missing (Redis rolled back): stage again, then commit
    # (a reduce task: its partition is not what it read: read it again)
    LATE = -4  # a shuffle job's map settled after the reduce phase began: commit it directly


@dataclass(frozen=True)
class Claimed:
    """A task a worker holds, its lease started: which job incarnation (epoch) and queue it
    belongs to, how it was taken and how many times it was delivered."""

    job: str
    id: str
    task: Task
    epoch: str
    deliveries: int
    how: str  # "new" | "stale" (stolen after its lease expired) | "backup"
    kind: str = "stream"  # the queue it came from
    reduce: int | None = None  # a shuffle job's reduce task: its partition (no input range)
    consumer: str = ""  # the worker that took it (its settle names it in the job's history)

    @classmethod
    def from_fields(cls, job: str, task_id: str, fields: dict[str, str] | Sequence[str],
                    deliveries: int, how: str, kind: str, consumer: str = "") -> Claimed:
        """From a task's fields as a Function or stream read returns them (flat or a dict)."""
        if not isinstance(fields, dict):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        task = Task(fields["path"], int(fields["start"]), int(fields["end"]),
                    fields.get("ident") or "", parse_parts(fields.get("parts") or ""))
        reduce = fields.get("reduce")
        return cls(job, task_id, task, fields.get("epoch", ""), int(deliveries), how, kind,
                   int(reduce) if reduce not in (None, "") else None, consumer)


def parts_text(task: Task) -> str:
    """A packed task's ranges as its spec and queue entry carry them: JSON [[path, start, end,
    identity], ...] ('' for a task of one range). A path that is not UTF-8 travels as its
    surrogate escapes (JSON \\udcXX) and comes back as the same str."""
    if not task.parts:
        return ""
    return json.dumps([[p.path, p.start, p.end, p.ident] for p in task.parts],
                      separators=(",", ":"))


def parse_parts(text: str) -> tuple[Task, ...]:
    return tuple(Task(path, int(start), int(end), ident)
                 for path, start, end, ident in json.loads(text)) if text else ()


class Meta:
    """The job meta hash's field names (``wc:{J}:meta``; ``create_job`` in wordcount.lua writes
    them all, and a test checks that the two lists agree)."""

    PLAN = "plan"  # the plan id: a hash of the inputs' identity and byte ranges
    EPOCH = "epoch"  # the incarnation: tasks of another epoch are never applied
    QUEUE = "queue"  # the queue kind the job was submitted to
    TOTAL = "total"  # tasks in the plan
    BYTES = "bytes"  # bytes in the plan
    ROOT = "root"  # the data root task paths are relative to
    MOUNT = "mount"  # the client's data root (a prefix of root): what a worker's data root maps
    ERRORS = "errors"  # JSON [[path, why], ...]: inputs the submitting client could not plan
    LINEAGE = "lineage"  # the incarnations this one replaced (submit --fresh), newest first
    SUBMITTED = "submitted"  # tasks in Redis so far
    DONE = "done"  # tasks settled with their counts
    DEAD = "dead"  # tasks set aside (dead letters)
    WORDS = "words"  # words the accepted commits reported
    DONE_BYTES = "done_bytes"
    BUSY_MS = "busy_ms"  # counting time of the accepted commits
    STOLEN = "stolen"
    BACKUPS = "backups"
    DUPLICATES = "duplicates"
    CREATED_MS = "created_ms"
    FINISHED_MS = "finished_ms"  # when it was done or cancelled (absent while running)
    STATE = "state"  # one of JOB_STATES
    # a shuffle job (--commit shuffle)
    REDUCES = "reduces"  # R reduce tasks (0: a one-phase job)
    PHASE = "phase"  # "map" | "reduce" ("" for a one-phase job)
    SHUFFLED = "shuffled"  # maps whose output went to the partitions
    SHUFFLED_WORDS = "shuffled_words"  # their words
    REDUCED = "reduced"  # words the reduce tasks applied
    REDUCE_BUSY_MS = "reduce_busy_ms"  # the reduces' counting time (busy_ms: the maps')
    REDUCES_DONE = "reduces_done"
    LATE = "late"  # set once a map settled in the reduce phase: reduces increment (apply_pairs)
    APP = "app"  # what the tasks' bytes become (wordcount.apps: a name or an import path)

    # every other field is an integer
    TEXT = (PLAN, EPOCH, QUEUE, ROOT, MOUNT, ERRORS, LINEAGE, STATE, PHASE, APP)


JOB_STATES = ("running", "done", "cancelled")


@dataclass(frozen=True)
class Submitted:
    added: int  # tasks added by this call
    submitted: int  # tasks in Redis so far
    epoch: str  # the job incarnation in Redis
    state: str  # one of JOB_STATES
    replaced: str = ""  # the incarnation this call replaced (submit --fresh), or ""


def task_seq(task_id: str) -> int:
    """The plan position (1-based) of a task id ``0-<seq>`` (both queues use these ids)."""
    return int(task_id.split("-", 1)[1])


def task_id(seq: int) -> str:
    return f"0-{seq}"
