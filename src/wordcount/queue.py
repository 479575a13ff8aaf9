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
    root: str


class TaskQueue(Protocol):
    def active_jobs(self) -> list[str]: ...
    def take(self, jobs: list[str]) -> Claimed | None: ...
    def keep(self, c: Claimed, start: bool = False) -> bool: ...
    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int) -> Applied: ...
    def complete_per_word(self, c: Claimed, counts: Counter[str], nbytes: int,
                          busy_ms: int) -> Applied: ...
    def fail(self, c: Claimed, reason: str) -> Applied: ...
    def info(self, job: str, refresh: bool = False) -> JobInfo | None: ...
    def finish_merges(self, jobs: list[str]) -> int: ...


class StreamQueue:
    def __init__(self, conn: Connection, consumer: str, settings: Settings) -> None:
        self.conn = conn
        self.consumer = consumer
        self.settings = settings
        self._info: dict[str, JobInfo] = {}

    # -- which jobs ---------------------------------------------------------------------------

    def active_jobs(self) -> list[str]:
        return sorted(self.conn.call(lambda r: r.smembers(keys.jobs())))

    def info(self, job: str, refresh: bool = False) -> JobInfo | None:
        if refresh or job not in self._info:
            plan, root = self.conn.call(lambda r: r.hmget(keys.meta(job), "plan", "root"))
            if plan is None:
                self._info.pop(job, None)
                return None
            self._info[job] = JobInfo(plan, root)
        return self._info[job]

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
            if "NOGROUP" in str(exc):  # a job vanished (deleted, or Redis lost it)
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

    def _plan(self, c: Claimed) -> str:
        info = self.info(c.job)
        return info.plan if info else "(job gone)"

    def complete(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int) -> Applied:
        pairs: list[object] = []
        for word, n in counts.items():
            pairs += (word, n)
        nwords = sum(counts.values())
        plan = self._plan(c)
        piece = self.settings.commit_pairs
        if len(counts) <= piece:
            return functions.commit(self.conn, c, plan, pairs, nbytes, nwords, busy_ms)
        attempt = f"{self.consumer}-{uuid.uuid4().hex[:8]}"
        functions.stage(self.conn, c, attempt, pairs, piece)
        outcome = functions.commit_staged(self.conn, c, plan, attempt, nbytes, nwords, busy_ms)
        if outcome is Applied.APPLIED:
            self._merge(c.job, c.id)
        return outcome

    def complete_per_word(self, c: Claimed, counts: Counter[str], nbytes: int,
                          busy_ms: int) -> Applied:
        """The lab's naive variant: one ZINCRBY per word occurrence, then XACK. NOT crash-safe:
        a crash mid-way, or a straggler and a thief both finishing, counts words twice."""
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
        return functions.commit(self.conn, c, self._plan(c), [], nbytes,
                                sum(counts.values()), busy_ms)

    def _merge(self, job: str, id_: str) -> None:
        functions.merge(self.conn, job, id_, self.settings.commit_pairs)

    def finish_merges(self, jobs: list[str]) -> int:
        """Drive merges left behind by a worker that died after its staged commit."""
        done = 0
        for job in jobs:
            for id_ in self.conn.call(lambda r, job=job: r.smembers(keys.merges(job))):
                self._merge(job, id_)
                done += 1
        return done

    def fail(self, c: Claimed, reason: str) -> Applied:
        return functions.dead(self.conn, c, self._plan(c), reason)
