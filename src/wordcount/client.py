"""The client side of a job: plan it, submit it (idempotently), follow it, read the result.

A job's name defaults to a hash of its plan, so submitting the same inputs again, after a client
crash or a Redis restart, continues the same job instead of starting another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import functions, keys, planner
from .connection import Connection
from .engines import Result
from .exceptions import JobLostError, UsageError
from .planner import InputError, Task
from .settings import check_job_name

log = logging.getLogger(__name__)
SUBMIT_BATCH = 1000  # tasks per wc_submit call


@dataclass
class Job:
    name: str
    plan_id: str
    root: str
    tasks: list[Task]  # paths relative to root
    errors: list[InputError] = field(default_factory=list)  # inputs that could not be planned

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tasks)


def plan_job(inputs: Sequence[str], chunk_size: int, name: str | None = None,
             root: str | None = None) -> Job:
    files, errors = planner.discover(inputs)
    root = os.path.abspath(root) if root else planner.common_root(files)
    for f in files:
        if os.path.commonpath([root, f]) != root:
            raise UsageError(f"{f} is outside the data root {root}")
    tasks, plan_errors = planner.plan(files, chunk_size)
    tasks = [Task(os.path.relpath(t.path, root), t.start, t.end) for t in tasks]
    digest = hashlib.sha256()
    for t in tasks:
        digest.update(f"{t.path}\0{t.start}\0{t.end}\n".encode("utf-8", "surrogateescape"))
    plan_id = digest.hexdigest()[:16]
    job = check_job_name(name) if name else f"job-{plan_id}"
    return Job(job, plan_id, root, tasks, errors + plan_errors)


def submit(conn: Connection, job: Job) -> int:
    """Submit every task not yet in Redis; safe to repeat at any time. Returns tasks added."""
    if not job.tasks:
        raise UsageError("nothing to count: no readable input file")
    added = 0
    for i in range(0, len(job.tasks), SUBMIT_BATCH):
        batch = job.tasks[i:i + SUBMIT_BATCH]
        n, _ = functions.submit(conn, job.name, job.plan_id, len(job.tasks), job.total_bytes,
                                job.root, i + 1, batch)
        added += n
    return added


def forget(conn: Connection, name: str) -> int:
    """Delete every key of a job (``--fresh``)."""
    def run(r) -> int:
        n = 0
        for key in r.scan_iter(match=keys.job_pattern(name), count=1000):
            n += r.delete(key)
        r.srem(keys.jobs(), name)
        return n
    return conn.call(run)


@dataclass
class Progress:
    total: int = 0
    submitted: int = 0
    done: int = 0
    dead: int = 0
    pending: int = 0
    stolen: int = 0
    backups: int = 0
    duplicates: int = 0
    done_bytes: int = 0
    bytes: int = 0
    words: int = 0
    state: str = "missing"
    created_ms: int = 0
    finished_ms: int = 0
    resubmits: int = 0  # client-side: times the job had to be resubmitted

    @property
    def finished(self) -> bool:
        return self.state == "done"


def progress(conn: Connection, name: str) -> Progress:
    def run(r) -> list:  # one round trip: this is polled several times a second
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(keys.meta(name))
        pipe.xpending(keys.tasks(name), keys.GROUP)  # NOGROUP when the job is missing
        return pipe.execute(raise_on_error=False)
    meta, pend = conn.call(run)
    if not meta or isinstance(pend, Exception):
        return Progress()
    ints = {k: int(v) for k, v in meta.items() if k in Progress.__dataclass_fields__
            and k not in ("state", "resubmits")}
    return Progress(state=meta.get("state", "running"), pending=int(pend["pending"]) if pend
                    else 0, **ints)


class Follower:
    """Shows progress: a live bar (rich) on a terminal, a log line every few seconds otherwise."""

    def __init__(self, job: Job, quiet: bool = False) -> None:
        self.job = job
        self.quiet = quiet
        self.live = sys.stderr.isatty() and not quiet
        self.started = time.monotonic()
        self._last_line = 0.0
        self._bar = None

    def __enter__(self) -> Follower:
        if self.live:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.completed:,.0f}/{task.total:,.0f} tasks"),
                            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                            transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.job.name, total=len(self.job.tasks),
                                            detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, p: Progress) -> None:
        elapsed = time.monotonic() - self.started
        mb_s = p.done_bytes / elapsed / 1e6 if elapsed > 0 else 0.0
        detail = (f"pending {p.pending}, stolen {p.stolen}, backups {p.backups}, dead {p.dead}, "
                  f"{mb_s:.1f} MB/s")
        if self._bar is not None:
            self._bar.update(self._task, completed=p.done + p.dead, detail=detail)
        elif not self.quiet and (time.monotonic() - self._last_line >= 2 or p.finished):
            self._last_line = time.monotonic()
            print(f"[{elapsed:6.1f}s] {self.job.name}: {p.done + p.dead}/{p.total} tasks done, "
                  f"{detail}", file=sys.stderr, flush=True)


def wait(conn: Connection, job: Job, poll_s: float = 0.1, quiet: bool = False,
         timeout_s: float | None = None, on_poll: Callable[[], None] | None = None) -> Progress:
    """Follow the job until it is done, resubmitting it whenever Redis has lost all or part of
    it (a restart from an older snapshot, or from nothing)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    resubmits = 0
    with Follower(job, quiet) as follower:
        while True:
            p = progress(conn, job.name)
            if p.state == "missing" or p.submitted < len(job.tasks):
                resubmits += 1
                log.warning("job %s is %s in Redis: resubmitting (idempotent)", job.name,
                            "missing" if p.state == "missing" else "partly submitted")
                submit(conn, job)
                continue
            follower.update(p)
            if p.finished:
                if p.pending:
                    raise JobLostError(f"job {job.name} marked done with {p.pending} tasks "
                                       "still pending: protocol violation")
                p.resubmits = resubmits
                return p
            if on_poll is not None:
                on_poll()
            if deadline is not None and time.monotonic() > deadline:
                raise JobLostError(f"job {job.name} did not finish within {timeout_s} s")
            time.sleep(poll_s)


