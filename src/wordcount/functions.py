"""The commit protocol, on the client side: one typed wrapper per Redis Function in
``redis/wordcount.lua``. Only this module knows argument orders and return codes.

A task's life, on either queue: submit → take (stream: ``take`` | ``claim_stale`` |
``speculate``; lease: ``lease_claim`` | ``lease_speculate``) → heartbeat while counting →
``commit`` (or, for a huge vocabulary, ``commit_in_pieces``: ``stage`` × N +
``commit_staged`` + ``merge`` × N) or ``dead``. Settling (commit, commit_staged, dead) is one
Function for both queues: the claim's ``kind`` says which queue keys it passes. A job as a
whole is created (``submit``, in gap-free batches) and deleted (``delete``, then ``sweep`` of
its old stage pieces) in one call each. Every call passes the library identity (protocol and
build) and the caller's clock (``now``): the Functions never read the time. Every error reply
of the library is decoded in one table, ``_ERRORS``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from . import keys
from .connection import IDENTITY, Connection
from .exceptions import (
    JobCancelledError,
    JobConflictError,
    JobDeletedError,
    JobRunningError,
    PhaseError,
    PieceLostError,
    ProtocolMismatchError,
    WordcountError,
)
from .planner import Task
from .protocol import Applied, Claimed, Submitted, now_ms, parts_text

log = logging.getLogger(__name__)

# Every error reply of the library, decoded here and nowhere else: its code (the reply's first
# word), and what the caller gets, made from the job it named and the reply's text after the
# code. (The Functions' other outcomes are return codes: protocol.Applied.)
_ERRORS: dict[str, Callable[[str, str], WordcountError]] = {
    # a caller of another protocol/build (the library was replaced under us)
    "WCVERSION": lambda job, text: ProtocolMismatchError(
        f"WCVERSION {text}: the library in Redis was replaced by another version; restart "
        "with the matching version of wordcount"),
    # wc_submit: the job exists with another plan (or on the other queue)
    "WCCONFLICT": lambda job, text: JobConflictError(
        f"job {job!r} already exists with different inputs, another app (--app) or on another "
        "queue; choose another --job name or --fresh"),
    # wc_submit: an operator deleted the incarnation this client follows
    "WCDELETED": lambda job, text: JobDeletedError(
        f"job {job} was deleted (wordcount delete) while this client followed it: not "
        "submitted again"),
    # wc_delete without force, of a running job
    "WCRUNNING": lambda job, text: JobRunningError(
        f"job {job} is running: cancel it first (wordcount cancel {job}), or delete --force"),
    # wc_requeue of a cancelled job
    "WCCANCELLED": lambda job, text: JobCancelledError(text),
    # a commit that does not fit the shuffle job's phase (a plain commit of a map in the map
    # phase; a map commit of the wrong number of pieces)
    "WCPHASE": lambda job, text: PhaseError(text),
    # wc_merge: an accepted staged piece is missing (never expected: no key has a TTL)
    "WCLOST": lambda job, text: PieceLostError(text),
}


def _fcall(conn: Connection, name: str, keys_: Sequence[str], args: Sequence[object],
           job: str = "") -> Any:
    """FCALL ``name``; an error reply of the library raised as what ``_ERRORS`` makes of it."""
    try:
        return conn.fcall(name, keys_, args)
    except ResponseError as exc:
        code, _, text = str(exc).partition(" ")
        if code in _ERRORS:
            raise _ERRORS[code](job, text) from None
        raise


def submit(conn: Connection, job: str, *, plan_id: str, epoch: str, total: int,
           total_bytes: int, root: str, mount: str, kind: str, first_seq: int,
           tasks: Iterable[Task], errors: str = "[]", replace: str = "", reduces: int = 0,
           app: str = "wordcount") -> Submitted:
    """Append tasks first_seq.. of a job (creating it, as incarnation ``epoch`` on the ``kind``
    queue, when Redis has none; ``errors`` is the JSON list of inputs that could not be
    planned). Only the next tasks of the job's sequence are added: the reply's ``submitted``
    says where to go on. ``replace``: "" never replace another incarnation, "*" replace any
    (``submit --fresh``, its first call), "<since>,e1,e2," (its later calls) replace these
    (ones this client replaced before) and any created before ``since`` (ms: its first call).
    ``reduces`` > 0: a shuffle job of that many reduce tasks (when this call creates it);
    ``app``: what its tasks' bytes become (recorded when this call creates it)."""
    # paths as their bytes (a file name need not be UTF-8; the connection decodes replies with
    # surrogateescape, so they come back as the same str)
    args: list[object] = [IDENTITY, now_ms(), job, plan_id, epoch, total, total_bytes,
                          os.fsencode(root), kind, first_seq, errors, os.fsencode(mount),
                          replace, keys.GROUP, reduces, app]
    for t in tasks:
        args += [os.fsencode(t.path), t.start, t.end, t.ident, parts_text(t)]
    added, submitted, current, state, replaced = _fcall(conn, "wc_submit", keys.job_keys(job),
                                                        args, job)
    return Submitted(int(added), int(submitted), current, state, replaced or "")


