"""The client side of a job: plan it, submit it (idempotently), follow it, read the result and
check it end to end before calling it exact.

A job's plan id is a hash of what makes its inputs what they are: the data root, every task's
path and byte range, and each file's identity (size, mtime, ctime, inode, device; or a hash of
its content with ``fingerprint="content"``: wordcount.identity). The default job name is
derived from it, so submitting the same unchanged inputs again, after a client crash or a Redis
restart, continues (or reuses) the same job, and changed inputs make a new one. Every task
carries its file's identity, which the worker checks before and after reading it.

A client follows one incarnation (epoch) of its job: the one it created, or the one it found
with its plan. When that incarnation disappears, the client submits it again, unless an
operator deleted it (a tombstone names its epoch: ``JobDeletedError``, exit 9).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import events, functions, identity, keys, planner
from . import queue as queues
from .connection import Connection
from .engines import Result
from .exceptions import (
    DeadlineExceededError,
    InputChangedError,
    JobCancelledError,
    JobConflictError,
    JobDeletedError,
    JobInconsistentError,
    JobLostError,
    UsageError,
)
from .identity import FINGERPRINTS
from .planner import InputError, Task
from .protocol import CHANGED, Meta, Submitted, task_id, task_seq
from .settings import check_job_name

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    plan_id: str
    root: str
    tasks: list[Task]  # paths relative to root
    errors: list[InputError] = field(default_factory=list)  # inputs that could not be planned
    # The incarnation this client follows: the one it creates when Redis has no such job (a
    # nonce: an older incarnation's tasks are never applied to a newer one), or the one of its
    # plan that it found in Redis.
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    queue: str = "stream"  # the queue kind it is submitted to (see queue.resolve_kind)
    # The client's data root, a prefix of root: what a worker's --data-root stands for (a
    # worker reads <its data root>/<root relative to mount>/<task path>).
    mount: str = ""
    # Incarnations this client replaced (submit --fresh): if a Redis rollback brings one back,
    # it is replaced again, never followed.
    replaced: set[str] = field(default_factory=set)
    # submit --fresh: when its first call ran (ms, the clock every Function is given); any
    # incarnation created before then that a rollback brings back is replaced too, even one
    # that was deleted (or missing) at that call and so is not in ``replaced``.
    fresh_since: int = 0
    # --commit shuffle: R reduce tasks after the map tasks (0: one phase, the maps' commits
    # apply their counts). Chosen by the client that creates the incarnation: a client that
    # finds its plan in Redis follows whatever that incarnation records.
    reduces: int = 0
    # What the tasks' bytes become (wordcount.apps): part of the plan id, so the same inputs
    # under another app are another job, never a reused result.
    app: str = "wordcount"

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tasks)


def plan_job(inputs: Sequence[str], chunk_size: int, name: str | None = None,
             root: str | None = None, fingerprint: str = "stat",
             data_root: str | None = None, pack_size: int | None = None,
             app: str = "wordcount") -> Job:
    """Plan a job over ``inputs``: task paths relative to ``root`` (default: the inputs' common
    directory), each range with its file's identity, small ranges packed into tasks of up to
    ``pack_size`` bytes (``planner.pack``; 0: none; default the smaller of 4 MiB and the chunk
    size, so that packing never makes a task bigger than the chunk size asked for).
    ``data_root`` (the client's data root, WORDCOUNT_DATA_ROOT) is recorded as the job's mount
    when the root lies under it: a worker's own data root then maps it (a prefix
    substitution), whatever the job's root. ``app`` (wordcount.apps) is part of the plan."""
    if fingerprint not in FINGERPRINTS:
        raise UsageError(f"--fingerprint must be one of {', '.join(FINGERPRINTS)}")
    files, errors = planner.discover(inputs)
    root = os.path.abspath(root) if root else planner.common_root(files)
    for f in files:
        if os.path.commonpath([root, f]) != root:
            raise UsageError(f"{f} is outside the data root {root}")
    # a file whose real path leaves the root (a symbolic link pointing out) is one a worker
    # refuses to read: never planned, named as the serial engine would name an unreadable one
    inside = planner.resolver(root)
    for f in list(files):
        try:
            inside(os.path.relpath(f, root))
        except PermissionError as exc:
            files.remove(f)
            errors.append(planner.InputError(f, planner.describe(exc)))
    if not files:
        raise UsageError("nothing to count: every input file leaves the data root "
                         f"{root} (symbolic links pointing out of it)")
    mount = root
    if data_root:
        data_root = os.path.abspath(data_root)
        if os.path.commonpath([data_root, root]) == data_root:
            mount = data_root
    from . import apps

    tasks, plan_errors = planner.plan(files, chunk_size, apps.get(app).line_records)
    digest = hashlib.sha256(f"app\0{app}\nroot\0{root}\n".encode("utf-8", "surrogateescape"))
    by_file: dict[str, list[Task]] = {}
    for t in tasks:
        by_file.setdefault(t.path, []).append(t)
    planned = []
    for path in sorted(by_file):
        digest.update(f"file\0{os.path.relpath(path, root)}\0"
                      f"{identity.file_identity(path, fingerprint)}\n"
                      .encode("utf-8", "surrogateescape"))
    for path, own in by_file.items():  # (in the planner's order)
        idents = identity.task_identities(path, own, fingerprint)
        planned += [Task(os.path.relpath(t.path, root), t.start, t.end, ident)
                    for t, ident in zip(own, idents, strict=True)]
    if pack_size is None:
        pack_size = min(planner.DEFAULT_PACK_SIZE, chunk_size)
    planned = planner.pack(planned, pack_size)
    for t in planned:
        if t.parts:
            digest.update(f"pack\0{len(t.parts)}\n".encode())
        for r in t.ranges():
            digest.update(f"{r.path}\0{r.start}\0{r.end}\n".encode("utf-8", "surrogateescape"))
    plan_id = digest.hexdigest()[:16]
    job = check_job_name(name) if name else f"job-{plan_id}"
    return Job(job, plan_id, root, planned, errors + plan_errors, mount=mount, app=app)


