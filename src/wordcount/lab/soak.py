"""``wordcount soak``: a randomized, seeded fault harness for the exactly-once commit protocol
(a small Jepsen of our own protocol, on this machine): a generator of faults and operator
actions (the nemesis), real processes, and a checker of exactness AND liveness.

Every run is drawn from one seed (``draw_plan(seed, commit_path)``, a pure function: same seed,
same plan of faults) and then executed for real:

- **Workload.** A small generated corpus (3-8 files of 60-300 kB, sometimes a skew file of up
  to 1 MB, sometimes Unicode, in 2 runs of 5 also 10-60 small files of 1.5 kB that the planner
  packs into a few tasks), planned in 10-45 byte-range tasks (chunks >= 20 kB), submitted
  in batches of 2-8 tasks (``WORDCOUNT_SUBMIT_BATCH``: a job of several submission calls) or
  all at once; in some runs a second job on the same workers, on the other queue or the same
  one. A run takes ~3-30 s here (2 cores).
- **System under test.** A private password-protected ``redis-server`` on 127.0.0.1 with
  automatic snapshots OFF (``save ""``), and a ``WorkerPool`` of 2-4 forked workers that are
  respawned when they crash: ``--crash-at any --crash-prob p`` (a crash at a random point of a
  task attempt, commit included), ``--stall-prob``/``--stall-max`` (a worker stalling
  mid-task), a pace (``--slowdown`` 1-100 for every worker), often one straggler (worker 0 at
  4-12x that pace, with ``WORDCOUNT_SPECULATE_MIN_MS`` small, so it gets backed up), a short
  ``--claim-timeout``, ``--max-attempts 1000``; in some runs workers whose clocks are hours
  off (``WORDCOUNT_CLOCK_SKEW_MS``), and workers whose ``--data-root`` maps the job's root (the
  client records its own data root as the job's mount). On the ``staged`` path
  ``--commit-pairs`` is 50-500, so every task commits stage → wc_commit_staged → merge; on the
  ``atomic`` path every task commits in one wc_commit. On the ``shuffle`` path the main job is
  a shuffle job (``client.Job.reduces`` = R, 1-6, drawn from the seed: every incarnation its
  client creates, after a wipe too, has it): each map commits R partition pieces
  (wc_map_commit), the call settling the last map queues the R reduce tasks, and each reduce
  sums its partition on a worker and commits it with its ``consumed`` maps through wc_commit,
  or, in half the runs (``--commit-pairs`` 50-500), through the staged path; a map settled after
  the reduce phase began (a requeued dead letter) commits directly (LATE). The other values of
  a seed's plan are those of the other paths.
- **Nemesis.** A schedule of moves, each fired once the current plan's progress reaches a drawn
  fraction of its tasks and a drawn delay has passed since the previous one (so they land in
  the middle of the job, whatever the machine's speed):
  - Redis: ``snapshot`` (SAVE/BGSAVE through a separate client; most runs also BGSAVE every
    ~0.2-1.5 s), ``kill`` (SIGKILL of Redis's process group, then a restart from the last
    snapshot: a rollback), ``wipe`` (a restart from nothing), an *aimed* kill (SAVE, then kill
    during a staged commit), ``pause-redis`` (SIGSTOP of Redis's process group for 0.3-2.5 s:
    a VM freeze, a stalled disk), and, between two batches of the submission, a wipe, a
    rollback to a snapshot taken after the first batch, a delete or a ``--fresh`` by another
    client (``mid_submit``);
  - workers: crashes and stalls (above), ``pause-worker`` (SIGSTOP past its lease, then
    SIGCONT: its task is stolen, and it commits a duplicate when it wakes up);
  - the reduce phase (shuffle path): a fraction counts the reduce tasks too (a move drawn late
    may land in the reduce phase), and the plan draws moves of its own that fire once the main
    job is in its reduce phase (``@reduce``): a snapshot there, kills (back to the map phase:
    reduces held across it are stale; aimed: SAVE, then a kill during a staged reduce commit),
    wipes, pauses of Redis and of a worker holding a reduce task (it is backed up, and commits a
    duplicate), operators, a change; in half the runs with a hidden file its requeue waits for
    the reduce phase, so its maps commit LATE;
  - operators: ``cancel``, ``delete`` (``--force``), ``delete-cut`` (``wordcount delete
    --force`` interrupted by SIGINT at a random moment), ``requeue`` of dead letters,
    ``replan`` (``submit --fresh`` of another plan under the same name; often a snapshot just
    before and a kill just after, so the rollback brings the old plan back), ``fresh`` (another
    client's ``submit --fresh`` of the same inputs) and ``client2`` (another client's
    ``submit`` of the same inputs, waiting for the job); on the shuffle path these clients
    submit ``--commit shuffle --reduces R``, or another R, or ``--commit atomic`` (a client of
    the other mode: it follows whatever incarnation it finds in Redis, and creates one of its
    own mode when there is none or with ``--fresh``); the second job is a shuffle job of its own
    R or a one-phase job;
  - inputs: ``change`` (a file rewritten in place with the same size, truncated, or replaced by
    a rename), and a hidden file (its tasks are dead-lettered, then it comes back and a
    ``requeue`` move requeues them).
- **Checker.** Every job's FULL count table (every word and count, compared byte for byte in
  the ``word<TAB>count`` form of ``--counts-out``) must equal the oracle:
  ``words.reference_counts`` over each whole file of the plan, as the file was when it was
  planned (the harness keeps every version of every file it wrote). A move may end a client's
  wait in a *documented loud failure* -- cancelled (exit 8), deleted (exit 9), an input changed
  (exit 3, no table), replaced by another plan (exit 2) -- and only after a move that causes
  it; the harness then recovers as an operator would (submit again, ``--fresh`` where needed)
  and the final table must still be exact. Second clients (``fresh``, ``client2``) are real
  ``wordcount submit`` processes: each must end with the exact table of the inputs it planned
  or with a loud failure that a later move explains. **Liveness**: every run ends within its
  bound (``--timeout``) or fails as a hang, with its seed; a run also fails if tasks were
  dead-lettered without a hidden file, or if any exception escapes (a ``WordcountError`` such
  as the client's self-check, a worker exiting on an error, anything).

Timing (which task a kill interrupts) is not reproducible, only the plan of faults is: replaying
a failing seed re-runs the same workload and schedule, which usually, not always, fails again.

**On RedisRaft** (``--raft``): the same runs on a three-node RedisRaft cluster on loopback
(``wordcount.lab.raft``; its binaries from ``make raft-bin``), on the lease queue. There are no
snapshots to roll back to (the Raft log is the persistence): each ``kill``/``wipe`` SIGKILLs
one node, the leader or another at random (drawn from the seed), and starts it again after the
downtime; ``pause-redis`` pauses the leader or a follower (SIGSTOP, 1-4 s: an election under
way while the old leader is frozen); an aimed kill hits the leader during a staged commit.
Nothing may roll back, and the full table must still equal the oracle.

``python -m wordcount.lab.soak --runs N --seed S [--path atomic|staged|shuffle|all] [--keep]``:
run i uses seed S+i and the i-th path in turn (``all``, the default, is every path; ``both`` is its
older name); one line per run, a summary (how many runs each move
survived), and for each failure the seed and the command that replays it. Exit 0 only if every
run passed, ``EXIT_SOAK_FAILED`` (6) otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import apps, client, jobs, keys
from ..exceptions import (
    EXIT_CANCELLED,
    EXIT_DELETED,
    EXIT_INPUT_ERRORS,
    EXIT_USAGE,
    InputChangedError,
    JobCancelledError,
    JobConflictError,
    JobDeletedError,
    WordcountError,
)
from ..words import reference_counts
from . import corpus
from .clirun import wc_bg

log = logging.getLogger("wordcount.lab.soak")  # (also when run as __main__)

PATHS = ("atomic", "staged", "shuffle")
JOB_NAME = "soak"
JOB2_NAME = "soak-2"
EXIT_SOAK_FAILED = 6  # distinct from every status of exceptions.py (0-5, 130)
DEFAULT_TIMEOUT_S = 90.0  # a run whose job has not finished by then fails ("timeout")
POLL_S = 0.05
# The nemesis' moves (Fault.kind), and what may interrupt a submission between two batches.
MOVES = ("snapshot", "kill", "wipe", "replan", "requeue", "cancel", "delete", "delete-cut",
         "fresh", "client2", "change", "pause-worker", "pause-redis", "apps")
MID_SUBMIT = ("wipe", "rollback", "delete", "fresh")
CHANGES = ("rewrite", "truncate", "replace")
MAX_RECOVERIES = 8  # loud failures a run may recover from (more: a livelock, the run fails)
# A rewrite that keeps the size and every whitespace byte but changes the words (a case change
# would not: the word rule lowercases): ROT13 of the ASCII letters.
_ROT13 = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    b"NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")


# -- the plan of a run, drawn from its seed ---------------------------------------------------

SMALL_FILE_SIZE = 1_500  # bytes of each small file of a corpus (CorpusSpec.small_files)


@dataclass(frozen=True)
class CorpusSpec:
    seed: int
    files: int
    size: int  # bytes per file
    skew_size: int  # 0: no skew file
    unicode: bool

    @property
    def small_files(self) -> int:
        """Small files beside the others (in small/: planned last, so packed together into
        a few tasks, planner.pack), in 2 corpora of 5: drawn from the corpus seed, so that
        the rest of a seed's plan is what it was before the harness had them."""
        rng = random.Random(self.seed * 7919 + 17)
        return rng.randint(10, 60) if rng.random() < 0.4 else 0

    @property
    def total_bytes(self) -> int:
        return self.files * self.size + self.skew_size + self.small_files * SMALL_FILE_SIZE

    def generate(self, directory: Path) -> list[Path]:
        written = corpus.generate(directory, self.files, self.size, self.skew_size, self.seed,
                                  unicode=self.unicode)
        if self.small_files:
            written += corpus.generate(directory / "small", self.small_files, SMALL_FILE_SIZE,
                                       seed=self.seed + 1, unicode=self.unicode)
        return written


