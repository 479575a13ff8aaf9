"""A stateless worker: take a task, count it, commit it; forever, or until no job has work left.

One loop iteration (``work_once``): stop check → take (blocking, bounded) → count (with a
heartbeat thread keeping the task) → commit, on a committer thread, while the next task is
taken and counted (at most one commit in flight). Everything a worker knows is in Redis, so killing
it at any line loses nothing: its task is stolen after the claim timeout and recounted.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from . import apps, engines, keys, planner, shuffle
from .connection import Connection
from .exceptions import PermissionRefusedError, ShutdownRequested, UsageError
from .protocol import CHANGED, CLOCK_WARN_MS, Applied, Claimed, now_ms, sync_clock
from .queue import Queues, TaskQueue
from .registry import Registration
from .settings import Settings

log = logging.getLogger(__name__)

# The points of a task attempt where a worker calls its faults' ``crash_point``
CRASH_POINTS = ("after-claim", "after-count", "before-commit", "after-commit")
CLOCK_SYNC_S = 30.0  # how often a worker measures its clock against Redis's
IDLE_POLL_S = 0.05  # first wait for a job when there is none (doubling up to block_ms)
# While tasks keep coming, the active-jobs hash read for one take serves the next takes for
# this long: a call per task less (a job cancelled, deleted or re-created on the other queue
# meanwhile costs at most one task taken in vain: its commit is refused, or the take finds
# nothing)
ACTIVE_REUSE_S = 0.5


class NoFaults:
    """The hooks a worker calls for injected faults; a product worker injects none. The lab's
    ``Faults`` (``wordcount.lab.faults``) overrides them to crash, stall or slow a worker."""

    def arm(self) -> str | None:
        """A task attempt starts: where (one of CRASH_POINTS) it is to crash, if anywhere."""
        return None

    def crash_point(self, armed: str | None, point: str) -> None:
        """The attempt armed with ``armed`` is at ``point``."""

    def pace(self, nbytes: int) -> None:
        """A buffer of ``nbytes`` was counted."""

    def reduce_done(self, started: float) -> None:
        """A reduce that started at ``started`` (time.perf_counter) was summed."""


@dataclass
class Stats:
    taken: int = 0
    applied: int = 0
    duplicates: int = 0
    dead: int = 0
    lost_leases: int = 0


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class Heartbeat(threading.Thread):
    """Keeps one task alive while it is being counted (every claim_timeout / 3)."""

    def __init__(self, queue: TaskQueue, claimed: Claimed, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{claimed.id}")
        self.queue, self.claimed, self.interval = queue, claimed, interval
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if not self.queue.keep(self.claimed):
                    self.lost = True
                    log.info("task %s %s: lease no longer ours (taken over, or just settled); "
                             "finishing anyway (the commit decides)",
                             self.claimed.job, self.claimed.id)
                    return
            except Exception as exc:  # noqa: BLE001 - a beat failing must not kill the worker
                log.warning("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self.stopped.set()


class Worker:
    def __init__(self, settings: Settings, queue: TaskQueue | None = None,
                 faults: NoFaults | None = None, exit_when_idle: bool = False,
                 commit_mode: str = "atomic", idle_grace_s: float = 3.0) -> None:
        self.settings = settings
        self.consumer = consumer_name()
        self.conn = Connection(settings, name=f"wordcount-worker-{self.consumer}")
        self.queue = queue or Queues(self.conn, self.consumer, settings)
        self.faults = faults or NoFaults()
        self.exit_when_idle = exit_when_idle
        self.commit_mode = commit_mode
        self.idle_grace_s = idle_grace_s
        self.stats = Stats()
        self.registration = Registration(self.conn, self.consumer,
                                         every_s=max(settings.heartbeat_s, 1.0))
        self._stop = False
        self.stopped_by = ""  # the signal that asked this worker to stop
        self._busy = False  # counting a task: a stop request waits for it to be committed
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._in_flight: Future | None = None
        self._clock_synced = float("-inf")
        self._idle_s = IDLE_POLL_S
        self._active: tuple[float, dict] | None = None  # (read at, jobs): see ACTIVE_REUSE_S
        # finished jobs' tables (Worker._table): (job, its version) -> table
        self._tables: dict[tuple[str, tuple[str, int]], Counter[str]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame: object = None) -> None:
        """The signal handler (SIGTERM, SIGINT, SIGHUP): idle, or a second signal, stop now
        (ShutdownRequested); busy, stop after the current task. It writes nothing, not even a
        log line: the main thread may be in the middle of a write to the same stream (a
        "reentrant call" error). The stop is logged once the worker is out of its loop."""
        self.stopped_by = signal.Signals(signum).name if signum else "a stop request"
        if self._stop or not self._busy:
            raise ShutdownRequested(self.stopped_by)
        self._stop = True
        self.registration.report.state = "stopping"  # (no lock: the registry thread writes it)

    def run(self) -> Stats:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # supervisor, ^C, terminal
            signal.signal(sig, self.request_stop)
        self.conn.ensure_functions()
        self.sync_clock()
        log.info("worker %s ready (redis %s, claim timeout %d ms)", self.consumer,
                 self.settings.safe_url, self.settings.claim_timeout_ms)
        self.registration.start()
        try:
            self._loop()
            self.drain()
        finally:
            self.registration.stop()
        if self._stop:
            log.info("worker %s: %s received; stopped after its current task", self.consumer,
                     self.stopped_by)
        log.info("worker %s done: %s", self.consumer, self.stats)
        return self.stats

    def _loop(self) -> None:
        idle_since: float | None = None
        while not self._stop:
            if self.work_once():
                idle_since = None
                continue
            # No active job. Exit only after a grace period: a Redis that just restarted from
            # an old snapshot (or from nothing) shows no job until the client resubmits it.
            idle_since = idle_since or time.monotonic()
            if self.exit_when_idle and time.monotonic() - idle_since >= self.idle_grace_s:
                log.info("no job has work left; exiting")
                break

    def sync_clock(self) -> None:
        """Lease deadlines are computed on Redis's clock (protocol.now_ms): measure this
        machine's offset to it now and then."""
        self._clock_synced = time.monotonic()
        try:
            offset = sync_clock(self.conn)
        except PermissionRefusedError as e:  # an ACL without TIME: the machine's own clock
            log.warning("cannot read Redis's clock (%s): lease deadlines use this machine's "
                        "clock, which must then agree with the other workers'", e)
            return
        if abs(offset) > CLOCK_WARN_MS:
            log.warning("this machine's clock is %.1f s %s Redis's: leases use Redis's time",
                        abs(offset) / 1000, "behind" if offset > 0 else "ahead of")

    def work_once(self) -> bool:
        """One iteration. False when there is no active job at all."""
        if time.monotonic() - self._clock_synced > CLOCK_SYNC_S:
            self.sync_clock()
        if self._active and time.monotonic() - self._active[0] < ACTIVE_REUSE_S:
            jobs = self._active[1]
        else:
            jobs = self.queue.active_jobs()
            self._active = (time.monotonic(), jobs) if jobs else None
        if not jobs:
            self.registration.idle()
            # Poll the (small) active-jobs hash 20 times a second at first, then back off to
            # block_ms: a job submitted right after the last one ended (or just as `run`
            # started its workers) is taken at once, and an idle cluster costs Redis ~1 call
            # per worker and second.
            time.sleep(self._idle_s)
            self._idle_s = min(self._idle_s * 2, self.settings.block_ms / 1000)
            return False
        self._idle_s = IDLE_POLL_S
        claimed = self.queue.take(jobs)
        if claimed is None:
            self._active = None  # nothing to take: read the active jobs again next time
            self.drain()
            self.registration.idle()
            self.queue.finish_merges(jobs)
            return True
        self._busy = True
        try:
            self.process(claimed)
        finally:
            self._busy = False
        return True

    # -- one task -----------------------------------------------------------------------------

    def crash_point(self, armed: str | None, point: str) -> None:
        self.faults.crash_point(armed, point)

    def process(self, c: Claimed) -> None:
        """Claim → count on this thread; the commit goes to the committer thread, so the next
        task is counted while Redis applies this one (at most one commit in flight)."""
        self.stats.taken += 1
        self.registration.busy(c)
        if c.deliveries > self.settings.max_attempts:
            self._dead(c, f"{c.deliveries - 1} attempts failed (--max-attempts "
                          f"{self.settings.max_attempts}; each crashed, froze or lost its "
                          "lease): workers keep failing on it")
            return
        info = self.queue.info(c)
        if info is None:  # its job was re-planned or deleted since the task was queued
            log.info("task %s %s belongs to a job incarnation that no longer exists: dropped",
                     c.job, c.id)
            return
        armed = self.faults.arm()
        self.crash_point(armed, "after-claim")
        beat = Heartbeat(self.queue, c, self.settings.heartbeat_s)  # runs until committed
        beat.start()
        consumed: list[str] = []
        try:
            started = time.perf_counter()
            if c.reduce is None:
                counts, nbytes = self._count(c, info.root, info.mount,
                                                      self._app(info.app))
            else:  # a shuffle job's reduce task: sum its partition of every map's output
                counts, consumed = self.queue.read_partition(c, info.maps, info.reduces)
                nbytes = 0
                self.faults.reduce_done(started)
            busy_ms = int((time.perf_counter() - started) * 1000)
            counted_from_ms = int(time.time() * 1000) - busy_ms  # (for the log: wall clock)
            counted_ms = now_ms()  # (for the job's history: the protocol's clock)
            self.crash_point(armed, "after-count")
        except UsageError as exc:  # the job's app is not installed here
            beat.stop()
            self._dead(c, f"app {info.app!r} cannot run on worker {self.consumer}: {exc}")
            return
        except apps.TaskError as exc:  # a record the app cannot map, an earlier round gone
            beat.stop()
            self._dead(c, f"{c.task.describe()}: {exc}")
            return
        except shuffle.CorruptPiece as exc:
            beat.stop()
            self._dead(c, f"reduce task {c.reduce} (partition {c.reduce} of {info.reduces}): "
                          f"{exc}: a map's output was damaged in Redis; its words of this "
                          "partition are not in the table")
            return
        except planner.FileChangedError as exc:
            beat.stop()
            self._dead(c, f"{CHANGED}: {c.task.describe()}: "
                          f"{planner.describe(exc)}{self._mapping_note(info)}")
            return
        except OSError as exc:
            beat.stop()
            self._dead(c, f"cannot read {c.task.describe()}: "
                          f"{planner.describe(exc)}{self._mapping_note(info)}")
            return
        except BaseException:
            beat.stop()
            raise
        self.drain()  # the previous task's commit, before this one's starts
        self._in_flight = self._committer.submit(self._commit_and_log, c, counts, nbytes,
                                                 busy_ms, armed, beat, counted_ms,
                                                 info.reduces, consumed, counted_from_ms)

    def drain(self) -> None:
        """Wait for the commit in flight (re-raising its error, e.g. Redis unavailable)."""
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            future.result()

    def _commit_and_log(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                        armed: str | None, beat: Heartbeat, counted_ms: int,
                        reduces: int = 0, consumed: list[str] | None = None,
                        counted_from_ms: int = 0) -> None:
        try:
            self.crash_point(armed, "before-commit")
            committing = time.perf_counter()
            outcome = self._commit(c, counts, nbytes, busy_ms, counted_ms, reduces, consumed)
            commit_ms = int((time.perf_counter() - committing) * 1000)
            self.crash_point(armed, "after-commit")
        finally:
            beat.stop()
        if beat.lost:
            self.stats.lost_leases += 1
        if outcome is Applied.APPLIED:
            self.stats.applied += 1
        elif outcome is Applied.DUPLICATE:
            self.stats.duplicates += 1
            log.info("task %s %s was already committed by another worker: no-op", c.job, c.id)
        elif outcome is Applied.STALE:
            log.info("task %s %s was counted for an older plan of the job (re-planned): "
                     "dropped, never applied to the new plan", c.job, c.id)
        elif outcome is Applied.GONE:
            log.info("task %s %s: the job no longer exists or was cancelled: dropped", c.job,
                     c.id)
        elif outcome is Applied.RESTAGE and c.reduce is not None:
            log.error("task %s %s: its partition is not the one it read (Redis lost the job "
                      "and it was counted again?); left for another attempt", c.job, c.id)
        elif outcome is Applied.RESTAGE:
            log.error("task %s %s: Redis kept losing its staged pieces; left for another "
                      "attempt", c.job, c.id)
        what = (f"reduce {c.reduce}" if c.reduce is not None else f"{c.task.nbytes} bytes")
        # (by whom and from when, on this machine's clock: when tasks ran at the same time)
        log.info("task %s %s (%s, %s) %s in %d ms (counted; committed in %d ms) by %s from %d",
                 c.job, c.id, c.how, what, outcome.name.lower(), busy_ms, commit_ms,
                 self.consumer, counted_from_ms)
        self.registration.update(**asdict(self.stats))

    def _app(self, spec: str) -> apps.App:
        """The job's app, reading earlier jobs' tables (an iterative app's rounds) from this
        worker's Redis: the last few, kept (a finished job's table never changes)."""
        app = apps.get(spec)
        if app.iterative or "?" in spec:
            app.bind(self._table)
        return app

    def _table(self, job: str) -> Counter[str]:
        """A finished job's table: kept by (job, incarnation, finish time), so a job of the
        same name counted anew is read anew (one small read per task checks which it is)."""
        from . import client

        version = client.finished_version(self.conn, job)
        cache = self._tables
        if (job, version) in cache:  # (most recently used last: a round's links table stays)
            cache[(job, version)] = cache.pop((job, version))
        else:
            table, read = client.finished_table(self.conn, job)
            cache[(job, read)] = table
            while len(cache) > 3:
                cache.pop(next(iter(cache)))
            if read != version:
                return table
        return cache[(job, version)]

    def local_root(self, job_root: str, mount: str) -> str:
        """Where this worker finds the job's root: the root itself, or, with a data root of
        its own, the root mapped into it (the job's mount -- the client's data root -- is
        what this worker's data root stands for: <data root>/<root relative to mount>)."""
        if not self.settings.data_root:
            return job_root
        return os.path.normpath(os.path.join(self.settings.data_root,
                                             os.path.relpath(job_root, mount or job_root)))

    def _mapping_note(self, info) -> str:
        if not self.settings.data_root:
            return ""
        return (f" (read at {self.local_root(info.root, info.mount)}: this worker's data root "
                f"{self.settings.data_root} stands for the job's {info.mount or info.root})")

    def _count(self, c: Claimed, job_root: str, mount: str, app: apps.App
               ) -> tuple[Counter[str], int]:
        """Count the task under the data root of the plan it was claimed under (mapped into
        this worker's --data-root, where the job's files are mounted), checking that each file
        is the one the plan recorded; the counts and the bytes read. OSError when a file (of a
        pack: any of its files) cannot be read: the task is set aside whole."""
        root = self.local_root(job_root, mount)
        mapped = os.path.normpath(root) != os.path.normpath(job_root)
        pace = self.faults.pace
        if not c.task.parts:
            path = planner.resolve_under(root, c.task.path)
            return engines.count_checked(c.task, path, mapped, on_buffer=pace, app=app)
        return engines.count_pack(c.task, planner.resolver(root), mapped, on_buffer=pace,
                                  app=app)

    def _commit(self, c: Claimed, counts: Counter[str], nbytes: int, busy_ms: int,
                counted_ms: int, reduces: int = 0, consumed: list[str] | None = None
                ) -> Applied:
        """Commit under the epoch the task was claimed with; a stale commit is dropped, never
        retried under another plan (its counts belong to the plan they were counted for).
        A shuffle job's map task commits its output as partitions, its reduce task its
        partition's totals; the job's mode decides, not this worker's --commit. ``counted_ms``:
        when its counting ended (the protocol's clock), for the job's history."""
        if c.reduce is not None:
            return self.queue.complete(c, counts, nbytes, busy_ms, counted_ms=counted_ms,
                                       consumed=consumed or [])
        if reduces:
            return self.queue.complete_map(c, counts, nbytes, busy_ms, reduces, counted_ms)
        if self.commit_mode == "per-word":
            self._apply_per_word(c, counts)
            return self.queue.complete(c, Counter(), nbytes, busy_ms,
                                       nwords=sum(counts.values()), counted_ms=counted_ms)
        return self.queue.complete(c, counts, nbytes, busy_ms, counted_ms=counted_ms)

    def _apply_per_word(self, c: Claimed, counts: Counter[str]) -> None:
        """The lab's naive variant: one ZINCRBY per word occurrence, before a commit with no
        pairs. NOT crash-safe: a crash mid-way, or a straggler and a thief both finishing,
        counts words twice (the client's self-check then fails the job loudly)."""
        key = keys.counts(c.job)
        words = [w for word, n in counts.items() for w in [word] * n]
        for i in range(0, len(words), 10_000):
            def send(r, batch=words[i:i + 10_000]) -> None:
                pipe = r.pipeline(transaction=False)
                for w in batch:
                    pipe.zincrby(key, 1, w)
                pipe.execute()
            self.conn.call(send)

    def _dead(self, c: Claimed, reason: str) -> None:
        outcome = self.queue.fail(c, reason)
        if outcome is Applied.APPLIED:
            self.stats.dead += 1
            self.registration.update(**asdict(self.stats))
            log.error("task %s %s set aside: %s", c.job, c.id, reason)
        else:
            log.info("task %s %s not set aside (%s): %s", c.job, c.id, outcome.name.lower(),
                     reason)