def delete(conn: Connection, job: str, epoch: str = "", force: bool = False,
           how: str = "deleted", finished_before: int | None = None) -> Applied:
    """Delete the job whole (leaving a tombstone of its epoch). APPLIED: deleted; DUPLICATE:
    not deleted (``finished_before``: running, or finished later); GONE: no such job, or not
    the incarnation ``epoch``. JobRunningError: running and not ``force``."""
    return Applied(_fcall(conn, "wc_delete", keys.job_keys(job), [
        IDENTITY, now_ms(), job, epoch, "1" if force else "0", how,
        "" if finished_before is None else finished_before], job))


def sweep(conn: Connection, job: str, pieces: Sequence[str]) -> int:
    """Delete those of ``pieces`` (stage piece keys) that belong to no current incarnation of
    the job; returns how many were deleted."""
    if not pieces:
        return 0
    return int(_fcall(conn, "wc_sweep", [keys.meta(job), *pieces],
                          [IDENTITY, *(keys.stage_epoch(p) for p in pieces)]))


def prune(conn: Connection, tombstones: dict[str, str]) -> int:
    """Forget these tombstones (job -> the value read), each only if it is unchanged."""
    if not tombstones:
        return 0
    return int(_fcall(conn, "wc_prune", [keys.deleted()],
                          [IDENTITY, *(x for kv in sorted(tombstones.items()) for x in kv)]))


# -- settling a task (both queues) ----------------------------------------------------------------

def _settle(c: Claimed) -> tuple[list[str], list[object]]:
    """KEYS and the first ARGV that settling ``c`` needs (see settle_keys in the .lua file)."""
    job = c.job
    keys_ = [keys.meta(job), keys.active(), keys.merges(job), keys.done(job), keys.dead(job),
             keys.leases(job), keys.shuffle(job), keys.specs(job)]
    if c.kind == "stream":
        keys_.append(keys.tasks(job))
    else:
        keys_ += [keys.expiry(job), keys.owners(job), keys.queue(job), keys.notify(job)]
    keys_.append(keys.history(job))
    return keys_, [IDENTITY, now_ms(), c.kind, c.consumer, c.id, c.epoch, job]


def counted_text(counted_ms: int | None) -> str:
    """A commit's ARGV 11: the worker's moment (ms) its counting ended, for the job's history
    (the timeline's "counted"); '' when not known."""
    return "" if counted_ms is None else str(counted_ms)


def consumed_text(c: Claimed, maps: Sequence[str]) -> str:
    """A reduce task's commit argument: its partition and the map tasks whose pieces it
    summed ('' for any other task)."""
    return "" if c.reduce is None else " ".join([str(c.reduce), *maps])


def commit(conn: Connection, c: Claimed, pairs: Sequence[object], nbytes: int, nwords: int,
           busy_ms: int, counted_ms: int | None = None, consumed: Sequence[str] = ()
           ) -> Applied:
    """Settle the task + apply its counts + progress, in one call. ``pairs`` is a flat
    [word, count, ...] list, ``nbytes`` the bytes the worker read, ``counted_ms`` when its
    counting ended (the history's "counted"), ``consumed`` (a reduce task) the
    map tasks whose partition pieces it summed (freed by this call); the call is refused
    unless the job still has ``c.epoch``."""
    keys_, args = _settle(c)
    return Applied(_fcall(conn, "wc_commit", [*keys_, keys.counts(c.job)],
                              [*args, nbytes, nwords, busy_ms, counted_text(counted_ms),
                               consumed_text(c, consumed), *pairs]))


def map_commit(conn: Connection, c: Claimed, pieces: Sequence[bytes], nbytes: int,
               nwords: int, busy_ms: int, counted_ms: int | None = None) -> Applied:
    """Settle a shuffle job's map task, storing its output as R partition pieces
    (wordcount.shuffle); LATE when its reduce phase already began (then ``commit``)."""
    keys_, args = _settle(c)
    return Applied(_fcall(conn, "wc_map_commit", keys_,
                              [*args, nbytes, nwords, busy_ms, counted_text(counted_ms),
                               *pieces]))


