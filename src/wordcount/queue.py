"""The task queues: which jobs are active, take a task (its lease started), keep it, settle it.

Two backends run the same protocol (``redis/wordcount.lua``) with the same guarantees:

- ``StreamQueue``: each job's tasks in a Redis stream read by a consumer group; the pending
  list holds the leases (XREADGROUP, XAUTOCLAIM, XACK/XDEL in Functions).
- ``LeaseQueue``: no stream command (RedisRaft refuses them): tasks never taken in a list, a
  taken task's deadline in a sorted set, its owner and delivery count in hashes; idle workers
  block on a notify list.

A job records the queue it was submitted to (meta ``queue``, and the active-jobs hash, which
maps each running job to its queue kind and epoch); ``Queues`` serves every active job with the
backend it records, so workers and clients with different settings cannot disagree, and a job
re-created on the other queue is served on that one at once. Settling a task (commit, staged
commit, merge, dead letter) is the same Functions for both backends; only the keys of the queue
differ (``functions._settle``).

Client side: ``resolve_kind`` turns the ``queue`` setting (stream | lease | auto) into the kind a
new job is submitted to; ``pending_count`` reads how many tasks workers hold now.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import ResponseError

from . import functions, keys, shuffle
from .connection import Connection
from .exceptions import PhaseError, UsageError
from .protocol import QUEUES, Applied, Claimed, Meta, task_seq
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobInfo:
    plan: str
    epoch: str  # the incarnation of the job: tasks of another epoch are not its tasks
    root: str
    kind: str  # the queue it was submitted to
    mount: str = ""  # the client's data root: what a worker's data root maps (see worker)
    maps: int = 0  # tasks in the plan (a shuffle job's map tasks)
    reduces: int = 0  # a shuffle job's R (0: one phase)
    app: str = "wordcount"  # what its tasks' bytes become (wordcount.apps)


# job -> (queue kind, epoch) of every running job, as the active-jobs hash says
Active = dict[str, tuple[str, str]]


class TaskQueue(Protocol):
    """What a worker sees."""

    def active_jobs(self) -> Active: ...
    def take(self, jobs: Active) -> Claimed | None: ...
    def keep(self, c: Claimed) -> bool: ...
    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                 nwords: int | None = None, counted_ms: int | None = None,
                 consumed: Sequence[str] = ()) -> Applied: ...
    def complete_map(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                     reduces: int, counted_ms: int | None = None) -> Applied: ...
    def read_partition(self, c: Claimed, maps: int, reduces: int
                       ) -> tuple[Counter[str], list[str]]: ...
    def fail(self, c: Claimed, reason: str) -> Applied: ...
    def info(self, c: Claimed) -> JobInfo | None: ...
    def finish_merges(self, jobs: Active) -> int: ...


def table_order(counts: Counter[str]) -> list[object]:
    """The counts as a flat [word, n, ...] list in the order of the sorted set: by count, then
    word (grouped by count first: a few sorts of bare strings, ~3x faster than one of pairs)."""
    by_count: dict[int, list[str]] = defaultdict(list)
    for word, n in counts.items():
        by_count[n].append(word)
    pairs: list[object] = []
    for n in sorted(by_count):
        words = by_count[n]
        words.sort()
        flat: list[object] = [n] * (2 * len(words))
        flat[0::2] = words
        pairs += flat
    return pairs


def vanished(exc: ResponseError) -> bool:
    """A reply caused by a job vanishing (deleted, re-planned, or lost by Redis) while we read
    it: the job is forgotten, the worker goes on."""
    text = str(exc)
    return text.startswith(("NOGROUP", "UNBLOCKED")) or "no such key" in text


def _first(jobs: list[str], take: Callable[[str], Claimed | None]) -> Claimed | None:
    """The first task ``take`` finds, trying the jobs in order."""
    for job in jobs:
        c = take(job)
        if c is not None:
            return c
    return None


class _Backend:
    """What both backends share: settling a task, merging staged pieces."""

    kind = ""
    MAX_RESTAGE = 5  # stage again at most this often when Redis keeps losing our pieces

    def __init__(self, conn: Connection, consumer: str, settings: Settings) -> None:
        self.conn = conn
        self.consumer = consumer
        self.settings = settings

    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                 nwords: int | None = None, counted_ms: int | None = None,
                 consumed: Sequence[str] = ()) -> Applied:
        """Settle the task with its counts (``nwords`` overrides their total: per-word mode
        applied them already and commits no pairs; ``counted_ms``: when the worker's counting
        ended, for the job's history; ``consumed``: a reduce task's map pieces, read_partition)."""
        # in the table's own order, (count, word): Redis inserts a run of neighbours into a
        # sorted set ~3x faster than the same words in hash order (its skiplist search stays
        # in cache; 2 M words: 1.9 s against 6.3 s of Redis CPU, measured with ZADD)
        pairs = table_order(counts)
        nwords = sum(counts.values()) if nwords is None else nwords
        if len(counts) <= self.settings.commit_pairs:
            return functions.commit(self.conn, c, pairs, nbytes, nwords, busy_ms, counted_ms,
                                    consumed)
        return self._complete_staged(c, pairs, len(counts), nbytes, nwords, busy_ms, counted_ms,
                                     consumed)

    def complete_map(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                     reduces: int, counted_ms: int | None = None) -> Applied:
        """Settle a shuffle job's map task with its output cut into ``reduces`` partition
        pieces (one call, O(R) work in Redis whatever the vocabulary). A map settling after the
        reduce phase began (a requeued dead letter) is committed directly instead."""
        nwords = sum(counts.values())
        pieces = shuffle.pieces(counts, reduces)
        for _ in range(self.MAX_RESTAGE):
            outcome = functions.map_commit(self.conn, c, pieces, nbytes, nwords, busy_ms,
                                           counted_ms)
            if outcome is not Applied.LATE:
                return outcome
            log.info("task %s %s: the reduce phase already began; committing its counts "
                     "directly", c.job, c.id)
            try:
                return self.complete(c, counts, nbytes, busy_ms, counted_ms=counted_ms)
            except PhaseError:
                # Redis rolled back (or lost the job) to its map phase meanwhile: a map
                # commit again
                log.info("task %s %s: the job is in its map phase again", c.job, c.id)
        return Applied.RESTAGE  # (phases flipping back and forth: left for another attempt)

    def read_partition(self, c: Claimed, maps: int, reduces: int
                       ) -> tuple[Counter[str], list[str]]:
        """A reduce task's input: the sum of its partition's pieces, one per map task that
        committed its output, and the ids of those maps (shuffle.CorruptPiece names a damaged
        piece). The pieces are fixed once the reduce phase began (no map writes one after it),
        and freed only by the commit that settles this reduce: a reduce that reads a partition
        already freed is settled already, and its commit is a duplicate."""
        job, r = c.job, c.reduce

        def read(red):
            ids = [t for t in red.hkeys(keys.done(job)) if task_seq(t) <= maps]
            ids.sort(key=task_seq)
            out: list[tuple[str, bytes]] = []
            for i in range(0, len(ids), 1000):
                batch = ids[i:i + 1000]
                got = red.hmget(keys.shuffle(job), [f"{r}:{t}" for t in batch])
                # (replies decode with surrogateescape: encoding back gives the bytes)
                out += [(t, p.encode("utf-8", "surrogateescape"))
                        for t, p in zip(batch, got, strict=True) if p is not None]
            return out
        found = self.conn.call(read)
        counts = shuffle.reduce(((f"{r}:{t}", p) for t, p in found), r, reduces)
        return counts, [t for t, _ in found]

    def _complete_staged(self, c: Claimed, pairs: list[object], distinct: int, nbytes: int,
                         nwords: int, busy_ms: int, counted_ms: int | None,
                         consumed: Sequence[str] = ()) -> Applied:
        return functions.commit_in_pieces(
            self.conn, c, pairs, distinct, nbytes, nwords, busy_ms, counted_ms, consumed,
            piece_pairs=self.settings.commit_pairs, rounds=self.MAX_RESTAGE)

    def fail(self, c: Claimed, reason: str) -> Applied:
        return functions.dead(self.conn, c, reason)


class StreamQueue(_Backend):
    kind = "stream"

    def take(self, jobs: list[str], block: bool) -> Claimed | None:
        """New work first, then tasks of dead or stalled workers, then backup copies of
        stragglers' tasks; with ``block``, then wait up to block_ms for new work."""
        c = self._read_new(jobs) or self._claim_stale(jobs) or self._speculate(jobs)
        if c is None and block:
            self._wait_new(jobs)
            c = self._read_new(jobs)
        return c  # (every claim started its lease in its Function)

    def _read_new(self, jobs: list[str]) -> Claimed | None:
        """One new entry, one stream at a time (``wc_take``: delivered and leased in one call;
        a read over several streams would deliver one entry of each, every one a lease we must
        keep)."""
        return _first(jobs, lambda job: functions.take(self.conn, job, self.consumer))

    def _wait_new(self, jobs: list[str]) -> None:
        """Wait (at most block_ms) for an entry added to any of the streams: a plain XREAD,
        which delivers nothing to the group (the next ``_read_new`` takes one)."""
        streams = {keys.tasks(job): "$" for job in jobs}
        self.conn.call(lambda r: r.xread(streams, count=1, block=self.settings.block_ms))

    def _claim_stale(self, jobs: list[str]) -> Claimed | None:
        return _first(jobs, lambda job: functions.claim_stale(
            self.conn, job, self.consumer, self.settings.claim_timeout_ms))

    def _speculate(self, jobs: list[str]) -> Claimed | None:
        s = self.settings
        return None if s.speculate_factor <= 0 else _first(jobs, lambda job: functions.speculate(
            self.conn, job, self.consumer, s.speculate_min_ms, s.speculate_factor))

    def keep(self, c: Claimed) -> bool:
        return functions.heartbeat(self.conn, c, self.consumer)