@dataclass(frozen=True)
class Fault:
    kind: str  # one of MOVES
    at_fraction: float  # fires once (done + dead) / total of the current plan reaches this ...
    delay_s: float  # ... and at least this long after the previous fault fired (or the start)
    bgsave: bool = False  # snapshot: BGSAVE (a forked child) instead of SAVE
    # kill / wipe: how long Redis stays down; pause-*: how long the process stays stopped
    # (pause-worker: in claim timeouts)
    downtime_s: float = 0.0
    # kill: aimed at the commit window. SAVE first, then kill as soon as a stage key exists
    # (a staged commit under way: staged after the snapshot, not committed yet), or on the
    # atomic path after ``aim_delay_s``; a kill at a blind moment otherwise. delete-cut: the
    # SIGINT comes this long after `wordcount delete` started.
    aimed: bool = False
    aim_delay_s: float = 0.0
    # change: one of CHANGES; pause-redis on RedisRaft: "leader" | "follower"; fresh:
    # "same-queue" | "other-queue" (the job re-created on the other queue kind)
    how: str = ""
    # "reduce" (shuffle path): fires once the main job is in its reduce phase (its last map
    # settled, its reduce tasks queued), ``delay_s`` after the previous move or later, whatever
    # the fraction; these moves have a queue of their own (RunPlan.reduce_faults)
    phase: str = ""

    def describe(self) -> str:
        what = {"snapshot": "bgsave" if self.bgsave else "save"}.get(self.kind, self.kind)
        if self.aimed:
            what = f"save+aimed-{what}"
        if self.how:
            what = f"{what}({self.how})"
        if self.kind == "delete-cut":
            what = f"{what}(SIGINT +{self.aim_delay_s:.2f}s)"
        down = f" down {self.downtime_s:.2f}{'x' if self.kind == 'pause-worker' else 's'}" \
            if self.kind in ("kill", "wipe", "pause-redis", "pause-worker") else ""
        at = "reduce" if self.phase == "reduce" else f"{self.at_fraction:.2f}"
        return f"{what}@{at}+{self.delay_s:.2f}s{down}"


@dataclass(frozen=True)
class RunPlan:
    seed: int
    commit_path: str
    corpus: CorpusSpec
    chunk_size: int
    workers: int
    crash_prob: float
    stall_prob: float
    stall_max: float
    claim_timeout_ms: int
    speculate_min_ms: int
    pace: int  # --slowdown of every worker (1: full speed): tasks last long enough to be hit
    straggler_slowdown: int  # worker 0's --slowdown instead; 0: no straggler
    snapshot_every_s: float  # BGSAVE about this often, like Redis's own "save" (0: never)
    commit_pairs: int | None  # None on the atomic path (the default, far above any task)
    faults: tuple[Fault, ...]
    replan: str | None = None  # None | "corpus" (another corpus) | "rechunk" (another chunk)
    corpus2: CorpusSpec | None = None
    chunk_size2: int = 0
    late_kill: bool = False  # kill Redis after the job finished, before its result is read
    late_downtime_s: float = 0.0
    # ... that long after the job's end: the workers, seeing no work, have exited, and the
    # client must start them again in the wait its result read does (client.result's on_poll)
    late_linger_s: float = 0.0
    # Dead letters, then requeue: this file of the first corpus (an index into its sorted
    # files) is hidden once the job is submitted, so its tasks are dead-lettered; the
    # "requeue" fault puts it back and requeues them (wordcount requeue), and once the job is
    # done any dead letter left (the requeue came too early, or a rollback undid it) is
    # requeued again, as an operator would. None: no hidden file.
    hide_file: int | None = None
    submit_batch: int = 1000  # tasks per submission call (WORDCOUNT_SUBMIT_BATCH)
    # Between batches `mid_submit_after` and the next: one of MID_SUBMIT (None: nothing).
    mid_submit: str | None = None
    mid_submit_after: int = 1
    job2: CorpusSpec | None = None  # a second job on the same workers, at the same time
    job2_other_queue: bool = False  # ... on the other queue kind (not on RedisRaft)
    mapped: bool = False  # workers read the job's root through a --data-root of their own
    skews_ms: tuple[int, ...] = ()  # per worker: its machine clock's offset (0: on time)
    # The shuffle path (0 elsewhere): the main job's R (client.Job.reduces: every incarnation
    # its client creates, after a wipe too), the second clients' ``--reduces`` (0: they submit
    # with ``--commit atomic``, a client of the other mode), the second job's R (0: a one-phase
    # job beside the shuffle one), and the moves of the reduce phase.
    reduces: int = 0
    client_reduces: int = 0
    job2_reduces: int = 0
    reduce_faults: tuple[Fault, ...] = ()

    def client_args(self) -> list[str]:
        """A second client's commit mode (`wordcount submit` arguments)."""
        if not self.reduces or not self.client_reduces:
            return ["--commit", "atomic"]
        return ["--commit", "shuffle", "--reduces", str(self.client_reduces)]

    def worker_args(self) -> list[str]:
        args = ["--crash-at", "any", "--crash-prob", f"{self.crash_prob:.3f}",
                "--stall-prob", f"{self.stall_prob:.3f}", "--stall-max", f"{self.stall_max:.2f}",
                "--claim-timeout", str(self.claim_timeout_ms), "--max-attempts", "1000"]
        if self.pace > 1:
            args += ["--slowdown", str(self.pace)]
        if self.commit_pairs is not None:
            args += ["--commit-pairs", str(self.commit_pairs)]
        return args

    def straggler_args(self) -> list[str]:
        return ["--slowdown", str(self.straggler_slowdown)] if self.straggler_slowdown else []

    def describe(self) -> str:
        c = self.corpus
        lines = [
            f"seed {self.seed}, {self.commit_path} path"
            + (" (" + ", ".join(how) + ")" if (how := [
                *([f"R={self.reduces}"] if self.reduces else []),
                *([f"--commit-pairs {self.commit_pairs}" + (": reduces staged" if self.reduces
                                                            else "")]
                  if self.commit_pairs else [])]) else ""),
            f"corpus: {c.files} x {c.size:,} B" + (f" + skew {c.skew_size:,} B" if c.skew_size
                                                   else "")
            + (f" + {c.small_files} x {SMALL_FILE_SIZE:,} B (packed)" if c.small_files else "")
            + (", unicode" if c.unicode else "") + f", corpus seed {c.seed}; chunk "
            f"{self.chunk_size:,} B; submitted in batches of {self.submit_batch}"
            + (f", {self.mid_submit} after batch {self.mid_submit_after}" if self.mid_submit
               else ""),
            f"workers: {self.workers}, " + " ".join(self.worker_args())
            + (f"; worker 0 {' '.join(self.straggler_args())}" if self.straggler_slowdown
               else "") + f"; WORDCOUNT_SPECULATE_MIN_MS={self.speculate_min_ms}"
            + ("; --data-root mapping the job's root" if self.mapped else "")
            + ("; clocks off: " + ", ".join(f"worker {i} {ms / 3_600_000:+.1f} h"
                                            for i, ms in enumerate(self.skews_ms) if ms)
               if any(self.skews_ms) else ""),
            (f"snapshots: BGSAVE every ~{self.snapshot_every_s:.2f}s; " if self.snapshot_every_s
             else "snapshots: only the scheduled ones; ")
            + "faults: " + ", ".join(f.describe() for f in self.faults)
            + (f"; late kill (down {self.late_downtime_s:.2f}s"
               + (f", {self.late_linger_s:.2f}s after the end" if self.late_linger_s else "")
               + ")" if self.late_kill else ""),
        ]
        if self.reduces:
            lines.append("reduce phase: " + (", ".join(f.describe() for f in self.reduce_faults)
                                             or "no move of its own")
                         + "; second clients submit " + " ".join(self.client_args()))
        if self.job2 is not None:
            lines.append(f"second job: {self.job2.files} x {self.job2.size:,} B on "
                         + ("the other queue" if self.job2_other_queue else "the same queue")
                         + (f", shuffle R={self.job2_reduces}" if self.job2_reduces else
                            ", one phase" if self.reduces else ""))
        if self.hide_file is not None:
            lines.append(f"dead letters: file #{self.hide_file} hidden after submit, then "
                         "restored and requeued")
        if self.replan:
            target = (f"corpus {self.corpus2.files} x {self.corpus2.size:,} B"  # type: ignore
                      if self.replan == "corpus" else "the same corpus")
            lines.append(f"re-plan: {target}, chunk {self.chunk_size2:,} B")
        return "\n".join(lines)


def _corpus_spec(rng: random.Random) -> CorpusSpec:
    files = rng.randint(3, 8)
    size = rng.randint(60_000, 300_000)
    skew = rng.randint(300_000, 1_000_000) if rng.random() < 0.35 else 0
    return CorpusSpec(seed=rng.randrange(1 << 16), files=files, size=size, skew_size=skew,
                      unicode=rng.random() < 0.4)