def replace_mode(job: Job, first: bool) -> str:
    """wc_submit's replace mode for this client's call: "*" for the first call of
    ``submit --fresh``; then "<fresh_since>,e1,e2," (the incarnations it replaced, and any
    created before it began); "" for a client that never replaced anything."""
    if first:
        return "*"
    if not (job.replaced or job.fresh_since):
        return ""
    return f"{job.fresh_since or ''}," + "".join(f"{e}," for e in sorted(job.replaced))


def batch_end(tasks: Sequence[Task], start: int, limit: int) -> int:
    """Where a submission batch that begins at ``tasks[start]`` ends: at most ``limit`` ranges
    (a packed task counts as its parts, so a batch of packs stays as small as one of plain
    tasks), and at least one task."""
    end, ranges = start, 0
    while end < len(tasks) and (end == start or ranges + len(tasks[end].ranges()) <= limit):
        ranges += len(tasks[end].ranges())
        end += 1
    return end


def submit(conn: Connection, job: Job, fresh: bool = False,
           on_batch: Callable[[Submitted], None] | None = None) -> int:
    """Submit every task not yet in Redis, in batches of ``settings.submit_batch`` ranges
    (``batch_end``); safe to repeat at any time. Returns tasks added. ``fresh`` (``submit
    --fresh``): the first call replaces any other incarnation of the job (any plan),
    atomically.

    Gap-free: each call adds only the next tasks of the job's sequence and answers how many the
    job holds; the client goes on from there. So a job that vanished between two batches
    (Redis restarted with no data, or from a snapshot older than the batches before it) is
    filled from its first task again, never left with a hole. ``on_batch`` is called with each
    call's reply (a progress hook; the fault harness acts between batches with it)."""
    if not job.tasks:
        raise UsageError("nothing to count: no readable input file")
    errors = json.dumps([[e.path, e.error] for e in job.errors])  # (ASCII: any file name)
    batch, total, added, seq = conn.settings.submit_batch, len(job.tasks), 0, 1
    first = fresh
    if fresh:
        job.fresh_since = functions.now_ms()
    while True:
        reply = functions.submit(
            conn, job.name, plan_id=job.plan_id, epoch=job.epoch, total=total,
            total_bytes=job.total_bytes, root=job.root, mount=job.mount, kind=job.queue,
            first_seq=seq, tasks=job.tasks[seq - 1:batch_end(job.tasks, seq - 1, batch)],
            errors=errors,
            replace=replace_mode(job, first), reduces=job.reduces, app=job.app)
        first = False
        if reply.replaced:
            job.replaced.add(reply.replaced)
            log.info("job %s: replaced its incarnation %s", job.name, reply.replaced)
        if reply.epoch != job.epoch:  # another client's incarnation of our plan: its R too,
            # so that re-creating it under that epoch (after Redis lost it) keeps what workers
            # know of that epoch (a shuffle job's partitions)
            job.reduces = int(conn.call(lambda r: r.hget(keys.meta(job.name), Meta.REDUCES))
                              or 0)
        job.epoch = reply.epoch  # the incarnation in Redis: ours, or one of our plan
        added += reply.added
        if on_batch is not None:
            on_batch(reply)
        if reply.state == "cancelled":
            raise JobCancelledError(f"job {job.name} was cancelled: submit it with --fresh to "
                                    "count it again")
        if reply.submitted >= total:
            return added
        seq = reply.submitted + 1


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
    plan: str = ""
    epoch: str = ""
    queue: str = ""
    created_ms: int = 0
    finished_ms: int = 0
    reduces: int = 0  # a shuffle job's R (0: one phase)
    phase: str = ""  # a shuffle job's: "map" | "reduce"
    shuffled: int = 0  # maps whose output went to the partitions
    shuffled_words: int = 0  # their words
    reduced: int = 0  # words the reduce tasks applied
    app: str = "wordcount"  # what the tasks' bytes become (wordcount.apps)
    resubmits: int = 0  # client-side: times the job had to be resubmitted
    check: dict[str, object] = field(default_factory=dict)  # client-side: the self-check

    root: str = ""
    mount: str = ""
    errors: str = "[]"  # JSON [[path, why], ...]: inputs the submitting client could not plan
    # the incarnations an operator deleted (the tombstone's list, newest first), or ()
    deleted: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state == "done"

    @property
    def all_tasks(self) -> int:
        """Every task the job runs: its plan's, and a shuffle job's reduces."""
        return self.total + self.reduces

    @property
    def job_seconds(self) -> float:
        """The job's own time: from its creation to its end (or to now, while it runs)."""
        if not self.created_ms:
            return 0.0
        end = self.finished_ms or int(time.time() * 1000)
        return max(0.0, (end - self.created_ms) / 1000)