def stage_keys(c: Claimed, attempt: str, pieces: int) -> list[str]:
    return [keys.stage(c.job, c.epoch, c.id, attempt, k) for k in range(pieces)]


def stage(conn: Connection, c: Claimed, key: str, pairs: Sequence[object]) -> Applied:
    """Write one piece (replacing it whole: a retry is harmless). Nothing is visible to the
    job until ``commit_staged`` accepts every piece. The attempt is no longer a candidate for
    a backup copy (it is committing)."""
    return Applied(_fcall(conn, "wc_stage", [keys.meta(c.job), key, keys.leases(c.job)],
                              [IDENTITY, c.epoch, c.id, *pairs]))


def commit_staged(conn: Connection, c: Claimed, pieces: Sequence[str], distinct: int,
                  nbytes: int, nwords: int, busy_ms: int, counted_ms: int | None = None,
                  consumed: Sequence[str] = ()) -> Applied:
    """Settle the task and accept its staged pieces, only if all of them (``distinct`` pairs in
    all) are there; RESTAGE otherwise."""
    keys_, args = _settle(c)
    return Applied(_fcall(conn, "wc_commit_staged", [*keys_, *pieces],
                              [*args, nbytes, nwords, busy_ms, distinct,
                               counted_text(counted_ms), consumed_text(c, consumed)]))


def merge(conn: Connection, job: str, epoch: str, piece: str) -> Applied:
    """Apply one accepted piece (APPLIED), or nothing if it already was (DUPLICATE)."""
    return Applied(_fcall(
        conn, "wc_merge",
        [piece, keys.counts(job), keys.meta(job), keys.active(), keys.merges(job)],
        [IDENTITY, now_ms(), epoch, job]))


def commit_in_pieces(conn: Connection, c: Claimed, pairs: Sequence[object], distinct: int,
                     nbytes: int, nwords: int, busy_ms: int, counted_ms: int | None = None,
                     consumed: Sequence[str] = (), *, piece_pairs: int, rounds: int
                     ) -> Applied:
    """The staged commit, whole: a task with more than ``piece_pairs`` distinct words (``pairs``
    flat, ``distinct`` of them) is written in pieces of ``piece_pairs`` pairs under a name of
    this attempt (``stage`` x N), settled only if every piece is in Redis (``commit_staged``;
    RESTAGE when a Redis restart from an older snapshot dropped one: the pieces are written
    again, at most ``rounds`` times), then its accepted pieces are applied (``merge`` x N; any
    idle worker finishes the merges of a committer that died)."""
    step = 2 * piece_pairs
    values = [pairs[i:i + step] for i in range(0, len(pairs), step)]
    pieces = stage_keys(c, uuid.uuid4().hex[:12], len(values))
    outcome = Applied.RESTAGE
    for round_ in range(1, rounds + 1):
        for key, piece in zip(pieces, values, strict=True):
            staged = stage(conn, c, key, piece)
            if staged is not Applied.APPLIED:
                return staged  # stale or gone: the task is no longer the job's
        outcome = commit_staged(conn, c, pieces, distinct, nbytes, nwords, busy_ms, counted_ms,
                                consumed)
        if outcome is not Applied.RESTAGE:
            break
        log.warning("task %s %s: staged pieces missing at commit (Redis restarted from an "
                    "older snapshot?); staging again (round %d)", c.job, c.id, round_)
    if outcome is Applied.APPLIED:
        for key in pieces:
            merge(conn, c.job, c.epoch, key)
    return outcome


def dead(conn: Connection, c: Claimed, reason: str) -> Applied:
    keys_, args = _settle(c)
    return Applied(_fcall(conn, "wc_dead", keys_, [*args, reason]))


# -- the stream queue -----------------------------------------------------------------------------

def _stream_claimed(job: str, reply: object, how: str, consumer: str) -> Claimed | None:
    if not reply:
        return None
    entry_id, fields, deliveries = reply  # type: ignore[misc]
    return Claimed.from_fields(job, entry_id, fields, deliveries, how, "stream", consumer)


def take(conn: Connection, job: str, consumer: str) -> Claimed | None:
    """A new task of the job delivered to ``consumer`` with its lease started (one call), or
    None when the stream has none."""
    reply = _fcall(conn, "wc_take", [keys.tasks(job), keys.meta(job), keys.leases(job),
                                     keys.done(job), keys.dead(job), keys.history(job)],
                   [IDENTITY, now_ms(), keys.GROUP, consumer])
    return _stream_claimed(job, reply, "new", consumer)