def _chunk_size(rng: random.Random, spec: CorpusSpec) -> int:
    """About 10-45 tasks (a run of ~5-15 s here), never chunks below 20 kB."""
    return max(20_000, spec.total_bytes // rng.randint(10, 45))


def _insert(events: list[Fault], fault: Fault) -> None:
    """Insert before the first fault of a later fraction (so a re-plan's snapshot, re-plan and
    kill -- the kill at fraction 0 of the new plan -- stay together)."""
    later = [i for i, f in enumerate(events) if f.at_fraction > fault.at_fraction]
    events.insert(later[0] if later else len(events), fault)


# (probability per run, earliest and latest fraction) of each operator, input and pause move
_MOVE_ODDS = {"cancel": 0.12, "delete": 0.12, "delete-cut": 0.15, "fresh": 0.2,
              "client2": 0.25, "change": 0.2, "pause-worker": 0.3, "pause-redis": 0.25}
# The shuffle path's moves of the reduce phase (probability per run, in this order): a
# snapshot there (a later kill rolls back into the reduce phase) or not (back to the map
# phase: reduce tasks held across it answer STALE), a paused worker holding a reduce task (it
# is backed up, and commits a duplicate when it wakes up), kills (aimed: at a staged reduce
# commit), pauses, operators, a change that a map recounted after a rollback would see.
_REDUCE_ODDS = {"snapshot": 0.3, "pause-worker": 0.35, "kill": 0.4, "wipe": 0.1,
                "pause-redis": 0.2, "change": 0.08, "client2": 0.12, "fresh": 0.1,
                "cancel": 0.05, "delete": 0.05, "delete-cut": 0.05}
MAX_REDUCES = 6  # the shuffle path's R: 1-6


def _move(rng: random.Random, kind: str, at: float, delay: float, phase: str = "") -> Fault:
    """A move of ``kind`` with the parameters it draws (the draws of _MOVE_ODDS' loop)."""
    if kind == "change":
        return Fault(kind, at, delay, how=rng.choice(CHANGES), phase=phase)
    if kind == "fresh":  # the same job re-created on the other queue kind, or the same
        return Fault(kind, at, delay, how=rng.choice(("same-queue", "other-queue")),
                     phase=phase)
    if kind == "delete-cut":
        return Fault(kind, at, delay, aim_delay_s=round(rng.uniform(0.1, 0.9), 2), phase=phase)
    if kind == "pause-worker":  # in claim timeouts: past its lease
        return Fault(kind, at, delay, downtime_s=round(rng.uniform(1.5, 4.0), 2), phase=phase)
    if kind == "pause-redis":
        return Fault(kind, at, delay, downtime_s=round(rng.uniform(0.3, 2.5), 2),
                     how=rng.choice(("leader", "follower")), phase=phase)
    return Fault(kind, at, delay, phase=phase)


def draw_plan(seed: int, commit_path: str) -> RunPlan:
    """The whole plan of a run, from ``random.Random(seed)`` only (no clock, no I/O). Every
    path draws the same values (commit_pairs is drawn and dropped on the atomic path; the
    shuffle path's own values are drawn last, and dropped on the others), so one seed is the
    same workload and schedule on every path; the shuffle path adds its reduce phase's moves,
    and half of its runs keep commit_pairs (their reduces commit staged)."""
    if commit_path not in PATHS:
        raise ValueError(f"commit path must be one of {', '.join(PATHS)}: {commit_path!r}")
    rng = random.Random(seed)
    spec = _corpus_spec(rng)
    chunk = _chunk_size(rng, spec)
    workers = rng.randint(2, 4)
    crash_prob = round(rng.uniform(0.05, 0.3), 3)
    stall_prob = round(rng.uniform(0.0, 0.3), 3)
    stall_max = round(rng.uniform(0.2, 1.5), 2)
    claim_timeout = rng.randint(300, 800)
    speculate_min = rng.randint(100, 400)
    pace = rng.choice((1, 10, 30, 60, 100))
    straggler = pace * rng.randint(4, 12) if rng.random() < 0.6 else 0
    snapshot_every = round(rng.uniform(0.2, 1.5), 2) if rng.random() < 0.7 else 0.0
    pairs = rng.choice((50, 100, 200, 300, 500))

    # The nemesis: snapshots and kills at drawn fractions of the job, in fraction order.
    events: list[Fault] = []
    for _ in range(rng.randint(1, 4)):
        events.append(Fault("snapshot", round(rng.uniform(0.0, 0.8), 3),
                            round(rng.uniform(0.0, 0.6), 2), bgsave=rng.random() < 0.5))
    for _ in range(rng.randint(1, 3)):
        kind = "wipe" if rng.random() < 0.15 else "kill"
        aimed = kind == "kill" and rng.random() < 0.5
        events.append(Fault(kind, round(rng.uniform(0.05, 0.85), 3),
                            round(rng.uniform(0.0, 0.8), 2),
                            downtime_s=round(rng.uniform(0.0, 0.5), 2), aimed=aimed,
                            aim_delay_s=round(rng.uniform(0.0, 0.3), 2)))
    events.sort(key=lambda f: f.at_fraction)

    replan = corpus2 = None
    chunk2 = 0
    if rng.random() < 0.4:
        replan = rng.choice(("corpus", "rechunk"))
        if replan == "corpus":
            corpus2 = _corpus_spec(rng)
            chunk2 = _chunk_size(rng, corpus2)
        else:
            chunk2 = _chunk_size(rng, spec)
            if abs(chunk2 - chunk) < 5_000:  # another plan for sure
                chunk2 = chunk + 10_000
        at = round(rng.uniform(0.1, 0.6), 3)
        position = sum(1 for f in events if f.at_fraction <= at)
        inserted = [Fault("replan", at, round(rng.uniform(0.0, 0.5), 2))]
        if rng.random() < 0.5:  # a rollback across the re-plan: it brings the OLD plan back
            inserted = [Fault("snapshot", at, 0.0, bgsave=False), *inserted,
                        Fault("kill", 0.0, round(rng.uniform(0.2, 1.5), 2),
                              downtime_s=round(rng.uniform(0.0, 0.5), 2))]
        events[position:position] = inserted
    late = rng.random() < 0.2
    late_down = round(rng.uniform(0.0, 0.3), 2)
    hide = None
    if rng.random() < 0.3:
        hide = rng.randrange(spec.files + (1 if spec.skew_size else 0))
        at = round(rng.uniform(0.2, 0.9), 3)
        position = sum(1 for f in events if f.at_fraction <= at)
        events.insert(position, Fault("requeue", at, round(rng.uniform(0.0, 0.5), 2)))

    # Drawn after everything above (the draws above are those of seeds before these existed):
    # submission batches, a second job, data-root mapping, clocks, operators, inputs, pauses.
    batch = rng.choice((2, 3, 5, 8, 1000))
    mid = rng.choice(MID_SUBMIT) if batch < 1000 and rng.random() < 0.45 else None
    mid_after = rng.randint(1, 3)
    job2 = None
    if rng.random() < 0.35:
        job2 = CorpusSpec(seed=rng.randrange(1 << 16), files=rng.randint(2, 4),
                          size=rng.randint(20_000, 80_000), skew_size=0,
                          unicode=rng.random() < 0.4)
    job2_other = rng.random() < 0.6
    mapped = rng.random() < 0.3
    skews = tuple(rng.choice((-1, 1)) * rng.randint(1, 24) * 3_600_000
                  if rng.random() < 0.2 else 0 for _ in range(workers))
    for kind, odds in _MOVE_ODDS.items():
        if rng.random() >= odds:
            continue
        _insert(events, _move(rng, kind, round(rng.uniform(0.05, 0.85), 3),
                              round(rng.uniform(0.0, 0.5), 2)))

    # The shuffle path's, drawn last: R, staged reduces (commit_pairs kept), the second
    # clients' R (0: a client of the other mode) and the second job's, the reduce phase's
    # moves (it lasts a few hundred ms here: short delays).
    reduces = rng.randint(1, MAX_REDUCES)
    staged_reduces = rng.random() < 0.5
    mode = rng.random()
    client_reduces = reduces if mode < 0.6 else rng.randint(1, MAX_REDUCES) if mode < 0.8 \
        else 0
    job2_reduces = rng.choice((0, 1, 2, 3))
    reduce_events = []
    for kind, odds in _REDUCE_ODDS.items():
        if rng.random() >= odds:
            continue
        fault = _move(rng, kind, 0.0, round(rng.uniform(0.0, 0.15), 2), phase="reduce")
        if kind in ("kill", "wipe"):
            fault = Fault(kind, 0.0, fault.delay_s, downtime_s=round(rng.uniform(0.0, 0.5), 2),
                          aimed=kind == "kill" and rng.random() < 0.5, phase="reduce")
        elif kind == "snapshot":
            fault = Fault(kind, 0.0, fault.delay_s, bgsave=rng.random() < 0.5, phase="reduce")
        reduce_events.append(fault)
    shuffle = commit_path == "shuffle"
    if rng.random() < 0.5 and shuffle and hide is not None:
        # the hidden file's maps requeued in the reduce phase: they commit late (LATE, then
        # wc_commit), beside the reduce tasks
        events = [f for f in events if f.kind != "requeue"]
        reduce_events.insert(0, Fault("requeue", 0.0, round(rng.uniform(0.0, 0.1), 2),
                                      phase="reduce"))
    # From a generator of its own (every draw above, on every path, is what it was before):
    # two more clients of the same inputs, named by their plans, one of them building the
    # inverted index (two apps on the same inputs and workers: two jobs, never one's table
    # for the other's)
    more = random.Random(f"apps-{seed}")
    if more.random() < 0.15:
        _insert(events, Fault("apps", round(more.uniform(0.05, 0.85), 3),
                              round(more.uniform(0.0, 0.5), 2)))
    # (its own generator too) half the late kills come after the workers' idle grace
    linger = random.Random(f"linger-{seed}")
    late_linger = round(linger.uniform(3.2, 4.0), 2) if late and linger.random() < 0.5 else 0.0
    return RunPlan(seed=seed, commit_path=commit_path, corpus=spec, chunk_size=chunk,
                   workers=workers, crash_prob=crash_prob, stall_prob=stall_prob,
                   stall_max=stall_max, claim_timeout_ms=claim_timeout,
                   speculate_min_ms=speculate_min, pace=pace, straggler_slowdown=straggler,
                   snapshot_every_s=snapshot_every,
                   commit_pairs=pairs if commit_path == "staged" or (shuffle and staged_reduces)
                   else None,
                   faults=tuple(events), replan=replan, corpus2=corpus2, chunk_size2=chunk2,
                   late_kill=late, late_downtime_s=late_down, late_linger_s=late_linger,
                   hide_file=hide,
                   submit_batch=batch, mid_submit=mid, mid_submit_after=mid_after, job2=job2,
                   job2_other_queue=job2_other, mapped=mapped, skews_ms=skews,
                   reduces=reduces if shuffle else 0,
                   client_reduces=client_reduces if shuffle else 0,
                   job2_reduces=job2_reduces if shuffle and job2 is not None else 0,
                   reduce_faults=tuple(reduce_events) if shuffle else ())


# -- what a run did ---------------------------------------------------------------------------

@dataclass
class RunReport:
    seed: int
    commit_path: str
    ok: bool = False
    reason: str = ""  # why it failed ("" when ok)
    diff: str = ""  # on a count mismatch: words differing, totals
    seconds: float = 0.0
    tasks: int = 0  # of the expected (last) plan
    bytes: int = 0
    kills: int = 0  # Redis SIGKILLs, all of them
    kills_mid: int = 0  # ... of which before the job was done
    wipes: int = 0  # restarts from nothing (a wipe, or no snapshot yet)
    snapshots: int = 0  # SAVE / BGSAVE that Redis accepted
    replan: bool = False  # a re-plan actually happened (submit --fresh of another plan)
    requeued: int = 0  # dead-lettered tasks requeued (wordcount requeue), all rounds
    crashes: int = 0  # injected worker crashes (pool.crashes)
    stolen: int = 0
    backups: int = 0
    duplicates: int = 0
    resubmits: int = 0
    faults_fired: int = 0
    faults_planned: int = 0
    jobs: int = 1  # jobs checked against the oracle (a second job on the same workers: 2)
    reduces: int = 0  # the shuffle path: the main job's R
    reduce_moves: int = 0  # moves that fired while the main job was in its reduce phase
    late_maps: int = 0  # maps committed directly after the reduce phase began (LATE), all jobs
    moves: dict[str, int] = field(default_factory=dict)  # moves fired, by kind (MOVES, mid-*)
    loud: dict[str, int] = field(default_factory=dict)  # loud failures met and recovered from
    clients: int = 0  # second clients (real `wordcount submit` processes) checked
    events: list[str] = field(default_factory=list)  # "t=1.23s kill@0.40 (mid-job)", ...
    rundir: str = ""  # kept run directory (--keep), else ""

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        extra = "".join(f" {k} {v}" for k, v in sorted(self.moves.items())
                        if k not in ("snapshot", "kill", "wipe", "replan", "requeue"))
        text = (f"seed {self.seed:<6} {self.commit_path:<6} {status} {self.seconds:5.1f}s "
                f"tasks {self.tasks:3} kills {self.kills} (mid {self.kills_mid}) "
                f"wipes {self.wipes} snaps {self.snapshots} "
                f"replan {'yes' if self.replan else 'no '} crashes {self.crashes:3} "
                f"stolen {self.stolen:3} backups {self.backups:2} "
                f"dups {self.duplicates:2}"
                + (f" requeued {self.requeued}" if self.requeued else "")
                + (f" jobs {self.jobs}" if self.jobs > 1 else "")
                + (f" R {self.reduces} reduce-moves {self.reduce_moves}" if self.reduces else "")
                + (f" late-maps {self.late_maps}" if self.late_maps else "")
                + (f" clients {self.clients}" if self.clients else "") + extra
                + ("".join(f" [{k}]" for k in sorted(self.loud))))
        if not self.ok:
            text += f"\n    {self.reason}"
            if self.diff:
                text += f"\n    {self.diff}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Replan(Exception):
    """Raised from on_poll to leave client.wait when the re-plan fault fires."""


class RunFailed(Exception):
    """The checker's verdict: this run broke a rule (its message says which)."""


def link_graph(seed: int) -> bytes:
    """A small link graph drawn from ``seed`` ("page<TAB>target" lines): 12-40 pages, each
    with 0-4 out-links (a page without one is dangling: its rank is spread to all)."""
    rng = random.Random(f"graph-{seed}")
    n = rng.randint(12, 40)
    lines = [f"p{i}\tp{j}\n" for i in range(n) for j in rng.sample(range(n), rng.randint(0, 4))
             if j != i]
    return "".join(lines).encode() or b"p0\tp1\n"


def tsv(counts: Counter[str]) -> str:
    """The ``--counts-out`` form: every word, by count descending then word."""
    return "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def oracle(files: Sequence[Path]) -> Counter[str]:
    """The reference rule over each whole file, straight from disk."""
    total: Counter[str] = Counter()
    for path in files:
        total.update(reference_counts(Path(path).read_bytes()))
    return total


def oracle_of(contents: dict[Path, bytes | None]) -> Counter[str]:
    """The reference rule over each whole file of a recorded state (None: the file is absent)."""
    total: Counter[str] = Counter()
    for data in contents.values():
        if data is not None:
            total.update(reference_counts(data))
    return total


def diff_summary(got: Counter[str], expected: Counter[str]) -> str:
    diff = {w: (got.get(w, 0), expected.get(w, 0)) for w in set(got) | set(expected)
            if got.get(w, 0) != expected.get(w, 0)}
    under = sum(1 for g, e in diff.values() if g < e)
    missing = sum(1 for g, _ in diff.values() if g == 0)
    extra = sum(1 for _, e in diff.values() if e == 0)
    g_total, e_total = sum(got.values()), sum(expected.values())
    sample = sorted(diff.items(), key=lambda kv: (-abs(kv[1][0] - kv[1][1]), kv[0]))[:5]
    shown = ", ".join(f"{w!r} {g}/{e}" for w, (g, e) in sample)
    return (f"{len(diff)} of {len(expected)} words differ ({under} undercounted of which "
            f"{missing} missing, {len(diff) - under} overcounted of which {extra} unexpected); "
            f"total {g_total:,} vs {e_total:,} expected ({g_total - e_total:+,}); "
            f"e.g. (got/expected) {shown}")


class Files:
    """Every version of the inputs the harness wrote, by time: the oracle of a plan is the
    state its files were in when it was planned; a second client's table must be the oracle of
    one state that existed while it ran (never a mix of two)."""

    def __init__(self) -> None:
        self.states: list[tuple[float, dict[Path, bytes | None]]] = []

    def record(self, paths: Sequence[Path]) -> None:
        state = dict(self.states[-1][1]) if self.states else {}
        for p in paths:
            state[Path(p)] = Path(p).read_bytes() if os.path.exists(p) else None
        self.states.append((time.monotonic(), state))

    def now(self, under: Path) -> dict[Path, bytes | None]:
        return {p: d for p, d in self.states[-1][1].items() if under in p.parents}

    def between(self, start: float, end: float, under: Path) -> list[dict[Path, bytes | None]]:
        """The states in force at some moment of [start, end], restricted to files under."""
        out = []
        for i, (t, state) in enumerate(self.states):
            until = self.states[i + 1][0] if i + 1 < len(self.states) else float("inf")
            if t <= end and until >= start:
                out.append({p: d for p, d in state.items() if under in p.parents})
        return out


@dataclass
class SecondClient:
    """Another client's `wordcount submit` of the job's inputs (``fresh``: with --fresh;
    ``app``: of its own job, named by its plan, with that app)."""

    proc: subprocess.Popen
    fresh: bool
    inputs: Path
    out: Path
    started: float
    ended: float = 0.0
    app: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # an iterative app's (--rounds ...)

    def expected(self, state: dict[Path, bytes | None], tmp: Path) -> str:
        """The table this client must have written, of one state of its inputs."""
        if self.app in (None, "wordcount"):
            return tsv(oracle_of(state))
        app = apps.get(self.app)
        if app.iterative:  # (PageRank: its rounds' oracle, over that state of the graph)
            graph = tmp.with_suffix(".graph")
            graph.write_bytes(b"".join(state[p] or b"" for p in sorted(state)))
            ranks, _ = app.oracle([str(graph)], **self.options)
            app.write(ranks, str(tmp))
            return tmp.read_text(encoding="utf-8")
        total: Counter[str] = Counter()
        present = [path for path, data in state.items() if data is not None]
        # the documents: paths relative to the files' common directory (the plan's root)
        root = os.path.commonpath([os.path.dirname(p) for p in present]) if present else ""
        for path in present:
            total.update(app.reference(state[path] or b"", os.path.relpath(path, root)))
        app.write(total, str(tmp))
        return tmp.read_text(encoding="utf-8")


# -- the nemesis --------------------------------------------------------------------------------

class Nemesis:
    """Fires the plan's moves from client.wait's on_poll, and tends the worker pool."""

    def __init__(self, plan: RunPlan, server: Any, conn: Any, pool: Any, report: RunReport,
                 started: float, raft: bool = False,
                 restore: Callable[[], None] = lambda: None,
                 client_env: dict[str, str] | None = None, rundir: Path | None = None,
                 files: Files | None = None) -> None:
        import redis

        self.plan = plan
        self.restore = restore  # puts the hidden file back (requeue)
        self.raft = raft
        self.victims = random.Random(plan.seed + 1)  # which Raft node a kill hits
        self.chooser = random.Random(plan.seed + 2)  # which worker a pause hits, ...
        self.faults = list(plan.faults)
        self.next = 0
        self.reduce_faults = list(plan.reduce_faults)  # (the shuffle path's reduce phase)
        self.reduce_next = 0
        self.server, self.conn, self.pool, self.report = server, conn, pool, report
        self.started = started
        self.last = started
        self.staged = plan.commit_pairs is not None
        self.every = 0.0 if raft else plan.snapshot_every_s
        self.next_snapshot = started + self.every if self.every else float("inf")
        self.jitter = random.Random(plan.seed)  # periodic snapshot jitter (timing only)
        self.stage_pattern = keys.stage_pattern(JOB_NAME)
        self.client_env = client_env or {}
        self.rundir = rundir or Path(".")
        self.files = files or Files()
        self.inputs = self.rundir / "a"  # the main job's inputs now (a re-plan may move them)
        self.queue = "stream"  # the main job's queue kind
        self.chunk = plan.chunk_size
        self.hidden = False  # a file of the inputs is hidden now
        self.paused: list[tuple[float, int]] = []  # (resume at, pid) of paused workers
        self.deadline = started + DEFAULT_TIMEOUT_S  # the run's bound (set by _Run)
        self.clients: list[SecondClient] = []
        self.fired: list[tuple[float, str]] = []  # (when, what) of every move, for the checker
        # A separate plain client for SAVE/BGSAVE: the harness decides when snapshots happen.
        self.admin = None if raft else redis.Redis(
            host="127.0.0.1", port=server.port, password=server.password, socket_timeout=15,
            socket_connect_timeout=2)

    def close(self) -> None:
        for _, pid in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused.clear()
        for c in self.clients:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
        if self.admin is not None:
            self.admin.close()

    def event(self, text: str) -> None:
        line = f"t={time.monotonic() - self.started:.2f}s {text}"
        self.report.events.append(line)
        log.info("nemesis: %s", line)

    def moved(self, kind: str) -> None:
        self.fired.append((time.monotonic(), kind))
        self.report.moves[kind] = self.report.moves.get(kind, 0) + 1

    def happened(self, kinds: Sequence[str], since: float = 0.0, until: float = float("inf")
                 ) -> bool:
        return any(kind in kinds and since <= t <= until for t, kind in self.fired)

    def tick(self) -> None:
        """What runs at every poll whatever the job: the pool, paused workers, snapshots, and
        the invariant check."""
        self.pool.tend()
        self.check_invariants()
        now = time.monotonic()
        for resume_at, pid in [p for p in self.paused if p[0] <= now]:
            self.paused.remove((resume_at, pid))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            self.event(f"worker pid {pid} resumed (SIGCONT)")
        for c in self.clients:
            if not c.ended and c.proc.poll() is not None:
                c.ended = time.monotonic()
        if now >= self.next_snapshot:
            self.snapshot(True, "periodic bgsave", quiet=True)
            self.next_snapshot = time.monotonic() + self.every * self.jitter.uniform(0.5, 1.5)

    def check_invariants(self) -> None:
        """Checked at every poll, in Redis itself: each job holds exactly the tasks its
        submission counter says (specs 0-1..0-<submitted>, no more, no fewer; a shuffle job in
        its reduce phase also its R reduce tasks' specs). A job with a hole -- a task never
        queued, that no worker will ever get -- breaks it at once, long before the job's wait
        would time out (the counter and the specs are written in the same call, so even a
        rollback keeps them equal; the reduce tasks' specs and the phase, too)."""
        from .. import keys as k
        from ..protocol import Meta

        def read(r):
            pipe = r.pipeline(transaction=False)
            for job in (JOB_NAME, JOB2_NAME):
                pipe.hmget(k.meta(job), Meta.SUBMITTED, Meta.REDUCES, Meta.PHASE)
                pipe.hlen(k.specs(job))
            return pipe.execute()
        try:
            replies = self.conn.call(read, 2)
        except Exception:  # noqa: BLE001 - Redis down or paused right now: checked next time
            return
        for job, (submitted, reduces, phase), specs in zip(
                (JOB_NAME, JOB2_NAME), replies[::2], replies[1::2], strict=True):
            if submitted is None:
                continue
            reducing = int(reduces or 0) if phase == "reduce" else 0
            if int(submitted) + reducing != int(specs):
                raise RunFailed(f"job {job} has a hole: its counter says {submitted} tasks "
                                f"submitted{f' and {reducing} reduce tasks' if reducing else ''}"
                                f", its plan in Redis holds {specs} (tasks no worker will ever "
                                "get: the job would wait forever)")

    def poll(self, job: client.Job) -> None:
        self.tick()
        pending = self.faults[self.next:self.next + 1] \
            + self.reduce_faults[self.reduce_next:self.reduce_next + 1]
        since = time.monotonic() - self.last
        if not pending or since < min(f.delay_s for f in pending):
            return
        p = client.progress(self.conn, job.name)
        if p.finished:
            return
        # (a shuffle job's fraction is of all its tasks, its reduces too: a move drawn late
        # in the job may land in its reduce phase)
        total = p.all_tasks or len(job.tasks) + job.reduces
        fraction = (p.done + p.dead) / total if total else 0.0
        reduce_fault = self.reduce_faults[self.reduce_next] \
            if self.reduce_next < len(self.reduce_faults) else None
        fault = self.faults[self.next] if self.next < len(self.faults) else None
        if reduce_fault is not None and p.phase == "reduce" and since >= reduce_fault.delay_s:
            fault = reduce_fault
            self.reduce_next += 1
        elif fault is not None and since >= fault.delay_s and fraction >= fault.at_fraction:
            self.next += 1
        else:
            return
        self.report.faults_fired += 1
        self.moved(fault.kind)
        label = f"{fault.describe()} at {fraction:.2f} of {job.name} plan {job.plan_id}"
        if p.phase == "reduce":
            self.report.reduce_moves += 1
            label += " (reduce phase)"
        if fault.kind == "snapshot":
            self.snapshot(fault.bgsave, label)
        elif fault.kind in ("kill", "wipe"):
            if fault.aimed:
                label += self.aim(fault)
            self.crash(fault.kind == "wipe", fault.downtime_s, mid_job=True, label=label)
        elif fault.kind == "replan":
            self.event(label)
            self.last = time.monotonic()
            raise _Replan()
        elif fault.kind == "requeue":
            self.requeue(label)
        else:
            getattr(self, "move_" + fault.kind.replace("-", "_"))(fault, label)
        self.last = time.monotonic()

    # -- operators ----------------------------------------------------------------------------

    def requeue(self, label: str) -> int:
        """The cause fixed (the hidden file back), the dead letters requeued."""
        self.restore()
        try:
            n = jobs.requeue(self.conn, JOB_NAME)
        except (JobCancelledError, WordcountError) as exc:  # cancelled or deleted meanwhile
            self.event(f"{label}: not requeued ({type(exc).__name__}: {exc})")
            return 0
        self.report.requeued += n
        self.event(f"{label}: {n} dead-lettered tasks requeued")
        return n

    def move_cancel(self, fault: Fault, label: str) -> None:
        try:
            done = jobs.cancel(self.conn, JOB_NAME)
        except WordcountError as exc:
            done = f"no job ({exc})"
        self.event(f"{label}: wordcount cancel -> {done}")

    def move_delete(self, fault: Fault, label: str) -> None:
        try:
            jobs.delete(self.conn, JOB_NAME, force=True)
            done = "deleted"
        except WordcountError as exc:
            done = f"no job ({exc})"
        self.event(f"{label}: wordcount delete --force -> {done}")

    def move_delete_cut(self, fault: Fault, label: str) -> None:
        """`wordcount delete --force`, interrupted by SIGINT (Ctrl-C) at a drawn moment."""
        proc = self.cli("delete", "--force", JOB_NAME)
        time.sleep(fault.aim_delay_s)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RunFailed("`wordcount delete` did not stop within 30 s of SIGINT") from None
        self.event(f"{label}: wordcount delete --force, SIGINT after {fault.aim_delay_s:.2f}s "
                   f"-> exit {proc.returncode}")

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return wc_bg(*args, env={**self.client_env, **(env or {})})

    def second_client(self, fresh: bool, queue: str | None = None,
                      app: str | None = None, inputs: Path | None = None,
                      options: dict[str, Any] | None = None) -> SecondClient:
        """A client that must end within the run's own bound (its --timeout: what is left of
        it), as the main one must: past it, it is a hang."""
        timeout_s = self.deadline - time.monotonic()
        out = self.rundir / f"client2-{len(self.clients)}.tsv"
        named = ["--job", JOB_NAME] if app is None else ["--app", app]
        inputs = inputs or self.inputs
        args = ["submit", str(inputs), *named, "--chunk-size", str(self.chunk),
                "--quiet", "--counts-out", str(out), "--timeout", f"{max(timeout_s, 5):.0f}",
                *(f"--{k}={v}" for k, v in (options or {}).items()), *self.plan.client_args()]
        env = {"WORDCOUNT_QUEUE": queue or self.queue}
        c = SecondClient(self.cli(*args, *(["--fresh"] if fresh else []), env=env), fresh,
                         inputs, out, time.monotonic(), app=app, options=dict(options or {}))
        self.clients.append(c)
        self.report.clients += 1
        return c

    def move_fresh(self, fault: Fault, label: str) -> None:
        queue = self.queue
        if fault.how == "other-queue" and not self.raft:
            queue = "lease" if self.queue == "stream" else "stream"
        c = self.second_client(True, queue)
        self.event(f"{label}: another client's submit --fresh of the same inputs on the "
                   f"{queue} queue (pid {c.proc.pid})")

    def move_client2(self, fault: Fault, label: str) -> None:
        c = self.second_client(False)
        self.event(f"{label}: another client's submit of the same inputs (pid {c.proc.pid})")

    def move_apps(self, fault: Fault, label: str) -> None:
        index = self.second_client(False, app="index")
        counts = self.second_client(False, app="wordcount")
        # and PageRank's rounds over a link graph of its own (a job per round, each reading
        # the earlier rounds' tables: a rollback or a wipe that takes one away makes its
        # kernels dead-letter as PREREQ, and the driver redoes the earlier rounds), under the
        # rest of the run's faults; its ranks must equal the oracle's bit for bit
        graph = self.rundir / "graph"
        graph.mkdir(exist_ok=True)
        links = graph / "links.tsv"
        links.write_bytes(link_graph(self.plan.seed))
        self.files.record([links])
        rounds = random.Random(f"pagerank-{self.plan.seed}").randint(2, 5)
        ranks = self.second_client(False, app="pagerank", inputs=graph,
                                   options={"rounds": rounds})
        self.event(f"{label}: three more clients, each a job of its own plan: of the same "
                   f"inputs --app index (pid {index.proc.pid}) and --app wordcount (pid "
                   f"{counts.proc.pid}); of a link graph --app pagerank --rounds {rounds} "
                   f"(pid {ranks.proc.pid})")

    # -- inputs -------------------------------------------------------------------------------

    def move_change(self, fault: Fault, label: str) -> None:
        """Rewrite a file of the job's inputs in place (same size), truncate it, or replace it
        by a rename, while the job runs."""
        present = sorted(p for p in self.inputs.rglob("*") if p.is_file())
        if not present:
            self.event(f"{label}: no file to change")
            return
        victim = self.unread(present)
        data = victim.read_bytes()
        if fault.how == "rewrite":
            with open(victim, "r+b") as f:
                f.write(data.translate(_ROT13))
        elif fault.how == "truncate":
            with open(victim, "r+b") as f:
                f.truncate(len(data) // 2)
        else:
            fresh = victim.with_name(victim.name + ".new")
            fresh.write_bytes(data.translate(_ROT13))
            os.replace(fresh, victim)
        self.files.record([victim])
        self.event(f"{label}: {victim.name} {fault.how}")

    def unread(self, present: list[Path]) -> Path:
        """Of the job's files, the one with the most tasks not settled yet (ties: drawn): a
        change there is read by some worker after it happened, so a checker that misses it
        sees a wrong table, not a lucky one."""
        import json

        from .. import keys as k

        def read(r):
            pipe = r.pipeline(transaction=False)
            pipe.hgetall(k.specs(JOB_NAME))
            pipe.hkeys(k.done(JOB_NAME))
            return pipe.execute()
        try:
            specs, done = self.conn.call(read, 5)
        except Exception:  # noqa: BLE001 - Redis down right now: any file
            specs, done = {}, []
        left: Counter[str] = Counter()
        settled = set(done)
        for tid, spec in specs.items():
            if tid not in settled:
                fields = json.loads(spec)
                path, parts = fields[0], fields[4]
                if not path and not parts:  # a shuffle job's reduce task: no input of its own
                    continue
                for p in json.loads(parts) if parts else [[path]]:  # (a pack: each file)
                    left[p[0]] += 1
        ranked = sorted(present, key=lambda p: (-left.get(os.path.relpath(p, self.inputs), 0),
                                                self.chooser.random()))
        return ranked[0]

    # -- pauses -------------------------------------------------------------------------------

    def move_pause_worker(self, fault: Fault, label: str) -> None:
        """SIGSTOP a worker past its lease; SIGCONT later (tick): its task is stolen, then it
        wakes up and commits what it counted (a duplicate)."""
        alive = [p for p in self.pool.procs if p.poll() is None]
        if not alive:
            return
        victim = alive[self.chooser.randrange(len(alive))]
        seconds = fault.downtime_s * self.plan.claim_timeout_ms / 1000
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGSTOP)
        self.paused.append((time.monotonic() + seconds, victim.pid))
        self.event(f"{label}: worker pid {victim.pid} paused (SIGSTOP) for {seconds:.2f}s")

    def move_pause_redis(self, fault: Fault, label: str) -> None:
        """SIGSTOP Redis (its whole process group: a VM freeze) for a while, then SIGCONT; on
        RedisRaft the leader or a follower (an election under way while it is frozen)."""
        if self.raft:
            cluster = self.server
            leader = cluster.find_leader()
            others = [i for i in range(len(cluster.nodes)) if i != leader]
            victim = leader if fault.how == "leader" and leader is not None \
                else others[self.chooser.randrange(len(others))]
            seconds = fault.downtime_s * 1.6  # past an election timeout
            self._signal_node(cluster, victim, signal.SIGSTOP)
            time.sleep(seconds)
            self._signal_node(cluster, victim, signal.SIGCONT)
            self.event(f"{label}: Raft node {victim}"
                       f"{' (the leader)' if victim == leader else ''} paused {seconds:.2f}s")
            return
        proc = self.server.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(fault.downtime_s)
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        self.event(f"{label}: Redis paused (SIGSTOP) for {fault.downtime_s:.2f}s")

    @staticmethod
    def _signal_node(cluster: Any, i: int, sig: int) -> None:
        method = getattr(cluster, "pause" if sig == signal.SIGSTOP else "resume", None)
        if method is not None:
            method(i)
        else:
            proc = cluster.nodes[i].proc
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, sig)

    # -- Redis ----------------------------------------------------------------------------------

    def snapshot(self, bgsave: bool, label: str, quiet: bool = False) -> bool:
        import redis

        if self.raft:  # the Raft log is the persistence: nothing to roll back to
            return False
        try:
            self.admin.bgsave() if bgsave else self.admin.save()
        except redis.RedisError as exc:  # e.g. a BGSAVE still running: no snapshot this time
            if not quiet:
                self.event(f"{label}: refused ({exc})")
            return False
        self.report.snapshots += 1
        if not quiet:
            self.event(label)
        return True

    def aim(self, fault: Fault, window_s: float = 3.0) -> str:
        """SAVE, then wait for the commit window: a stage key on the staged path (spinning, a
        piece takes milliseconds), a short drawn delay on the atomic path."""
        import redis

        self.snapshot(False, "save (aimed kill)", quiet=True)
        # (a shuffle job's maps never stage: only its reduces do, with a small --commit-pairs)
        if not self.staged or (self.plan.reduces and client.progress(
                self.conn, JOB_NAME).phase != "reduce"):
            time.sleep(fault.aim_delay_s)
            return f", {fault.aim_delay_s:.2f}s after a save"
        until = time.monotonic() + window_s
        while time.monotonic() < until:
            try:
                if self.raft:  # through the leader-following connection
                    found = self.conn.call(lambda r: next(
                        r.scan_iter(match=self.stage_pattern, count=1000), None), 5)
                else:
                    found = next(self.admin.scan_iter(match=self.stage_pattern, count=1000),
                                 None)
                if found:
                    return ", during a staged commit"
            except (redis.RedisError, WordcountError):
                break
        return ", no staged commit seen"

    def crash(self, wipe: bool, downtime_s: float, mid_job: bool, label: str) -> None:
        """SIGKILL the whole Redis process group (a BGSAVE child too: the machine died, no
        snapshot finishes later behind our back), then restart from the last snapshot."""
        server = self.server
        if mid_job:  # the job may have finished meanwhile (an aimed kill waits)
            mid_job = not client.progress(self.conn, JOB_NAME).finished
        if self.raft:
            self.crash_node(downtime_s, mid_job, label)
            return
        if server.proc is not None and server.proc.poll() is None:
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)  # start_new_session: its own group
            except ProcessLookupError:
                pass
        server.kill()  # reaps it
        if wipe:
            server.wipe()
        from_nothing = not os.path.exists(os.path.join(server.directory, "dump.rdb"))
        time.sleep(downtime_s)
        server.start()
        self.report.kills += 1
        self.report.kills_mid += int(mid_job)
        self.report.wipes += int(from_nothing)
        self.event(f"{label}: restarted from {'nothing' if from_nothing else 'the last snapshot'}"
                   f"{'' if mid_job else ' (after the job finished)'}")

    def crash_node(self, downtime_s: float, mid_job: bool, label: str) -> None:
        """RedisRaft: SIGKILL one node (the leader, or another drawn from the seed) and start it
        again after the downtime; it replays its log and rejoins."""
        cluster = self.server
        leader = cluster.find_leader()
        victim = leader if leader is not None and self.victims.random() < 0.5 \
            else self.victims.randrange(len(cluster.nodes))
        cluster.kill(victim)
        time.sleep(max(downtime_s, 0.2))
        cluster.start(victim)
        self.report.kills += 1
        self.report.kills_mid += int(mid_job)
        self.event(f"{label}: Raft node {victim}{' (the leader)' if victim == leader else ''} "
                   f"killed and restarted{'' if mid_job else ' (after the job finished)'}")

    # -- between two batches of the submission ------------------------------------------------

    def mid_submit(self, calls: int, job: client.Job, reply: Any) -> None:
        """The submission's batch hook: SAVE after the first batch (for a rollback), and the
        drawn fault after batch ``mid_submit_after`` (only while batches remain; once a run,
        not again in the submissions that recover from it)."""
        kind, after = self.plan.mid_submit, self.plan.mid_submit_after
        if kind is None or self.happened((f"mid-{kind}",)):  # once per run
            return
        if calls == 1 and kind == "rollback":
            self.snapshot(False, "save after the first batch", quiet=True)
        if calls != after + (1 if kind == "rollback" else 0) or reply.submitted >= len(job.tasks):
            return
        self.moved(f"mid-{kind}")
        label = f"mid-submit {kind} after batch {calls} ({reply.submitted}/{len(job.tasks)})"
        if kind in ("wipe", "rollback"):
            self.crash(kind == "wipe", 0.0, mid_job=True, label=label)
        elif kind == "delete":
            self.move_delete(Fault("delete", 0, 0), label)
        else:
            c = self.second_client(True)
            self.event(f"{label}: another client's submit --fresh (pid {c.proc.pid})")