def parse_meta(meta: dict[str, str]) -> dict[str, object]:
    """The meta hash's fields as Progress takes them (texts as they are, the rest as ints)."""
    fields = Progress.__dataclass_fields__
    out: dict[str, object] = {k: (v if k in Meta.TEXT else int(v)) for k, v in meta.items()
                              if k in fields and k not in ("resubmits", "check", "deleted")}
    out.setdefault(Meta.STATE, "running")
    out.setdefault(Meta.QUEUE, "stream")
    return out


def progress(conn: Connection, name: str) -> Progress:
    def run(r) -> list:  # one round trip: this is polled several times a second
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(keys.meta(name))
        pipe.hget(keys.deleted(), name)
        queues.queue_pending(pipe, name)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[:2]:
            if isinstance(reply, Exception):
                raise reply  # MOVED, no leader, ...: for the one retry policy
        return replies
    meta, tombstone, *pending = conn.call(run)
    deleted = tuple(tombstone.split()[2:]) if tombstone else ()  # "<ms> <how> <epoch>..."
    if not meta:
        return Progress(deleted=deleted)
    values = parse_meta(meta)
    return Progress(pending=queues.pending_count(str(values[Meta.QUEUE]), *pending),
                    deleted=deleted, **values)  # type: ignore[arg-type]