class LeaseQueue(_Backend):
    kind = "lease"

    def take(self, jobs: list[str], block: bool) -> Claimed | None:
        """An expired lease or a new task (one Function), then a backup copy of a straggler's
        task; with ``block``, wait on the jobs' notify lists (at most block_ms, and at most half
        a lease, so expired leases are noticed) and try once more."""
        c = self._claim(jobs) or self._speculate(jobs)
        if c is None and block:
            wait_s = max(min(self.settings.block_ms, self.settings.claim_timeout_ms // 2), 10)
            self.conn.call(lambda r: r.blpop([keys.notify(j) for j in jobs], wait_s / 1000))
            c = self._claim(jobs)
        return c

    def _claim(self, jobs: list[str]) -> Claimed | None:
        return _first(jobs, lambda job: functions.lease_claim(
            self.conn, job, self.consumer, self.settings.claim_timeout_ms))

    def _speculate(self, jobs: list[str]) -> Claimed | None:
        s = self.settings
        return None if s.speculate_factor <= 0 else _first(
            jobs, lambda job: functions.lease_speculate(
                self.conn, job, self.consumer, s.claim_timeout_ms, s.speculate_min_ms,
                s.speculate_factor))

    def keep(self, c: Claimed) -> bool:
        return functions.lease_heartbeat(self.conn, c, self.consumer,
                                         self.settings.claim_timeout_ms)


class Queues:
    """The worker's ``TaskQueue``: every active job served by the backend it records."""

    def __init__(self, conn: Connection, consumer: str, settings: Settings) -> None:
        self.conn = conn
        self.backends: dict[str, _Backend] = {
            "stream": StreamQueue(conn, consumer, settings),
            "lease": LeaseQueue(conn, consumer, settings)}
        self._info: dict[str, JobInfo] = {}  # job -> its incarnation we last read

    def active_jobs(self) -> Active:
        """Every running job with its queue kind and epoch (one read)."""
        listed = self.conn.call(lambda r: r.hgetall(keys.active()))
        out: Active = {}
        for job in sorted(listed):
            kind, _, epoch = listed[job].partition(" ")
            out[job] = (kind, epoch)
        return out

    def _read_info(self, job: str) -> JobInfo | None:
        plan, epoch, root, kind, mount, total, reduces, app = self.conn.call(
            lambda r: r.hmget(keys.meta(job), Meta.PLAN, Meta.EPOCH, Meta.ROOT, Meta.QUEUE,
                              Meta.MOUNT, Meta.TOTAL, Meta.REDUCES, Meta.APP))
        if plan is None:
            self._info.pop(job, None)
            return None
        info = self._info[job] = JobInfo(plan, epoch, root, kind or "stream", mount or root,
                                         int(total or 0), int(reduces or 0),
                                         app or "wordcount")
        return info

    def info(self, c: Claimed) -> JobInfo | None:
        """The job incarnation a claimed task belongs to, or None if the job no longer has that
        epoch (it was re-planned or deleted): such a task must not be counted or committed."""
        info = self._info.get(c.job)
        if info is None or info.epoch != c.epoch:
            info = self._read_info(c.job)
        return info if info is not None and info.epoch == c.epoch else None

    def take(self, jobs: Active | list[str]) -> Claimed | None:
        """A task of any active job, its lease started; blocks (bounded) when there is none.
        Each job is served on the queue the active-jobs hash names for its current epoch
        (``jobs``: that hash as ``active_jobs`` read it, or job names to look up in it)."""
        jobs = self._as_active(jobs)
        by_kind: dict[str, list[str]] = {}
        for job, (kind, _epoch) in jobs.items():
            if kind in self.backends:
                by_kind.setdefault(kind, []).append(job)
        kinds = [k for k in QUEUES if k in by_kind]
        if not kinds:  # nothing we can serve: don't spin
            time.sleep(self.backends["stream"].settings.block_ms / 1000)
        for i, kind in enumerate(kinds):
            last = i == len(kinds) - 1
            c = self.backends[kind].take(by_kind[kind], block=last)
            if c is not None:
                return c
        return None

    def keep(self, c: Claimed) -> bool:
        return self.backends[c.kind].keep(c)

    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                 nwords: int | None = None, counted_ms: int | None = None,
                 consumed: Sequence[str] = ()) -> Applied:
        return self.backends[c.kind].complete(c, counts, nbytes, busy_ms, nwords, counted_ms,
                                              consumed)

    def complete_map(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                     reduces: int, counted_ms: int | None = None) -> Applied:
        return self.backends[c.kind].complete_map(c, counts, nbytes, busy_ms, reduces,
                                                  counted_ms)

    def read_partition(self, c: Claimed, maps: int, reduces: int
                       ) -> tuple[Counter[str], list[str]]:
        return self.backends[c.kind].read_partition(c, maps, reduces)

    def fail(self, c: Claimed, reason: str) -> Applied:
        return self.backends[c.kind].fail(c, reason)

    def _as_active(self, jobs: Active | list[str]) -> Active:
        if isinstance(jobs, dict):
            return jobs
        active = self.active_jobs()
        return {job: active[job] for job in jobs if job in active}

    def finish_merges(self, jobs: Active | list[str]) -> int:
        """Drive merges left behind by a worker that died after its staged commit."""
        done = 0
        for job, (_kind, epoch) in self._as_active(jobs).items():
            pieces = self.conn.call(lambda r, job=job: r.smembers(keys.merges(job)))
            for piece in sorted(pieces):
                if functions.merge(self.conn, job, epoch, piece) is Applied.APPLIED:
                    done += 1
        return done


# -- the client side --------------------------------------------------------------------------

def is_raft(conn: Connection) -> bool:
    """Whether the server is a RedisRaft node (it refuses every stream command)."""
    info = conn.call(lambda r: r.info("raft"))
    return any(k.startswith("raft_") for k in info)


def resolve_kind(conn: Connection, setting: str) -> str:
    """The queue a new job is submitted to: ``auto`` is lease on RedisRaft, else stream."""
    if setting not in (*QUEUES, "auto"):
        raise UsageError(f"unknown queue {setting!r}: choose stream, lease or auto")
    raft = is_raft(conn)
    if setting == "stream" and raft:
        raise UsageError("this Redis is a RedisRaft node, which refuses every stream command: "
                         "use --queue lease (or auto)")
    if setting == "auto":
        return "lease" if raft else "stream"
    return setting


def queue_pending(pipe, job: str) -> None:
    """Queue, on a pipeline, the two reads ``pending_count`` picks from."""
    pipe.xpending(keys.tasks(job), keys.GROUP)  # an error on the lease queue (no stream)
    pipe.zcard(keys.expiry(job))


def pending_count(kind: str, stream_pending: object, leased: object) -> int:
    """Tasks held by workers right now, from the replies of ``queue_pending``."""
    if kind == "lease":
        return int(leased) if isinstance(leased, int) else 0
    if isinstance(stream_pending, dict):
        return int(stream_pending["pending"])
    return 0