# -- one run ------------------------------------------------------------------------------------

def _connect(server: Any, deadline: float | None = None, **overrides: Any) -> Any:
    from ..connection import Connection
    from ..settings import Settings

    settings = Settings.from_env({}, redis_url=server.url, redis_password=server.password,
                                 **overrides)
    conn = Connection(settings, name="wordcount-soak", deadline=deadline)
    conn.ensure_functions()
    return conn


# a traceback's last line, or how a worker reports the error it exits on (embedded)
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\w*\b(: .*)?"
                             r"|wordcount: error: .*)$")


def _tail_errors(path: Path, limit: int = 3) -> str:
    """The last distinct exceptions (a traceback's final line, or the error a worker exited
    on) in the workers' log, to go with a failure; else the last ERROR lines."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    picked = [ln.strip() for ln in lines if _EXCEPTION_LINE.match(ln.strip())]
    if not picked:
        picked = [ln.strip() for ln in lines if " ERROR " in ln]
    unique = list(dict.fromkeys(reversed(picked)))[:limit]
    return " | ".join(ln[:240] for ln in reversed(unique))


def _set_queue(job: client.Job, queue: str | None) -> None:
    if queue is not None:
        job.queue = queue


class _Run:
    """One run: the system under test, the main job (and maybe a second one), the nemesis, and
    the checker's bookkeeping. ``run_one`` drives it."""

    def __init__(self, plan: RunPlan, rundir: Path, report: RunReport, timeout_s: float,
                 queue: str | None, raft: bool) -> None:
        self.plan, self.rundir, self.report = plan, rundir, report
        self.queue, self.raft = queue, raft
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s
        self.timeout_s = timeout_s
        self.files = Files()
        self.server = self.conn = self.cluster = self.pool = self.nemesis = None
        self.hidden: list[tuple[Path, Path]] = []  # (where it was, where it is now)
        self.job: client.Job | None = None
        self.expected: Counter[str] = Counter()  # the main job's oracle, as planned
        self.recoveries = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the job did not finish within {self.timeout_s:g} s")
        return left

    # -- set up ------------------------------------------------------------------------------

    def start(self) -> None:
        from ..embedded import LocalCluster, RedisServer
        from ..workeropts import WorkerOptions

        plan, rundir = self.plan, self.rundir
        generated = plan.corpus.generate(rundir / "a")
        if plan.replan == "corpus":
            generated += plan.corpus2.generate(rundir / "b")  # type: ignore[union-attr]
        if plan.job2 is not None:
            generated += plan.job2.generate(rundir / "j2")
        self.files.record(generated)
        if plan.mapped:  # workers see the inputs under their own data root
            os.symlink(rundir, rundir / "mnt")
        if self.raft:  # three RedisRaft nodes on loopback, on the lease queue
            from .raft import RaftCluster

            self.server = RaftCluster(3, directory=str(rundir / "raft"))
            self.queue = "lease"
        else:
            self.server = RedisServer(directory=str(rundir / "redis"), save="")
        self.server.start()
        overrides = {"submit_batch": plan.submit_batch}
        if plan.mapped:
            overrides["data_root"] = str(rundir)
        self.conn = _connect(self.server, deadline=self.deadline, **overrides)
        env = {**self.server.env(), "WORDCOUNT_SPECULATE_MIN_MS": str(plan.speculate_min_ms)}
        if plan.mapped:
            env["WORDCOUNT_DATA_ROOT"] = str(rundir / "mnt")
        envs = [{"WORDCOUNT_CLOCK_SKEW_MS": str(ms)} if ms else {} for ms in plan.skews_ms]
        self.cluster = LocalCluster(
            plan.workers, env=env, options=WorkerOptions.parse(plan.worker_args()),
            log_path=str(rundir / "workers.log"),
            first_options=WorkerOptions.parse(plan.worker_args() + plan.straggler_args()),
            first=1 if plan.straggler_slowdown else 0, envs=envs, stop_timeout=5.0).start()
        self.pool = self.cluster.pool
        client_env = {**self.server.env(), "WORDCOUNT_SUBMIT_BATCH": str(plan.submit_batch),
                      **({"WORDCOUNT_DATA_ROOT": str(rundir)} if plan.mapped else {})}
        self.nemesis = Nemesis(plan, self.server, self.conn, self.pool, self.report,
                               self.started, raft=self.raft, restore=self.restore,
                               client_env=client_env, rundir=rundir, files=self.files)
        self.nemesis.deadline = self.deadline

    def plan_job(self, inputs: Path, chunk: int, name: str = JOB_NAME) -> client.Job:
        job = client.plan_job([str(inputs)], chunk, name,
                              data_root=str(self.rundir) if self.plan.mapped else None)
        _set_queue(job, self.queue)
        # the shuffle path: every incarnation this client creates (a resubmission after a
        # wipe, a --fresh) has its R
        job.reduces = self.plan.reduces if name == JOB_NAME else self.plan.job2_reduces
        return job

    def restore(self) -> None:
        while self.hidden:
            where, now = self.hidden.pop()
            shutil.move(now, where)
            self.files.record([where])
        self.nemesis.hidden = False

    # -- the main job ------------------------------------------------------------------------

    def submit_main(self, inputs: Path, chunk: int, fresh: bool) -> None:
        """Plan the main job as the inputs are now and submit it (between its batches, the
        drawn mid-submission fault)."""
        self.job = self.plan_job(inputs, chunk)
        self.expected = oracle_of(self.files.now(inputs))
        self.nemesis.inputs, self.nemesis.chunk = inputs, chunk
        self.nemesis.queue = self.job.queue
        self.report.tasks, self.report.bytes = len(self.job.tasks), self.job.total_bytes
        calls = 0

        def on_batch(reply: Any) -> None:
            nonlocal calls
            calls += 1
            self.nemesis.mid_submit(calls, self.job, reply)
        client.submit(self.conn, self.job, fresh=fresh, on_batch=on_batch)
        if self.plan.hide_file is not None and not self.nemesis.happened(("hide",)):
            self.hide()

    def hide(self) -> None:
        """Hide a file of the inputs right after the submission: its tasks are dead-lettered
        (cannot read) until a requeue move puts it back."""
        present = sorted(p for p in (self.rundir / "a").iterdir() if p.is_file())
        victim = present[self.plan.hide_file % len(present)]  # type: ignore[operator]
        self.hidden.append((victim, self.rundir / "hidden"))
        shutil.move(victim, self.rundir / "hidden")
        self.nemesis.hidden = True
        self.nemesis.fired.append((time.monotonic(), "hide"))
        self.files.record([victim])

    def allow(self, exc: Exception, causes: Sequence[str]) -> None:
        """A documented loud failure of the main client: allowed only after a move that causes
        it (the operator's answer, submitting the inputs again, follows)."""
        what = type(exc).__name__
        if not self.nemesis.happened(causes):
            raise RunFailed(f"{what} with no move that causes it ({', '.join(causes)}): {exc}")
        self.recoveries += 1
        if self.recoveries > MAX_RECOVERIES:
            raise RunFailed(f"{self.recoveries} loud failures in a row (a livelock?): {exc}")
        self.report.loud[what] = self.report.loud.get(what, 0) + 1
        self.nemesis.fired.append((time.monotonic(), "recovered"))
        self.nemesis.event(f"client: {what} ({exc}); submitting again with --fresh")

    def follow_main(self) -> tuple[Any, Any]:
        """Submit the main job, wait for it and read its result, through moves and the
        recoveries that loud failures call for."""
        plan, nemesis, rundir = self.plan, self.nemesis, self.rundir

        def first() -> None:
            self.submit_main(rundir / "a", plan.chunk_size, fresh=False)

        def again() -> None:
            self.submit_main(nemesis.inputs, nemesis.chunk, fresh=True)

        def replan() -> None:
            self.restore()  # the new plan is over whole corpora
            # --fresh: replaces the old plan in one call (and again if a rollback brings the
            # old plan back: the client remembers what it replaced)
            self.submit_main(rundir / ("b" if plan.replan == "corpus" else "a"),
                             plan.chunk_size2, fresh=True)
            self.report.replan = True

        action: Callable[[], None] | None = first
        while True:
            try:
                if action is not None:
                    action, todo = None, action
                    todo()
                return self._wait_and_read()
            except _Replan:
                action = replan
            except JobCancelledError as exc:
                self.allow(exc, ("cancel",))
                action = again
            except JobDeletedError as exc:
                self.allow(exc, ("delete", "delete-cut", "mid-delete"))
                action = again
            except InputChangedError as exc:
                self.allow(exc, ("change",))
                action = again
            except JobConflictError as exc:  # another client replaced it with another plan
                self.allow(exc, ("fresh", "client2", "mid-fresh"))
                action = again
            nemesis.tick()

    def _wait_and_read(self) -> tuple[Any, Any]:
        plan, nemesis, job = self.plan, self.nemesis, self.job
        waited = client.wait(self.conn, job, poll_s=POLL_S, quiet=True,
                             timeout_s=self.remaining(), on_poll=lambda: nemesis.poll(job))
        if plan.late_kill and not nemesis.happened(("late-kill",)):
            self.report.faults_fired += 1
            nemesis.moved("late-kill")
            time.sleep(plan.late_linger_s)  # (no tending meanwhile: idle workers exit)
            nemesis.crash(False, plan.late_downtime_s, mid_job=False, label="late kill")
            if plan.late_linger_s and plan.hide_file is None:  # read at once: the read
                # waits for the rolled-back job itself, and must start the workers again
                return client.result(self.conn, job, time.monotonic() - self.started,
                                     waited, on_poll=nemesis.tick, timeout_s=self.remaining())
            waited = client.wait(self.conn, job, poll_s=POLL_S, quiet=True,
                                 timeout_s=self.remaining(), on_poll=nemesis.tick)
        for _ in range(5 if plan.hide_file is not None else 0):
            if not waited.dead:  # (a dead letter left without a hidden file fails the run)
                break
            nemesis.requeue(f"requeue after the job, {waited.dead} dead")
            waited = client.wait(self.conn, job, poll_s=POLL_S, quiet=True,
                                 timeout_s=self.remaining(), on_poll=nemesis.tick)
        return client.result(self.conn, job, time.monotonic() - self.started, waited)

    # -- the checker ---------------------------------------------------------------------------

    def check_table(self, got: Counter[str], expected: Counter[str], what: str) -> None:
        if tsv(got) != tsv(expected):
            self.report.diff = diff_summary(got, expected)
            raise RunFailed(f"{what}: counts differ from the oracle")

    def check_clients(self) -> None:
        """Every second client ended, within the bound, in the exact table of inputs it saw or
        in a loud failure that a move made while it ran explains."""
        n = self.nemesis
        # the workers are tended meanwhile (they exit when idle, and a second client's --fresh
        # may have started the job again after ours was done)
        bound = self.deadline + 15
        while any(c.proc.poll() is None for c in n.clients):
            if time.monotonic() > bound:
                late = [c.proc.pid for c in n.clients if c.proc.poll() is None]
                raise RunFailed(f"second clients {late} did not end within the bound (a hang)")
            n.tick()
            time.sleep(POLL_S)
        for c in n.clients:
            _, err = c.proc.communicate()
            end = c.ended or time.monotonic()
            code, tail = c.proc.returncode, (err or "").strip().splitlines()[-1:]
            why = f"second client pid {c.proc.pid} ({'--fresh' if c.fresh else 'submit'}) " \
                  f"exit {code}: {' '.join(tail)[:300]}"
            during = (c.started, end)
            since = (0.0, end)  # (another plan: its own, if the inputs changed before it ran)
            if code == 0:
                got = c.out.read_text(encoding="utf-8")
                tmp = c.out.with_suffix(".expected")
                if not any(got == c.expected(state, tmp)
                           for state in self.files.between(*during, c.inputs)):
                    if c.app in (None, "wordcount"):
                        self.report.diff = diff_summary(
                            Counter({w: int(n) for w, n in (line.rsplit("\t", 1) for line in
                                                            got.splitlines())}),
                            oracle_of(self.files.now(c.inputs)))
                    raise RunFailed(f"{why}{f' (--app {c.app})' if c.app else ''}: its table "
                                    "is the oracle of no state of the inputs")
                continue
            allowed = {
                EXIT_CANCELLED: ("cancel",),
                EXIT_DELETED: ("delete", "delete-cut", "mid-delete"),
                EXIT_INPUT_ERRORS: ("change",),
                EXIT_USAGE: ("fresh", "client2", "mid-fresh", "replan", "recovered", "change",
                             "hide"),
            }.get(code, ())
            if c.out.exists() and code != EXIT_INPUT_ERRORS:
                raise RunFailed(f"{why}: a table was written with a failure")
            window = since if code == EXIT_USAGE else during
            if not (n.happened(allowed, *window) or (code == EXIT_INPUT_ERRORS and self.plan
                                                    .hide_file is not None)):
                raise RunFailed(f"{why}: no move while it ran explains it")