class Follower:
    """Shows progress: a live bar (rich) on a terminal, a log line every few seconds otherwise."""

    def __init__(self, job: Job, quiet: bool = False) -> None:
        self.job = job
        self.quiet = quiet
        self.live = sys.stderr.isatty() and not quiet
        self.started = time.monotonic()
        self._last_line = 0.0
        self._bar = None
        self._first_bytes: int | None = None  # done when we began following (a resumed job)

    def __enter__(self) -> Follower:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            # on stderr (stdout is the result's), as wide as the terminal: the bar takes what
            # the figures leave
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(bar_width=None),
                            TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True, expand=True)
            self._bar.start()
            self._task = self._bar.add_task(self.job.name, total=len(self.job.tasks),
                                            detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def detail(self, p: Progress, elapsed: float) -> str:
        """held (by workers now), then what went wrong if anything did, then the rate of what
        was counted while we watched (a resumed job's earlier bytes are not ours)."""
        if self._first_bytes is None:
            self._first_bytes = p.done_bytes
        since = p.done_bytes - self._first_bytes
        if elapsed > 0.5 or since > 0:  # what was counted while we watched
            mb_s = since / max(elapsed, 0.05) / 1e6
        else:  # finished before we watched at all (a reused result): its own average -- not
            # after a requeue, whose job's age includes the time its dead letters waited
            mb_s = p.done_bytes / p.job_seconds / 1e6 if p.finished and p.job_seconds else 0.0
        parts = [f"{p.pending} held"] + [f"{n} {what}" for n, what in (
            (p.stolen, "stolen"), (p.backups, "backups"), (p.dead, "dead")) if n]
        return ", ".join(parts) + f", {mb_s:.1f} MB/s"

    def update(self, p: Progress) -> None:
        elapsed = time.monotonic() - self.started
        detail = self.detail(p, elapsed)
        if self._bar is not None:
            self._bar.update(self._task, total=p.all_tasks or len(self.job.tasks),
                             completed=p.done + p.dead, detail=detail)
        elif not self.quiet and (time.monotonic() - self._last_line >= 2 or p.finished):
            self._last_line = time.monotonic()
            phase = f" ({p.phase} phase)" if p.phase and not p.finished else ""
            print(f"[{elapsed:6.1f}s] {self.job.name}: {p.done + p.dead}/{p.all_tasks} tasks "
                  f"settled{phase}, {detail}", file=sys.stderr, flush=True)


def follow(conn: Connection, job: Job, p: Progress) -> bool:
    """Decide, from one poll, what a client following ``job`` does: True when the job must be
    submitted (again) first; False when ``p`` is the incarnation to follow. Raises when the job
    can't be followed: an operator deleted it (JobDeletedError), another plan replaced it
    (JobConflictError), it was cancelled (JobCancelledError)."""
    if job.epoch in p.deleted:  # (or one that had replaced it): whatever exists by now
        raise JobDeletedError(f"job {job.name} was deleted (wordcount delete) while this "
                              "client followed it: it is not submitted again")
    if p.state == "missing":
        return True  # Redis lost it (restarted with no data, or from an older snapshot)
    if p.epoch in job.replaced or (p.epoch != job.epoch and p.created_ms < job.fresh_since):
        return True  # a rollback brought back an incarnation we replaced (or would have,
        # created before our --fresh): replace it again
    if p.plan != job.plan_id:
        raise JobConflictError(f"job {job.name} was replaced by another plan while we waited "
                               "for it")
    job.epoch = p.epoch  # ours, or another client's of our plan (submit --fresh): follow it
    job.reduces = p.reduces  # (and its mode: re-created under that epoch, it stays the same)
    if p.state == "cancelled":
        raise JobCancelledError(f"job {job.name} was cancelled (wordcount cancel): "
                                f"{p.done + p.dead}/{p.total} tasks had settled")
    return p.submitted < p.total  # partly submitted: the client that submitted it died


class NoWorkerHint:
    """Says once, on stderr, that nothing can make a job progress: no task settled or held for
    a while and no worker registered (``wordcount workers`` would list none alive)."""

    AFTER_S = 3.0

    def __init__(self, conn: Connection, job: Job, quiet: bool) -> None:
        self.conn, self.job, self.quiet = conn, job, quiet
        self.since = time.monotonic()
        self.seen: tuple[int, int] | None = None
        self.said = False

    def check(self, p: Progress) -> None:
        moved = (p.done + p.dead, p.pending)
        if moved != self.seen or p.pending or p.finished:
            self.seen, self.since = moved, time.monotonic()
            return
        if self.said or self.quiet or time.monotonic() - self.since < self.AFTER_S:
            return
        from . import registry

        self.since = time.monotonic()  # (read the registry at most every AFTER_S)
        try:
            now = int(time.time() * 1000)  # (the workers' reports carry their own clocks)
            alive = [r for r in registry.reports(self.conn, now) if not r.lost(now)]
        except Exception:  # noqa: BLE001 - a hint: never a reason for the job to fail
            return
        if not alive:
            self.said = True
            print(f"wordcount: no worker is registered, so nothing takes the tasks of job "
                  f"{self.job.name}: start one (`wordcount worker`; in the compose cluster "
                  "`docker compose up -d worker`); this command keeps waiting (`wordcount wait "
                  f"{self.job.name}` picks the job up later)", file=sys.stderr, flush=True)


def wait(conn: Connection, job: Job, poll_s: float = 0.1, quiet: bool = False,
         timeout_s: float | None = None, on_poll: Callable[[], None] | None = None) -> Progress:
    """Follow the job until it is done, resubmitting it whenever Redis has lost all or part of
    it (a restart from an older snapshot, or from nothing); see ``follow``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    resubmits = 0
    idle = NoWorkerHint(conn, job, quiet)
    with Follower(job, quiet) as follower:
        while True:
            p = progress(conn, job.name)
            idle.check(p)
            if follow(conn, job, p):
                resubmits += 1
                how = ("missing" if p.state == "missing" else
                       "partly submitted" if p.epoch not in job.replaced else
                       "an incarnation it replaced")
                log.warning("job %s is %s in Redis: resubmitting (idempotent)", job.name, how)
                submit(conn, job)
                events.record(conn, "resubmit", f"client-{socket.gethostname()}-{os.getpid()}",
                              f"job {job.name} was {how} in Redis (a restart lost what "
                              "its last snapshot did not hold): resubmitted", job=job.name)
                continue
            follower.update(p)
            if p.finished:
                if p.pending:
                    raise JobInconsistentError(
                        f"job {job.name} marked done with {p.pending} tasks still pending: "
                        "protocol violation")
                p.resubmits = resubmits
                return p
            if on_poll is not None:
                on_poll()
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceededError(f"job {job.name} did not finish within "
                                            f"{timeout_s:g} s")
            time.sleep(poll_s)


@dataclass
class Snapshot:
    """Everything a result is made of, read while the job stayed finished and unchanged."""

    progress: Progress
    counts: Counter[str]
    done: dict[str, int]  # task id -> word total reported by its accepted commit
    dead: dict[str, str]  # task id -> reason
    merges: int  # accepted staged pieces not yet applied


READ_CHUNK = 20_000  # words of the result table per ZRANGE


def _read(conn: Connection, name: str
          ) -> tuple[Counter[str], dict[str, int], dict[str, str], int]:
    def run(r):
        # by rank, in chunks: a walk along the sorted set's skiplist, where ZSCAN walks its hash
        # table in memory order (2 M words: 0.4 s of Redis CPU against 2.4 s, and 2.2 s against
        # 4.0 s here). A table that changed between two chunks is caught like any change of a
        # finished job (read_finished), and by the self-check's word total.
        counts: Counter[str] = Counter()
        table = keys.counts(name)
        size = r.zcard(table)
        for start in range(0, size, READ_CHUNK):
            dict.update(counts, {word: int(score) for word, score in  # (set, not add)
                                 r.zrange(table, start, start + READ_CHUNK - 1,
                                          withscores=True)})
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(keys.done(name))
        pipe.hgetall(keys.dead(name))
        pipe.scard(keys.merges(name))
        done, dead, merges = pipe.execute()
        return counts, {k: int(v) for k, v in done.items()}, dead, int(merges)
    return conn.call(run)


def fetch_counts(conn: Connection, name: str) -> Counter[str]:
    return _read(conn, name)[0]


def finished_version(conn: Connection, name: str) -> tuple[str, int]:
    """(epoch, finish ms) of job ``name``'s incarnation in Redis: which finished table it has
    (("", 0) when it has none)."""
    epoch, finished = conn.call(lambda r: r.hmget(keys.meta(name), Meta.EPOCH,
                                                  Meta.FINISHED_MS))
    return epoch or "", int(finished or 0)


def finished_table(conn: Connection, name: str) -> tuple[Counter[str], tuple[str, int]]:
    """The table of job ``name``, finished whole: done, nothing set aside, its table summing to
    what its accepted commits applied, and the same incarnation before and after the read
    (what an iterative app's next round reads), with its version (``finished_version``).
    apps.TaskError when it is not (never submitted, still running, rolled back by a Redis
    restart, incomplete)."""
    from .apps import TaskError

    before = progress(conn, name)
    if not before.finished or before.dead:
        raise TaskError(f"PREREQ: the table of job {name} is not a finished, complete one "
                        f"({before.state}, {before.dead} tasks set aside): an earlier round "
                        "must be counted (again) first")
    counts = _read(conn, name)[0]
    after = progress(conn, name)
    applied = before.reduced + before.words - before.shuffled_words
    if (after.epoch, after.finished_ms) != (before.epoch, before.finished_ms) \
            or sum(counts.values()) != applied:
        raise TaskError(f"PREREQ: the table of job {name} changed while it was read, or does "
                        "not sum to what its commits applied")
    return counts, (after.epoch, after.finished_ms)


def read_finished(conn: Connection, job: Job, waited: Progress | None = None,
                  on_poll: Callable[[], None] | None = None, timeout_s: float | None = None
                  ) -> Snapshot:
    """Read the finished job. The read is retried (after waiting for the job again, with
    ``on_poll`` on each poll as in ``wait``: a local pool is tended, its workers may have
    exited once the job was done, and ``timeout_s`` for each such wait) if Redis restarted
    meanwhile: the job must be finished, and identically so (same epoch, same finish time),
    before and after everything is read."""
    resubmits = waited.resubmits if waited else 0
    for _ in range(5):
        before = progress(conn, job.name)
        if not before.finished or before.plan != job.plan_id or before.epoch != job.epoch:
            before = wait(conn, job, quiet=True, on_poll=on_poll, timeout_s=timeout_s)
            resubmits += before.resubmits
        counts, done, dead, merges = _read(conn, job.name)
        after = progress(conn, job.name)
        if (after.finished and after.finished_ms == before.finished_ms
                and after.epoch == before.epoch):
            after.resubmits = resubmits
            return Snapshot(after, counts, done, dead, merges)
        log.warning("job %s changed while its result was read (Redis restart?): reading again",
                    job.name)
    raise JobLostError(f"could not read a stable result for job {job.name}")


def task_ids(job: Job, reduces: int = 0) -> list[str]:
    """The task ids of a plan, in order (deterministic: 0-<seq>), then those of its
    ``reduces`` reduce tasks (a shuffle job)."""
    return [task_id(seq) for seq in range(1, len(job.tasks) + reduces + 1)]


def is_map(job: Job, tid: str) -> bool:
    """Whether task ``tid`` is one of the plan's (not a shuffle job's reduce task)."""
    return task_seq(tid) <= len(job.tasks)


def check(job: Job, snap: Snapshot) -> dict[str, object]:
    """The end-to-end self-check: invariants of the commit protocol that a lost, doubled or
    partly applied task breaks. Raises JobInconsistentError naming the first broken one;
    returns the figures checked (they go into the JSON result)."""
    p, done, dead = snap.progress, snap.done, snap.dead
    in_table = sum(snap.counts.values())
    committed = sum(n for t, n in done.items() if is_map(job, t))
    reduced = sum(n for t, n in done.items() if not is_map(job, t))
    seq_of = {tid: i for i, tid in enumerate(task_ids(job, p.reduces))}
    done_bytes = sum(job.tasks[seq_of[t]].nbytes for t in done
                     if t in seq_of and is_map(job, t))
    figures: dict[str, object] = {
        "words_in_table": in_table, "words_committed": committed, "words_meta": p.words,
        "tasks": len(job.tasks), "tasks_done": len(done), "tasks_dead": len(dead),
        "bytes_done": done_bytes, "bytes_meta": p.done_bytes}
    # A shuffle job's table is what its reduces applied, plus the maps that settled after the
    # reduce phase began (requeued: applied directly); a one-phase job's, what its maps did.
    applied = p.reduced + p.words - p.shuffled_words
    if p.reduces:
        figures.update(reduces=p.reduces, words_shuffled=p.shuffled_words,
                       words_reduced=p.reduced, words_reduced_tasks=reduced)
    broken: list[str] = []
    if in_table != applied:
        broken.append(f"the result table holds {in_table:,} words but the accepted commits "
                      f"reported {applied:,} (a task applied twice, partly, or not at all)")
    if (committed != p.words or reduced != p.reduced or len(done) != p.done
            or len(dead) != p.dead):
        broken.append(f"settled tasks disagree with the job counters: {len(done)} done "
                      f"({committed:,} words{f', reduced {reduced:,}' if p.reduces else ''}) "
                      f"and {len(dead)} dead vs {p.done} done ({p.words:,} words"
                      f"{f', reduced {p.reduced:,}' if p.reduces else ''}) and {p.dead} dead")
    dead_reduces = [t for t in dead if not is_map(job, t)]
    if p.reduces and not dead_reduces and p.reduced != p.shuffled_words:
        broken.append(f"the reduce tasks applied {p.reduced:,} words but the maps sent "
                      f"{p.shuffled_words:,} to the partitions (a word lost or reduced twice)")
    unknown = sorted((set(done) | set(dead)) - set(seq_of))
    both = sorted(set(done) & set(dead))
    missing = sorted(set(seq_of) - set(done) - set(dead), key=lambda t: seq_of[t])
    if unknown or both or missing:
        broken.append(f"tasks not settled exactly once: {len(missing)} never settled "
                      f"{missing[:5]}, {len(both)} both done and dead, {len(unknown)} unknown "
                      f"{unknown[:5]}")
    if done_bytes != p.done_bytes:
        broken.append(f"the done tasks span {done_bytes:,} bytes of the plan but the workers "
                      f"read {p.done_bytes:,} (a commit for other task contents)")
    if snap.merges:
        broken.append(f"{snap.merges} accepted staged pieces were never applied")
    figures["ok"] = not broken
    if broken:
        raise JobInconsistentError(f"job {job.name} finished, but its result failed the "
                                   f"self-check: {'; '.join(broken)}. Not reporting it as "
                                   "exact.")
    return figures


def run_rounds(conn: Connection, app, base: Job, plan: Callable[[str, str], Job],
               options: dict[str, object], quiet: bool = False,
               on_poll: Callable[[], None] | None = None, fresh: bool = False
               ) -> tuple[Result, dict[str, object]]:
    """An iterative app (apps.App.iterate): its rounds, each one job of ``base``'s inputs
    planned by ``plan(app spec, job name)`` and named ``base.name`` + the round's suffix, on
    ``base``'s queue and with its reduces; each submitted, waited for and self-checked as any
    job (a finished round, e.g. after a client restart, is reused). Returns the app's final
    table as a Result and what the app adds to the JSON result. ``fresh`` (submit --fresh):
    each round counted again, once."""
    started = time.monotonic()
    refreshed: set[str] = set()

    def run_round(spec: str, suffix: str, again: bool) -> tuple[Result, str]:
        job = plan(spec, base.name + suffix)
        job.queue, job.reduces = base.queue, base.reduces
        submit(conn, job, fresh=again or (fresh and suffix not in refreshed))
        refreshed.add(suffix)
        waited = wait(conn, job, quiet=quiet, on_poll=on_poll)
        res, _ = result(conn, job, waited.job_seconds, waited)
        return res, job.name

    counts, extra = app.iterate(run_round, options)
    files = {r.path for t in base.tasks for r in t.ranges()}
    return (Result(counts=counts, files=len(files), bytes=base.total_bytes,
                   seconds=time.monotonic() - started, errors=list(base.errors)),
            {"job": base.name, "tasks": len(base.tasks), **extra})


def dead_letters(job: Job, dead: dict[str, str],
                 named: Callable[[Task, str], bool] = lambda r, reason: True
                 ) -> list[InputError]:
    """One error per file of each dead-lettered task (a pack: every file, none of them was
    counted), or only the ranges ``named(range, reason)`` picks."""
    out = []
    for tid, reason in sorted(dead.items(), key=lambda kv: task_seq(kv[0])):
        if not is_map(job, tid):  # a shuffle job's reduce task: a partition of the words
            r = task_seq(tid) - len(job.tasks) - 1
            out.append(InputError(f"(reduce task {tid})", f"partition {r} set aside: {reason}; "
                                  "the words of that partition are not in the table"))
            continue
        t = job.tasks[task_seq(tid) - 1]
        where = "(packed, [{}:{}])" if t.parts else "[{}:{}]"
        out += [InputError(os.path.join(job.root, r.path), f"task {tid} "
                           f"{where.format(r.start, r.end)} set aside: {reason}")
                for r in t.ranges() if not t.parts or named(r, reason)]
    return out


def changed_inputs(job: Job, dead: dict[str, str]) -> list[InputError]:
    """The dead letters of tasks whose file was not what the plan recorded."""
    changed = {tid: reason for tid, reason in dead.items() if reason.startswith(CHANGED)}
    # a pack: the file its worker found changed (the reason names it), not all of them
    return dead_letters(job, changed, lambda r, reason: f": {r.path} [" in reason)


def result(conn: Connection, job: Job, seconds: float, waited: Progress | None = None,
           on_poll: Callable[[], None] | None = None, timeout_s: float | None = None
           ) -> tuple[Result, Progress]:
    """The finished job as a Result, after the self-check (JobInconsistentError if it fails;
    its figures are in the returned Progress's ``check``). InputChangedError when an input
    changed while the job ran: its other tasks may have been counted from the old version, so
    no table is a result of the inputs as they are, or as they were."""
    snap = read_finished(conn, job, waited, on_poll, timeout_s)
    snap.progress.check = check(job, snap)
    changed = changed_inputs(job, snap.dead)
    if changed:
        files = sorted({e.path for e in changed})
        raise InputChangedError(
            f"job {job.name}: {len(files)} input file(s) changed while the job ran, so no "
            "result is printed (it would count two versions of a file): "
            + "; ".join(f"{e.path}: {e.error}" for e in changed[:5])
            + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
            + ". Submit the inputs again to count them as they are now (a new plan).")
    # the files counted (in part): every range of a done task
    files = {r.path for tid in snap.done if is_map(job, tid)
             for r in job.tasks[task_seq(tid) - 1].ranges()}
    res = Result(counts=snap.counts, files=len(files), bytes=snap.progress.done_bytes,
                 seconds=seconds, errors=job.errors + dead_letters(job, snap.dead))
    return res, snap.progress
