"""The task queue a worker sees: which jobs are active, take a task, keep it, finish it.

``StreamQueue`` keeps each job's tasks in a Redis stream read by a consumer group (XREADGROUP,
XAUTOCLAIM, XACK in Functions). The worker only talks to this interface, so a stream-free
backend (RedisRaft rejects stream commands) can replace it without touching the worker.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import ResponseError

from . import functions, keys
from .connection import Connection
from .functions import Applied, Claimed
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobInfo:
    plan: str
    epoch: str  # the incarnation of the job: tasks of another epoch are not its tasks
    root: str


class TaskQueue(Protocol):
    def active_jobs(self) -> list[str]: ...
    def take(self, jobs: list[str]) -> Claimed | None: ...
    def keep(self, c: Claimed, start: bool = False) -> bool: ...
    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int) -> Applied: ...
    def complete_per_word(self, c: Claimed, counts: Counter[str], nbytes: int,
                          busy_ms: int) -> Applied: ...
    def fail(self, c: Claimed, reason: str) -> Applied: ...
    def info(self, c: Claimed) -> JobInfo | None: ...
    def finish_merges(self, jobs: list[str]) -> int: ...


def vanished(exc: ResponseError) -> bool:
    """A reply caused by a job vanishing (deleted, re-planned, or lost by Redis) while we read
    it: the job is forgotten, the worker goes on."""
    text = str(exc)
    return text.startswith(("NOGROUP", "UNBLOCKED")) or "no such key" in text


class StreamQueue:
    MAX_RESTAGE = 5  # stage again at most this often when Redis keeps losing our pieces

    def __init__(self, conn: Connection, consumer: str, settings: Settings) -> None:
        self.conn = conn
        self.consumer = consumer
        self.settings = settings
        self._info: dict[str, JobInfo] = {}

    # -- which jobs ---------------------------------------------------------------------------

    def active_jobs(self) -> list[str]:
        return sorted(self.conn.call(lambda r: r.smembers(keys.jobs())))

    def info(self, c: Claimed) -> JobInfo | None:
        """The job incarnation a claimed task belongs to, or None if the job no longer has that
        epoch (it was re-planned or deleted): such a task must not be counted or committed."""
        info = self._info.get(c.job)
        if info is None or info.epoch != c.epoch:
            plan, epoch, root = self.conn.call(
                lambda r: r.hmget(keys.meta(c.job), "plan", "epoch", "root"))
            if plan is None:
                self._info.pop(c.job, None)
                return None
            info = self._info[c.job] = JobInfo(plan, epoch, root)
        return info if info.epoch == c.epoch else None

    # -- take a task ----------------------------------------------------------------------------

    def take(self, jobs: list[str]) -> Claimed | None:
        """New work first, then tasks of dead or stalled workers, then backup copies of
        stragglers' tasks; if none of these, wait up to block_ms for new work."""
        return (self._read_new(jobs, block=False) or self._claim_stale(jobs)
                or self._speculate(jobs) or self._read_new(jobs, block=True))

    def _read_new(self, jobs: list[str], block: bool) -> Claimed | None:
        streams = {keys.tasks(job): ">" for job in jobs}
        wait_ms = self.settings.block_ms if block else None
        try:
            reply = self.conn.call(lambda r: r.xreadgroup(
                keys.GROUP, self.consumer, streams, count=1, block=wait_ms))
        except ResponseError as exc:
            if vanished(exc):
                log.info("a job vanished while we read it (%s): looking again", exc)
                return None
            raise
        for stream, entries in reply or []:
            job = jobs[[keys.tasks(j) for j in jobs].index(stream)]
            for entry_id, fields in entries:
                return Claimed.from_entry(job, entry_id, fields, 1, "new")
        return None

    def _claim_stale(self, jobs: list[str]) -> Claimed | None:
        for job in jobs:
            c = functions.claim_stale(self.conn, job, self.consumer,
                                      self.settings.claim_timeout_ms)
            if c:
                return c
        return None

    def _speculate(self, jobs: list[str]) -> Claimed | None:
        if self.settings.speculate_factor <= 0:
            return None
        for job in jobs:
            c = functions.speculate(self.conn, job, self.consumer,
                                    self.settings.speculate_min_ms,
                                    self.settings.speculate_factor)
            if c:
                return c
        return None

    # -- keep, finish -------------------------------------------------------------------------

    def keep(self, c: Claimed, start: bool = False) -> bool:
        return functions.heartbeat(self.conn, c, self.consumer, start)

    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int) -> Applied:
        pairs: list[object] = []
        for word, n in counts.items():
            pairs += (word, n)
        nwords = sum(counts.values())
        piece = self.settings.commit_pairs
        if len(counts) <= piece:
            return functions.commit(self.conn, c, pairs, nbytes, nwords, busy_ms)
        return self._complete_staged(c, pairs, len(counts), nbytes, nwords, busy_ms)

    def _complete_staged(self, c: Claimed, pairs: list[object], distinct: int, nbytes: int,
                         nwords: int, busy_ms: int) -> Applied:
        """Stage the pairs in pieces, then settle the task only if every piece is in Redis.
        A Redis restart from an older snapshot can drop pieces already written: the commit
        answers RESTAGE, and the pieces are written again."""
        step = 2 * self.settings.commit_pairs
        values = [pairs[i:i + step] for i in range(0, len(pairs), step)]
        pieces = functions.stage_keys(c, uuid.uuid4().hex[:12], len(values))
        for round_ in range(1, self.MAX_RESTAGE + 1):
            for key, piece in zip(pieces, values, strict=True):
                staged = functions.stage(self.conn, c, key, piece)
                if staged is not Applied.APPLIED:
                    return staged  # stale or gone: the task is no longer the job's
            outcome = functions.commit_staged(self.conn, c, pieces, distinct, nbytes, nwords,
                                              busy_ms)
            if outcome is not Applied.RESTAGE:
                break
            log.warning("task %s %s: staged pieces missing at commit (Redis restarted from an "
                        "older snapshot?); staging again (round %d)", c.job, c.id, round_)
        if outcome is Applied.APPLIED:
            for key in pieces:
                functions.merge(self.conn, c.job, c.epoch, key)
        return outcome

    def complete_per_word(self, c: Claimed, counts: Counter[str], nbytes: int,
                          busy_ms: int) -> Applied:
        """The lab's naive variant: one ZINCRBY per word occurrence, then a commit with no
        pairs. NOT crash-safe: a crash mid-way, or a straggler and a thief both finishing,
        counts words twice (the client's self-check then fails the job loudly)."""
        key = keys.counts(c.job)
        pipe_size = 10_000

        def send(batch: list[str]) -> None:
            def run(r) -> None:
                pipe = r.pipeline(transaction=False)
                for w in batch:
                    pipe.zincrby(key, 1, w)
                pipe.execute()
            self.conn.call(run)

        batch: list[str] = []
        for word, n in counts.items():
            for _ in range(n):
                batch.append(word)
                if len(batch) >= pipe_size:
                    send(batch)
                    batch = []
        if batch:
            send(batch)
        return functions.commit(self.conn, c, [], nbytes, sum(counts.values()), busy_ms)

    def finish_merges(self, jobs: list[str]) -> int:
        """Drive merges left behind by a worker that died after its staged commit."""
        done = 0
        for job in jobs:
            def read(r, job=job):
                pipe = r.pipeline(transaction=False)
                pipe.hget(keys.meta(job), "epoch")
                pipe.smembers(keys.merges(job))
                return pipe.execute()
            epoch, pieces = self.conn.call(read)
            for piece in sorted(pieces) if epoch else []:
                if functions.merge(self.conn, job, epoch, piece) is Applied.APPLIED:
                    done += 1
        return done

    def fail(self, c: Claimed, reason: str) -> Applied:
        return functions.dead(self.conn, c, reason)