def run_one(seed: int, commit_path: str, workdir: Path | str, timeout_s: float = DEFAULT_TIMEOUT_S,
            keep: bool = False, plan: RunPlan | None = None, queue: str | None = None,
            raft: bool = False) -> RunReport:
    """Run the plan drawn from ``seed`` once, in ``workdir/seed-<seed>-<path>`` (deleted at the
    end unless ``keep``), and check the result against the oracle. Never raises for a failure
    of the system under test: that is the report's ``ok``/``reason``. ``queue`` (stream |
    lease) sets the jobs' task queue (else the client's default)."""
    plan = plan or draw_plan(seed, commit_path)
    report = RunReport(seed=seed, commit_path=commit_path, reduces=plan.reduces,
                       faults_planned=len(plan.faults) + len(plan.reduce_faults)
                       + int(plan.late_kill))
    rundir = Path(workdir) / f"seed-{seed}-{commit_path}"
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    (rundir / "plan.txt").write_text(plan.describe() + "\n", encoding="utf-8")
    handler = logging.FileHandler(rundir / "client.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    pid = os.getpid()  # forked workers inherit this handler: keep only our own records
    handler.addFilter(lambda record: record.process == pid)
    package_log = logging.getLogger("wordcount")
    old_level = package_log.level
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    run = _Run(plan, rundir, report, timeout_s, queue, raft)
    try:
        run.start()
        job2 = None
        if plan.job2 is not None:  # a second job on the same workers, maybe the other queue
            job2 = run.plan_job(rundir / "j2", 30_000, JOB2_NAME)
            if plan.job2_other_queue and not raft:
                job2.queue = "lease" if job2.queue == "stream" else "stream"
            client.submit(run.conn, job2)
            report.jobs = 2
        res, progress = run.follow_main()
        report.stolen, report.backups = progress.stolen, progress.backups
        report.duplicates, report.resubmits = progress.duplicates, progress.resubmits
        if res.errors:
            raise RunFailed(f"{len(res.errors)} tasks dead-lettered, e.g. {res.errors[0].path}: "
                            f"{res.errors[0].error}")
        expected = run.expected
        if report.replan and tsv(res.counts) != tsv(expected) and tsv(res.counts) == tsv(
                oracle_of(run.files.now(rundir / "a"))) and plan.replan == "corpus":
            report.diff = diff_summary(res.counts, expected)
            raise RunFailed("counts differ from the oracle (the result is the FIRST plan's: "
                            "the re-plan was lost)")
        run.check_table(res.counts, expected, "the job")
        if job2 is not None:
            waited2 = client.wait(run.conn, job2, poll_s=POLL_S, quiet=True,
                                  timeout_s=run.remaining(), on_poll=run.nemesis.tick)
            res2, _ = client.result(run.conn, job2, 0, waited2)
            run.check_table(res2.counts, oracle_of(run.files.now(rundir / "j2")),
                            "the second job")
        run.check_clients()
        report.ok = True
    except RunFailed as exc:
        report.reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - every escaping exception is a failed run
        kind = "timeout" if isinstance(exc, TimeoutError) or (
            "did not finish within" in str(exc) or "the deadline" in str(exc)) \
            else type(exc).__name__
        report.reason = f"{kind}: {exc}" if kind != "timeout" else f"timeout (a hang): {exc}"
        if not isinstance(exc, WordcountError) and kind != "timeout":
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1]
            report.reason += f" (at {os.path.basename(where.filename)}:{where.lineno})"
        workers = _tail_errors(rundir / "workers.log")
        if workers and kind in ("WordcountError", "timeout"):
            report.reason += f"; workers' log: {workers}"
    finally:
        report.seconds = round(time.monotonic() - run.started, 2)
        if run.nemesis is not None:
            run.nemesis.close()
        if run.pool is not None:
            report.crashes = run.pool.crashes + sum(
                1 for p in run.pool.procs if p.poll() == _crash_exit())
            run.cluster.stop()
        if run.conn is not None:
            run.conn.close()
        if run.server is not None:
            proc = getattr(run.server, "proc", None)
            pgid = proc.pid if proc is not None else None
            if pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGCONT)  # (a pause cut short)
            run.server.stop()
            if pgid is not None:
                try:  # a BGSAVE child that outlived its server
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        package_log.removeHandler(handler)
        package_log.setLevel(old_level)
        handler.close()
        report.late_maps = _count_lines(rundir / "workers.log", LATE_LINE)
        if keep:
            report.rundir = str(rundir)
        else:
            shutil.rmtree(rundir, ignore_errors=True)
            report.reason = report.reason.replace(str(rundir), "<run dir: replay with --keep>")
    return report


