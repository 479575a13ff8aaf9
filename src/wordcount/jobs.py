"""Operating jobs in Redis, as an operator does with ``rq info`` or ``celery inspect``: list them
(running, done and cancelled), read a job's plan back (``result JOB`` / ``wait JOB`` for a job
submitted with ``--no-wait``), cancel, delete, requeue its dead letters, and remove finished
jobs after ``Settings.keep_jobs_s``.

Every job created is listed in the registry (``keys.registry()``, written by the submit
Function in the same call that creates the job, so a snapshot never holds one without the
other). The plan of a job lives in its specs hash (task id -> [path, start, end, identity, parts]),
written in the same calls as its tasks. Every action names the incarnation (epoch) the operator
looked at, so a retried call never acts on a job created after it; a delete is one call for
every fixed key of the job (then a sweep of its old stage pieces), and leaves a tombstone so
that a client following the job stops instead of submitting it again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from . import client, functions, keys
from .connection import Connection
from .exceptions import JobCancelledError, JobNotFinishedError, NoSuchJobError
from .planner import InputError, Task
from .protocol import Applied, Meta, parse_parts, task_seq
from .settings import check_job_name

log = logging.getLogger(__name__)


@dataclass
class JobRow:
    """One line of ``wordcount jobs``."""

    name: str
    progress: client.Progress
    distinct: int  # words in its table so far

    def as_dict(self) -> dict[str, object]:
        p = self.progress
        # held: by workers now -- of a running job only (a cancelled job's leases are left to
        # lapse: its workers drop those tasks, and nothing holds them any more)
        held = p.pending if p.state == "running" else 0
        # total: every task, a shuffle job's reduces too (done counts them as they settle)
        return {"job": self.name, "state": p.state, "epoch": p.epoch, "queue": p.queue,
                "app": p.app,
                "total": p.all_tasks,
                "reduces": p.reduces, "phase": p.phase, "submitted": p.submitted,
                "done": p.done, "dead": p.dead, "pending": held,
                "bytes": p.bytes, "done_bytes": p.done_bytes, "words": p.words,
                "distinct": self.distinct, "stolen": p.stolen, "backups": p.backups,
                "duplicates": p.duplicates, "created_ms": p.created_ms,
                "finished_ms": p.finished_ms, "seconds": round(p.job_seconds, 3)}


def names(conn: Connection) -> list[str]:
    """Every job in Redis, oldest first (the registry), and any active job missing from it."""
    def run(r):
        pipe = r.pipeline(transaction=False)
        pipe.zrange(keys.registry(), 0, -1)
        pipe.hkeys(keys.active())
        return pipe.execute()
    listed, active = conn.call(run)
    return list(listed) + sorted(set(active) - set(listed))


def row(conn: Connection, name: str) -> JobRow:
    p = client.progress(conn, name)
    distinct = int(conn.call(lambda r: r.zcard(keys.counts(name)))) if p.state != "missing" else 0
    return JobRow(name, p, distinct)


def rows(conn: Connection, only: str | None = None) -> list[JobRow]:
    return [row(conn, name) for name in ([only] if only else names(conn))]


def require(conn: Connection, name: str) -> client.Progress:
    """The job's progress; NoSuchJobError (exit 2) when Redis has no such job."""
    check_job_name(name)
    p = client.progress(conn, name)
    if p.state == "missing":
        raise NoSuchJobError(f"no job {name!r} in Redis (never submitted, deleted, or expired "
                             "after it finished); `wordcount jobs` lists them")
    return p


def load(conn: Connection, name: str) -> client.Job:
    """The job as its submitting client planned it, read back from Redis (meta + specs), so
    that it can be followed, resubmitted after a Redis restart, and checked end to end."""
    p = require(conn, name)
    specs = conn.call(lambda r: r.hgetall(keys.specs(name)))
    # (a shuffle job's reduce tasks, after its map phase, are not part of its plan)
    specs = {tid: spec for tid, spec in specs.items() if task_seq(tid) <= p.total}
    if len(specs) != p.total or p.submitted != p.total:
        raise JobNotFinishedError(
            f"job {name} is only partly in Redis ({len(specs)} of {p.total} tasks: its "
            "submission was interrupted, or Redis restarted from an older snapshot): submit "
            "its inputs again to complete it")
    tasks = []
    for tid in sorted(specs, key=task_seq):
        path, start, end, ident, parts = json.loads(specs[tid])
        tasks.append(Task(path, int(start), int(end), ident, parse_parts(parts)))
    errors = [InputError(path, why) for path, why in json.loads(p.errors or "[]")]
    return client.Job(name, p.plan, p.root, tasks, errors, epoch=p.epoch, queue=p.queue,
                      mount=p.mount or p.root, reduces=p.reduces, app=p.app)