def claim_stale(conn: Connection, job: str, consumer: str, min_idle_ms: int) -> Claimed | None:
    reply = _fcall(conn, "wc_claim_stale", [keys.tasks(job), keys.meta(job), keys.leases(job),
                                            keys.history(job)],
                   [IDENTITY, now_ms(), keys.GROUP, consumer, min_idle_ms])
    return _stream_claimed(job, reply, "stale", consumer)


def speculate(conn: Connection, job: str, consumer: str, min_ms: int, factor: float
              ) -> Claimed | None:
    reply = _fcall(conn, "wc_speculate", [keys.tasks(job), keys.meta(job), keys.leases(job),
                                          keys.history(job)],
                   [IDENTITY, now_ms(), keys.GROUP, consumer, min_ms, factor])
    return _stream_claimed(job, reply, "backup", consumer)


def heartbeat(conn: Connection, c: Claimed, consumer: str) -> bool:
    """Reset the task's idle time if we still own it; False when it was taken from us."""
    return bool(_fcall(conn, "wc_heartbeat", [keys.tasks(c.job)],
                           [IDENTITY, now_ms(), keys.GROUP, consumer, c.id]))


# -- the lease queue ------------------------------------------------------------------------------

def _lease_keys(job: str) -> list[str]:
    return [keys.meta(job), keys.queue(job), keys.specs(job), keys.expiry(job),
            keys.owners(job), keys.attempts(job), keys.leases(job), keys.notify(job),
            keys.done(job), keys.dead(job), keys.history(job)]


def _lease_claimed(job: str, reply: object, consumer: str) -> Claimed | None:
    if not reply:
        return None
    task_id, fields, deliveries, how = reply  # type: ignore[misc]
    return Claimed.from_fields(job, task_id, fields, deliveries, how, "lease", consumer)


def lease_claim(conn: Connection, job: str, consumer: str, lease_ms: int,
                now: int | None = None) -> Claimed | None:
    """The task whose lease expired first (stolen), else the next task never taken."""
    reply = _fcall(conn, "wc_lease_claim", _lease_keys(job),
                       [IDENTITY, now_ms() if now is None else now, consumer, lease_ms])
    return _lease_claimed(job, reply, consumer)


def lease_speculate(conn: Connection, job: str, consumer: str, lease_ms: int, min_ms: int,
                    factor: float) -> Claimed | None:
    reply = _fcall(conn, "wc_lease_speculate", _lease_keys(job),
                       [IDENTITY, now_ms(), consumer, lease_ms, min_ms, factor])
    return _lease_claimed(job, reply, consumer)


def lease_heartbeat(conn: Connection, c: Claimed, consumer: str, lease_ms: int) -> bool:
    """Extend our lease to now + lease_ms if we still own the task; False when we lost it."""
    return bool(_fcall(conn, "wc_lease_heartbeat", [keys.expiry(c.job), keys.owners(c.job)],
                           [IDENTITY, now_ms(), consumer, c.id, lease_ms]))


# -- the shared event feed -----------------------------------------------------------------------

def event(conn: Connection, kind: str, source: str, text: str, job: str = "",
          run_id: str = "", at_ms: int | None = None) -> bool:
    """Record an event in the shared feed (see events.py); False when ``run_id`` was the one
    recorded last (another process recorded that Redis start already)."""
    return bool(_fcall(conn, "wc_event", [keys.events(), keys.run()],
                       [IDENTITY, now_ms() if at_ms is None else at_ms, kind, job, source,
                        text, run_id]))


# -- operating jobs -------------------------------------------------------------------------------

def cancel(conn: Connection, job: str, epoch: str = "") -> Applied:
    """APPLIED: the running job is cancelled; DUPLICATE: it was not running; GONE: no such job
    (or not the incarnation ``epoch``, when given)."""
    return Applied(_fcall(conn, "wc_cancel", [keys.meta(job), keys.active()],
                              [IDENTITY, now_ms(), job, epoch]))


def requeue(conn: Connection, job: str, kind: str, task_ids: Sequence[str], epoch: str = ""
            ) -> int:
    """Give these dead-lettered tasks new attempts; returns how many were requeued (a task no
    longer dead is skipped; -2, GONE: not the incarnation ``epoch``). JobCancelledError if the
    job is cancelled."""
    queue_keys = ([keys.tasks(job)] if kind == "stream" else
                  [keys.queue(job), keys.attempts(job), keys.notify(job),
                   keys.specs(job)])
    return int(_fcall(conn, "wc_requeue", [keys.meta(job), keys.active(), keys.dead(job),
                                           *queue_keys],
                      [IDENTITY, now_ms(), kind, keys.GROUP, job, epoch, *task_ids], job))