LATE_LINE = "the reduce phase already began"  # queue.complete_map's log line for a LATE map


def _count_lines(path: Path, text: str) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if text in line)
    except OSError:
        return 0


def _crash_exit() -> int:
    from .faults import CRASH_EXIT

    return CRASH_EXIT


# -- many runs ----------------------------------------------------------------------------------

@dataclass
class SoakSummary:
    reports: list[RunReport]

    @property
    def failures(self) -> list[RunReport]:
        return [r for r in self.reports if not r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.reports) and not self.failures

    def total(self, attr: str) -> int:
        return sum(int(getattr(r, attr)) for r in self.reports)

    def moves_line(self) -> str:
        """Each move: in how many runs it fired, and how many of those passed."""
        kinds = sorted({k for r in self.reports for k in r.moves})
        return ", ".join(f"{k} {sum(1 for r in self.reports if k in r.moves and r.ok)}/"
                         f"{sum(1 for r in self.reports if k in r.moves)}" for k in kinds)

    def loud_line(self) -> str:
        found: Counter[str] = Counter()
        for r in self.reports:
            found.update(r.loud)
        return ", ".join(f"{k} {n}" for k, n in sorted(found.items()))


def replay_command(seed: int, commit_path: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                   queue: str | None = None, raft: bool = False) -> str:
    python = sys.executable
    rel = os.path.relpath(python)
    if not rel.startswith(".."):
        python = rel
    cmd = [python, "-m", "wordcount.lab.soak", "--runs", "1", "--seed", str(seed), "--path",
           commit_path, "--keep"]
    if timeout_s != DEFAULT_TIMEOUT_S:
        cmd += ["--timeout", f"{timeout_s:g}"]
    if queue:
        cmd += ["--queue", queue]
    if raft:
        cmd += ["--raft"]
    return shlex.join(cmd)