def _incarnation(conn: Connection, name: str, epoch: str | None) -> client.Progress:
    """The job as it is now; ``epoch`` (the incarnation the caller saw: the dashboard's page),
    when given, must be the one it is (else NoSuchJobError: replaced or deleted since). The
    Function that acts checks the epoch again, in the call that acts."""
    p = require(conn, name)
    if epoch is not None and p.epoch != epoch:
        raise NoSuchJobError(f"job {name!r} is not the incarnation {epoch} any more (replaced "
                             "or deleted meanwhile)")
    return p


def cancel(conn: Connection, name: str, epoch: str | None = None) -> bool:
    """Cancel a running job: True if this call cancelled it, False if it was not running
    (``epoch``: only that incarnation of it, see _incarnation)."""
    p = _incarnation(conn, name, epoch)
    outcome = functions.cancel(conn, name, p.epoch)
    if outcome is Applied.GONE:
        raise NoSuchJobError(f"no job {name!r} in Redis (deleted or replaced meanwhile)")
    return outcome is Applied.APPLIED


def delete(conn: Connection, name: str, force: bool = False, epoch: str | None = None) -> int:
    """Delete every key of a job that is not running (``force``: a running one too), in one
    call, then sweep its stage pieces; returns the stage pieces swept. A running job is refused
    without ``force`` (JobRunningError): a client waits for it. ``epoch``: see _incarnation."""
    p = _incarnation(conn, name, epoch)
    if functions.delete(conn, name, p.epoch, force=force) is Applied.GONE:
        raise NoSuchJobError(f"no job {name!r} in Redis (deleted or replaced meanwhile)")
    return sweep(conn, name)


def sweep(conn: Connection, name: str) -> int:
    """Delete the stage pieces of the job's incarnations that no longer exist (left by a
    deleted or replaced one); returns how many."""
    found = conn.call(lambda r: list(r.scan_iter(match=keys.stage_pattern(name), count=1000)))
    return sum(functions.sweep(conn, name, found[i:i + 500]) for i in range(0, len(found), 500))


def still_unreadable(conn: Connection, name: str) -> list[str]:
    """The files of the job's dead-lettered tasks that cannot be read from here (where this
    operator sees the job's root): requeueing them before their cause is fixed sets them aside
    again. Files under another machine's view of the root are not judged ([])."""
    import os

    job = load(conn, name)
    if not os.path.isdir(job.root):
        return []
    dead = conn.call(lambda r: r.hkeys(keys.dead(name)))
    out = []
    for tid in sorted((t for t in dead if task_seq(t) <= len(job.tasks)), key=task_seq):
        for r in job.tasks[task_seq(tid) - 1].ranges():
            path = os.path.join(job.root, r.path)
            if path not in out and not os.access(path, os.R_OK):
                out.append(path)
    return out


def requeue(conn: Connection, name: str, epoch: str | None = None) -> int:
    """Give the job's dead-lettered tasks new attempts (their cause fixed); returns how many.
    ``epoch``: see _incarnation."""
    p = _incarnation(conn, name, epoch)
    if p.state == "cancelled":
        raise JobCancelledError(f"job {name} was cancelled: submit it again (--fresh)")
    dead = conn.call(lambda r: r.hkeys(keys.dead(name)))
    if not dead:
        return 0
    n = functions.requeue(conn, name, p.queue, sorted(dead, key=task_seq), p.epoch)
    if n < 0:
        raise NoSuchJobError(f"no job {name!r} in Redis (deleted or replaced meanwhile)")
    return n


def expire(conn: Connection, keep_s: float, now_ms: int | None = None) -> list[str]:
    """Delete the jobs that finished (done or cancelled) more than ``keep_s`` ago, and
    tombstones older than that; returns the jobs' names. A job listed in the registry whose meta
    is gone is dropped from it."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    before = now_ms - int(keep_s * 1000)
    listed = names(conn)

    def read(r):  # one round trip for all of them: this runs at every submit
        pipe = r.pipeline(transaction=False)
        for name in listed:
            pipe.hmget(keys.meta(name), Meta.STATE, Meta.FINISHED_MS)
        pipe.hgetall(keys.deleted())
        return pipe.execute()
    *states, tombstones = conn.call(read)
    removed = []
    for name, (state, finished) in zip(listed, states, strict=True):
        if state is None:
            conn.call(lambda r, name=name: r.zrem(keys.registry(), name))
        elif state != "running" and finished and int(finished) < before:
            # (atomic: a job resubmitted meanwhile is running again, and stays)
            if functions.delete(conn, name, how="expired",
                                finished_before=before) is Applied.APPLIED:
                sweep(conn, name)
                removed.append(name)
    functions.prune(conn, {name: t for name, t in tombstones.items()
                           if int(t.split(" ")[0]) < before})
    if removed:
        log.info("removed %d finished jobs older than %g s: %s", len(removed), keep_s,
                 ", ".join(removed))
    return removed