def fetch_counts(conn: Connection, name: str) -> Counter[str]:
    def run(r) -> Counter[str]:
        counts: Counter[str] = Counter()
        for word, score in r.zscan_iter(keys.counts(name), count=5000):
            counts[word] = int(score)
        return counts
    return conn.call(run)


def dead_letters(conn: Connection, name: str, job: Job) -> list[InputError]:
    raw = conn.call(lambda r: r.hgetall(keys.dead(name)))
    out = []
    for task_id, reason in sorted(raw.items(), key=lambda kv: int(kv[0].split("-")[1])):
        seq = int(task_id.split("-")[1])
        t = job.tasks[seq - 1]
        out.append(InputError(os.path.join(job.root, t.path), f"task {task_id} "
                              f"[{t.start}:{t.end}] set aside: {reason}"))
    return out


def result(conn: Connection, job: Job, seconds: float, waited: Progress | None = None
           ) -> tuple[Result, Progress]:
    """The finished job as a Result. The read is retried (after waiting for the job again) if
    Redis restarted meanwhile: the job must be finished, and identically so, before and after
    the counts are read."""
    resubmits = waited.resubmits if waited else 0
    for _ in range(5):
        before = progress(conn, job.name)
        if not before.finished:
            before = wait(conn, job, quiet=True)
            resubmits += before.resubmits
        counts = fetch_counts(conn, job.name)
        dead = dead_letters(conn, job.name, job)
        after = progress(conn, job.name)
        if after.finished and after.finished_ms == before.finished_ms:
            break
        log.warning("job %s changed while its result was read (Redis restart?): reading again",
                    job.name)
    else:
        raise JobLostError(f"could not read a stable result for job {job.name}")
    total = sum(counts.values())
    if total != after.words:
        log.warning("counted %d words but commits reported %d: per-word commits are not "
                    "crash-safe (a task was applied twice, or only partly)", total, after.words)
    files = {t.path for t in job.tasks}
    res = Result(counts=counts, files=len(files), bytes=after.done_bytes, seconds=seconds,
                 errors=job.errors + dead)
    after.resubmits = resubmits
    return res, after