def run_many(runs: int, seed: int, paths: Sequence[str] = PATHS, workdir: Path | str | None = None,
             keep: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S, out: IO[str] | None = None,
             on_report: Callable[[RunReport], None] | None = None, queue: str | None = None,
             raft: bool = False, seeds: Sequence[int] | None = None) -> SoakSummary:
    """``runs`` runs: run i uses seed ``seed + i`` (or ``seeds[i]``: then one run per seed of
    that list, whatever ``runs`` and ``seed``) on ``paths[i % len(paths)]``. Prints one line
    per run, then a summary and, for each failure, its seed and the command replaying it."""
    out = out or sys.stdout
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(runs)]
    runs = len(seeds)
    for p in paths:
        if p not in PATHS:
            raise ValueError(f"commit path must be one of {', '.join(PATHS)}: {p!r}")
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="wordcount-soak-")) if own else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    reports: list[RunReport] = []
    try:
        for i in range(runs):
            path = paths[i % len(paths)]
            report = run_one(seeds[i], path, base, timeout_s=timeout_s, keep=keep,
                             queue=queue, raft=raft)
            reports.append(report)
            print(f"[{i + 1:>{len(str(runs))}}/{runs}] {report.line()}", file=out, flush=True)
            if keep:
                print(f"    kept: {report.rundir}", file=out, flush=True)
            if on_report:
                on_report(report)
    finally:
        if own and not keep:
            shutil.rmtree(base, ignore_errors=True)
    summary = SoakSummary(reports)
    by_path = ", ".join(f"{sum(1 for r in reports if r.commit_path == p)} {p}" for p in paths)
    failed = summary.failures
    print(f"soak{' on RedisRaft' if raft else ''}: {len(reports)} runs ({by_path}): "
          f"{len(reports) - len(failed)} passed, "
          f"{len(failed)} failed; Redis kills {summary.total('kills')} "
          f"({summary.total('kills_mid')} mid-job, {summary.total('wipes')} from nothing), "
          f"snapshots {summary.total('snapshots')}, worker crashes {summary.total('crashes')}, "
          f"re-plans {summary.total('replan')}, stolen {summary.total('stolen')}, "
          f"backups {summary.total('backups')}, duplicates {summary.total('duplicates')}",
          file=out, flush=True)
    print(f"  moves (runs that survived it / runs it fired in): {summary.moves_line()}",
          file=out, flush=True)
    print(f"  loud failures recovered from: {summary.loud_line() or 'none'}; second clients "
          f"{summary.total('clients')}; runs with two jobs "
          f"{sum(1 for r in reports if r.jobs > 1)}", file=out, flush=True)
    shuffled = [r for r in reports if r.reduces]
    if shuffled:
        print(f"  shuffle: {len(shuffled)} runs (R {min(r.reduces for r in shuffled)}-"
              f"{max(r.reduces for r in shuffled)}); moves in a reduce phase "
              f"{sum(r.reduce_moves for r in shuffled)} (in "
              f"{sum(1 for r in shuffled if r.reduce_moves)} runs); maps committed late "
              f"{sum(r.late_maps for r in shuffled)} (in "
              f"{sum(1 for r in shuffled if r.late_maps)} runs)", file=out, flush=True)
    for r in failed:
        print(f"FAILED seed {r.seed} ({r.commit_path}): {r.reason}", file=out)
        if r.diff:
            print(f"    {r.diff}", file=out)
        print(f"    events: {'; '.join(r.events) or 'none'}", file=out)
        print(f"    replay: {replay_command(r.seed, r.commit_path, timeout_s, queue, raft)}",
              file=out, flush=True)
    return summary


# -- command line -------------------------------------------------------------------------------

def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=_positive, default=20, metavar="N",
                   help="runs; run i uses seed S+i and the paths in turn (default 20)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="first seed (default 1)")
    p.add_argument("--path", choices=[*PATHS, "all", "both"], default="all",
                   help="commit path: atomic (one wc_commit per task), staged (--commit-pairs "
                        "50-500: stage, commit, merge), shuffle (--commit shuffle, R 1-6: "
                        "maps commit partitions, reduce tasks sum them) or all in turn "
                        "(default; `both` is its older name)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"a job not finished after S seconds fails (default "
                        f"{DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--workdir", metavar="DIR",
                   help="where runs put their corpus, Redis data and logs (default: a temp dir)")
    p.add_argument("--keep", action="store_true",
                   help="keep every run's directory (corpus, dump.rdb, workers.log, client.log, "
                        "plan.txt)")
    p.add_argument("--queue", choices=["stream", "lease"],
                   help="the jobs' task queue, where the client offers the choice (default: "
                        "the client's default)")
    p.add_argument("--raft", action="store_true",
                   help="run on a 3-node RedisRaft cluster on loopback (lease queue; node "
                        "kills instead of rollbacks); needs `make raft-bin`")
    p.add_argument("--plan-only", action="store_true",
                   help="print the plans drawn from the seeds and run nothing")


def cmd_soak(args: argparse.Namespace) -> int:
    paths = PATHS if args.path in ("all", "both") else (args.path,)
    if args.plan_only:
        for i in range(args.runs):
            print(draw_plan(args.seed + i, paths[i % len(paths)]).describe(), end="\n\n")
        return 0
    try:
        summary = run_many(args.runs, args.seed, paths, workdir=args.workdir, keep=args.keep,
                           timeout_s=args.timeout, queue=args.queue, raft=args.raft)
    except WordcountError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0 if summary.ok else EXIT_SOAK_FAILED


def add_parser(sub) -> None:
    p = sub.add_parser(
        "soak", help="randomized, seeded fault runs (Redis SIGKILL + rollback, worker crashes, "
                     "re-plans) checked word for word against the oracle",
        description="Each run: a generated corpus, a private redis-server and crashing workers, "
                    "a nemesis drawn from the seed; the full count table must equal the "
                    f"reference rule's. Exit 0 if every run passed, {EXIT_SOAK_FAILED} "
                    "otherwise.")
    add_arguments(p)
    p.set_defaults(handler=cmd_soak)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wordcount.lab.soak",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_soak(args)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
