"""``wordcount soak``: a randomized, seeded fault harness for the exactly-once commit protocol
(a small Jepsen-style checker of our own protocol, on this machine).

Every run is drawn from one seed (``draw_plan(seed, commit_path)``, a pure function: same seed,
same plan of faults) and then executed for real:

- **Workload.** A small generated corpus (3-8 files of 60-300 kB, sometimes a skew file of up
  to 1 MB, sometimes Unicode), planned in 10-45 byte-range tasks (chunks >= 20 kB); one job.
  A run takes ~2-25 s here (2 cores), ~8 s on average.
- **System under test.** A private password-protected ``redis-server`` on 127.0.0.1 with
  automatic snapshots OFF (``save ""``), and a ``WorkerPool`` of 2-4 forked workers that are
  respawned when they crash: ``--crash-at any --crash-prob p`` (a crash at a random point of a
  task attempt, commit included), ``--stall-prob``/``--stall-max`` (a frozen worker whose task
  is stolen), a pace (``--slowdown`` 1-100 for every worker: a task lasts long enough for a
  snapshot and a kill to fall inside it), often one straggler (worker 0 at 4-12x that pace,
  with ``WORDCOUNT_SPECULATE_MIN_MS`` small, so it gets backed up), a short
  ``--claim-timeout``, ``--max-attempts 1000``. On the ``staged`` path
  ``--commit-pairs`` is 50-500, so every task commits stage → wc_commit_staged → merge; on the
  ``atomic`` path every task commits in one wc_commit.
- **Nemesis.** A schedule of faults, each fired once the current plan's progress reaches a drawn
  fraction of its tasks and a drawn delay has passed since the previous fault (so they land in
  the middle of the job, whatever the machine's speed):
  ``snapshot`` (SAVE or BGSAVE through a separate client: the harness alone decides what a
  restart comes back to; most runs also BGSAVE every ~0.2-1.5 s, like Redis's own ``save``),
  ``kill`` (SIGKILL of Redis's process group, BGSAVE child included, then a restart from the
  last snapshot: a rollback to an older state, for real), ``wipe`` (the same, restarting from
  nothing), an *aimed* kill (SAVE, then kill as soon as a staged commit is under way, i.e. a
  stage key exists: its pieces were written after the snapshot and are lost, while the task
  itself is still pending in it; on the atomic path a short drawn delay after the SAVE), and in
  some runs ``replan``: mid-job, ``submit --fresh`` of a
  different plan (another corpus, or the same corpus in another chunk size) under the SAME job
  name; from then on the expected result is the second plan's. Re-plan runs often snapshot just
  before the re-plan and kill just after it, so the rollback brings the OLD plan back (the
  client replaces it again: it remembers which incarnation it replaced). Some runs also kill
  Redis after the job finished and before its result is read. Some runs hide one input file
  right after the submission (its tasks are dead-lettered), and a ``requeue`` fault puts it back and
  requeues them (``jobs.requeue``: dead letters back in the queue, under the same faults);
  whatever is still dead once the job is done (the requeue came first, or a rollback undid it)
  is requeued again, as an operator would, and the table must still be exact.
- **Checker.** The FULL count table (every word and count, compared byte for byte in the
  ``word<TAB>count`` form of ``--counts-out``) must equal the oracle: ``words.reference_counts``
  over each whole file of the expected plan, read straight from disk (nothing of the distributed
  code is trusted for it). A run also fails if tasks were dead-lettered, if the job does not
  finish within the time bound, or if any exception escapes (a ``WordcountError`` such as the
  client's self-check, a worker exiting on an error, anything): its type and message are the
  failure reason.

Timing (which task a kill interrupts) is not reproducible, only the plan of faults is: replaying
a failing seed re-runs the same workload and schedule, which usually, not always, fails again.

**On RedisRaft** (``--raft``): the same runs on a three-node RedisRaft cluster on loopback
(``wordcount.raft``; its binaries from ``make raft-bin``), on the lease queue. There are no
snapshots to roll back to (the Raft log is the persistence): each ``kill``/``wipe`` SIGKILLs
one node, the leader or another at random (drawn from the seed), and starts it again after the
downtime; an aimed kill hits the leader during a staged commit. Nothing may roll back, and the
full table must still equal the oracle.

``python -m wordcount.soak --runs N --seed S [--path atomic|staged|both] [--keep]``: run i uses
seed S+i and the i-th path in turn; one line per run, a summary, and for each failure the seed
and the command that replays it. Exit 0 only if every run passed, ``EXIT_SOAK_FAILED`` (6)
otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from . import client, corpus, keys
from .exceptions import WordcountError
from .words import reference_counts

log = logging.getLogger(__name__)

PATHS = ("atomic", "staged")
JOB_NAME = "soak"
EXIT_SOAK_FAILED = 6  # distinct from every status of exceptions.py (0-5, 130)
DEFAULT_TIMEOUT_S = 90.0  # a run whose job has not finished by then fails ("timeout")
POLL_S = 0.05


# -- the plan of a run, drawn from its seed ---------------------------------------------------

@dataclass(frozen=True)
class CorpusSpec:
    seed: int
    files: int
    size: int  # bytes per file
    skew_size: int  # 0: no skew file
    unicode: bool

    @property
    def total_bytes(self) -> int:
        return self.files * self.size + self.skew_size

    def generate(self, directory: Path) -> list[Path]:
        return corpus.generate(directory, self.files, self.size, self.skew_size, self.seed,
                               unicode=self.unicode)


@dataclass(frozen=True)
class Fault:
    kind: str  # "snapshot" | "kill" | "wipe" | "replan" | "requeue"
    at_fraction: float  # fires once (done + dead) / total of the current plan reaches this ...
    delay_s: float  # ... and at least this long after the previous fault fired (or the start)
    bgsave: bool = False  # snapshot: BGSAVE (a forked child) instead of SAVE
    downtime_s: float = 0.0  # kill / wipe: how long Redis stays down
    # kill: aimed at the commit window. SAVE first, then kill as soon as a stage key exists
    # (a staged commit under way: staged after the snapshot, not committed yet), or on the
    # atomic path after ``aim_delay_s``; a kill at a blind moment otherwise.
    aimed: bool = False
    aim_delay_s: float = 0.0

    def describe(self) -> str:
        what = {"snapshot": "bgsave" if self.bgsave else "save"}.get(self.kind, self.kind)
        if self.aimed:
            what = f"save+aimed-{what}"
        down = f" down {self.downtime_s:.2f}s" if self.kind in ("kill", "wipe") else ""
        return f"{what}@{self.at_fraction:.2f}+{self.delay_s:.2f}s{down}"


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
    # Dead letters, then requeue: this file of the first corpus (an index into its sorted
    # files) is hidden once the job is submitted, so its tasks are dead-lettered; the
    # "requeue" fault puts it back and requeues them (wordcount requeue), and once the job is
    # done any dead letter left (the requeue came too early, or a rollback undid it) is
    # requeued again, as an operator would. None: no hidden file.
    hide_file: int | None = None

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
            + (f" (--commit-pairs {self.commit_pairs})" if self.commit_pairs else ""),
            f"corpus: {c.files} x {c.size:,} B" + (f" + skew {c.skew_size:,} B" if c.skew_size
                                                   else "")
            + (", unicode" if c.unicode else "") + f", corpus seed {c.seed}; chunk "
            f"{self.chunk_size:,} B",
            f"workers: {self.workers}, " + " ".join(self.worker_args())
            + (f"; worker 0 {' '.join(self.straggler_args())}" if self.straggler_slowdown
               else "") + f"; WORDCOUNT_SPECULATE_MIN_MS={self.speculate_min_ms}",
            (f"snapshots: BGSAVE every ~{self.snapshot_every_s:.2f}s; " if self.snapshot_every_s
             else "snapshots: only the scheduled ones; ")
            + "faults: " + ", ".join(f.describe() for f in self.faults)
            + (f"; late kill (down {self.late_downtime_s:.2f}s)" if self.late_kill else ""),
        ]
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


def draw_plan(seed: int, commit_path: str) -> RunPlan:
    """The whole plan of a run, from ``random.Random(seed)`` only (no clock, no I/O). Both
    paths draw the same values (commit_pairs is drawn and dropped on the atomic path), so one
    seed is the same workload and schedule on either path."""
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
    hide = None  # drawn last: the draws above are those of seeds before requeue existed
    if rng.random() < 0.3:
        hide = rng.randrange(spec.files + (1 if spec.skew_size else 0))
        at = round(rng.uniform(0.2, 0.9), 3)
        position = sum(1 for f in events if f.at_fraction <= at)
        events.insert(position, Fault("requeue", at, round(rng.uniform(0.0, 0.5), 2)))
    return RunPlan(seed=seed, commit_path=commit_path, corpus=spec, chunk_size=chunk,
                   workers=workers, crash_prob=crash_prob, stall_prob=stall_prob,
                   stall_max=stall_max, claim_timeout_ms=claim_timeout,
                   speculate_min_ms=speculate_min, pace=pace, straggler_slowdown=straggler,
                   snapshot_every_s=snapshot_every,
                   commit_pairs=pairs if commit_path == "staged" else None,
                   faults=tuple(events), replan=replan, corpus2=corpus2, chunk_size2=chunk2,
                   late_kill=late, late_downtime_s=late_down, hide_file=hide)


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
    replan: bool = False  # a re-plan actually happened (forget + submit of another plan)
    requeued: int = 0  # dead-lettered tasks requeued (wordcount requeue), all rounds
    crashes: int = 0  # injected worker crashes (pool.crashes)
    stolen: int = 0
    backups: int = 0
    duplicates: int = 0
    resubmits: int = 0
    faults_fired: int = 0
    faults_planned: int = 0
    events: list[str] = field(default_factory=list)  # "t=1.23s kill@0.40 (mid-job)", ...
    rundir: str = ""  # kept run directory (--keep), else ""

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        text = (f"seed {self.seed:<6} {self.commit_path:<6} {status} {self.seconds:5.1f}s "
                f"tasks {self.tasks:3} kills {self.kills} (mid {self.kills_mid}) "
                f"wipes {self.wipes} snaps {self.snapshots} "
                f"replan {'yes' if self.replan else 'no '} crashes {self.crashes:3} "
                f"stolen {self.stolen:3} backups {self.backups:2} "
                f"dups {self.duplicates:2}"
                + (f" requeued {self.requeued}" if self.requeued else ""))
        if not self.ok:
            text += f"\n    {self.reason}"
            if self.diff:
                text += f"\n    {self.diff}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Replan(Exception):
    """Raised from on_poll to leave client.wait when the re-plan fault fires."""


def tsv(counts: Counter[str]) -> str:
    """The ``--counts-out`` form: every word, by count descending then word."""
    return "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def oracle(files: Sequence[Path]) -> Counter[str]:
    """The reference rule over each whole file, straight from disk."""
    total: Counter[str] = Counter()
    for path in files:
        total.update(reference_counts(Path(path).read_bytes()))
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


# -- the nemesis --------------------------------------------------------------------------------

class Nemesis:
    """Fires the plan's faults from client.wait's on_poll, and tends the worker pool."""

    def __init__(self, plan: RunPlan, server: Any, conn: Any, pool: Any, report: RunReport,
                 started: float, raft: bool = False,
                 restore: Callable[[], None] = lambda: None) -> None:
        import redis

        self.restore = restore  # puts the hidden file back (requeue)
        self.raft = raft
        self.victims = random.Random(plan.seed + 1)  # which Raft node a kill hits
        self.faults = list(plan.faults)
        self.next = 0
        self.server, self.conn, self.pool, self.report = server, conn, pool, report
        self.started = started
        self.last = started
        self.staged = plan.commit_pairs is not None
        self.every = 0.0 if raft else plan.snapshot_every_s
        self.next_snapshot = started + self.every if self.every else float("inf")
        self.jitter = random.Random(plan.seed)  # periodic snapshot jitter (timing only)
        self.stage_pattern = keys.job_pattern(JOB_NAME)[:-1] + "stage:*"
        # A separate plain client for SAVE/BGSAVE: the harness decides when snapshots happen.
        self.admin = None if raft else redis.Redis(
            host="127.0.0.1", port=server.port, password=server.password, socket_timeout=15,
            socket_connect_timeout=2)

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()

    def event(self, text: str) -> None:
        line = f"t={time.monotonic() - self.started:.2f}s {text}"
        self.report.events.append(line)
        log.info("nemesis: %s", line)

    def poll(self, job: client.Job) -> None:
        self.pool.tend()
        if time.monotonic() >= self.next_snapshot:
            self.snapshot(True, "periodic bgsave", quiet=True)
            self.next_snapshot = time.monotonic() + self.every * self.jitter.uniform(0.5, 1.5)
        if self.next >= len(self.faults):
            return
        fault = self.faults[self.next]
        if time.monotonic() - self.last < fault.delay_s:
            return
        p = client.progress(self.conn, job.name)
        total = p.total or len(job.tasks)
        fraction = (p.done + p.dead) / total if total else 0.0
        if fraction < fault.at_fraction or p.finished:
            return
        self.next += 1
        self.report.faults_fired += 1
        label = f"{fault.describe()} at {fraction:.2f} of {job.name} plan {job.plan_id}"
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
        self.last = time.monotonic()

    def requeue(self, label: str) -> int:
        """The cause fixed (the hidden file back), the dead letters requeued."""
        from . import jobs

        self.restore()
        n = jobs.requeue(self.conn, JOB_NAME)
        self.report.requeued += n
        self.event(f"{label}: {n} dead-lettered tasks requeued")
        return n

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
        if not self.staged:
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


# -- one run ------------------------------------------------------------------------------------

def _connect(server: Any) -> Any:
    from .connection import Connection
    from .settings import Settings

    settings = Settings.from_env({}, redis_url=server.url, redis_password=server.password)
    conn = Connection(settings, name="wordcount-soak")
    conn.ensure_functions()
    return conn


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\w*\b(: .*)?$")


def _tail_errors(path: Path, limit: int = 3) -> str:
    """The last distinct exceptions (a traceback's final line) in the workers' log, to go with
    a failure; else the last ERROR lines."""
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


def run_one(seed: int, commit_path: str, workdir: Path | str, timeout_s: float = DEFAULT_TIMEOUT_S,
            keep: bool = False, plan: RunPlan | None = None, queue: str | None = None,
            raft: bool = False) -> RunReport:
    """Run the plan drawn from ``seed`` once, in ``workdir/seed-<seed>-<path>`` (deleted at the
    end unless ``keep``), and check the result against the oracle. Never raises for a failure
    of the system under test: that is the report's ``ok``/``reason``. ``queue`` (stream |
    lease) sets the jobs' task queue, where the client has that choice (else the default)."""
    from .embedded import RedisServer, WorkerPool
    from .workeropts import WorkerOptions

    plan = plan or draw_plan(seed, commit_path)
    report = RunReport(seed=seed, commit_path=commit_path,
                       faults_planned=len(plan.faults) + int(plan.late_kill))
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
    started = time.monotonic()
    deadline = started + timeout_s
    server = pool = nemesis = conn = None
    try:
        files1 = plan.corpus.generate(rundir / "a")
        files2: list[Path] = []
        if plan.replan == "corpus":
            files2 = plan.corpus2.generate(rundir / "b")  # type: ignore[union-attr]
        elif plan.replan == "rechunk":
            files2 = files1
        expected_files = files1
        if raft:  # three RedisRaft nodes on loopback, on the lease queue
            from .raft import RaftCluster

            server = RaftCluster(3, directory=str(rundir / "raft"))
            queue = "lease"
        else:
            server = RedisServer(directory=str(rundir / "redis"), save="")
        server.start()
        conn = _connect(server)
        job = client.plan_job([str(rundir / "a")], plan.chunk_size, JOB_NAME)
        _set_queue(job, queue)
        report.tasks, report.bytes = len(job.tasks), job.total_bytes
        client.submit(conn, job)
        hidden: list[tuple[Path, Path]] = []  # (where it was, where it is now)
        if plan.hide_file is not None:
            victim = sorted(files1)[plan.hide_file % len(files1)]
            hidden.append((victim, rundir / "hidden"))
            shutil.move(victim, rundir / "hidden")

        def restore() -> None:
            while hidden:
                where, now = hidden.pop()
                shutil.move(now, where)
        env = {**server.env(), "WORDCOUNT_SPECULATE_MIN_MS": str(plan.speculate_min_ms)}
        pool = WorkerPool(plan.workers, env, WorkerOptions.parse(plan.worker_args()),
                          log_path=str(rundir / "workers.log"),
                          first_options=WorkerOptions.parse(plan.worker_args()
                                                            + plan.straggler_args()),
                          first=1 if plan.straggler_slowdown else 0)
        nemesis = Nemesis(plan, server, conn, pool, report, started, raft=raft,
                          restore=restore)

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the job did not finish within {timeout_s:g} s")
            return left

        while True:
            try:
                waited = client.wait(conn, job, poll_s=POLL_S, quiet=True, timeout_s=remaining(),
                                     on_poll=lambda job=job: nemesis.poll(job))
                break
            except _Replan:
                restore()  # the new plan is over whole corpora
                inputs = rundir / ("b" if plan.replan == "corpus" else "a")
                job = client.plan_job([str(inputs)], plan.chunk_size2, JOB_NAME)
                _set_queue(job, queue)
                report.tasks, report.bytes = len(job.tasks), job.total_bytes
                # --fresh: replaces the old plan in one call (and again if a rollback brings
                # the old plan back: the client remembers what it replaced)
                client.submit(conn, job, fresh=True)
                expected_files = files2
                report.replan = True
        if plan.late_kill:
            report.faults_fired += 1
            nemesis.crash(False, plan.late_downtime_s, mid_job=False, label="late kill")
            waited = client.wait(conn, job, poll_s=POLL_S, quiet=True, timeout_s=remaining(),
                                 on_poll=pool.tend)
        for _ in range(5 if plan.hide_file is not None else 0):
            if not waited.dead:  # (a dead letter left without a hidden file fails the run)
                break
            nemesis.requeue(f"requeue after the job, {waited.dead} dead")
            waited = client.wait(conn, job, poll_s=POLL_S, quiet=True, timeout_s=remaining(),
                                 on_poll=pool.tend)
        res, progress = client.result(conn, job, time.monotonic() - started, waited)
        report.stolen, report.backups = progress.stolen, progress.backups
        report.duplicates, report.resubmits = progress.duplicates, progress.resubmits
        expected = oracle(expected_files)
        if tsv(res.counts) != tsv(expected):
            report.reason = "counts differ from the oracle"
            if report.replan and tsv(res.counts) == tsv(oracle(files1)):
                report.reason += " (the result is the FIRST plan's: the re-plan was lost)"
            report.diff = diff_summary(res.counts, expected)
        elif res.errors:
            report.reason = (f"{len(res.errors)} tasks dead-lettered, e.g. "
                             f"{res.errors[0].path}: {res.errors[0].error}")
        else:
            report.ok = True
    except Exception as exc:  # noqa: BLE001 - every escaping exception is a failed run
        kind = "timeout" if isinstance(exc, TimeoutError) or (
            "did not finish within" in str(exc)) else type(exc).__name__
        report.reason = f"{kind}: {exc}" if kind != "timeout" else f"timeout: {exc}"
        if not isinstance(exc, WordcountError) and kind != "timeout":
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1]
            report.reason += f" (at {os.path.basename(where.filename)}:{where.lineno})"
        workers = _tail_errors(rundir / "workers.log")
        if workers and kind in ("WordcountError", "timeout"):
            report.reason += f"; workers' log: {workers}"
    finally:
        report.seconds = round(time.monotonic() - started, 2)
        if pool is not None:
            report.crashes = pool.crashes + sum(
                1 for p in pool.procs if p.poll() == _crash_exit())
            pool.stop(timeout=5.0)
        if nemesis is not None:
            nemesis.close()
        if conn is not None:
            conn.close()
        if server is not None:
            proc = getattr(server, "proc", None)
            pgid = proc.pid if proc is not None else None
            server.stop()
            if pgid is not None:
                try:  # a BGSAVE child that outlived its server
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        package_log.removeHandler(handler)
        package_log.setLevel(old_level)
        handler.close()
        if keep:
            report.rundir = str(rundir)
        else:
            shutil.rmtree(rundir, ignore_errors=True)
            report.reason = report.reason.replace(str(rundir), "<run dir: replay with --keep>")
    return report


def _crash_exit() -> int:
    from .worker import CRASH_EXIT

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


def replay_command(seed: int, commit_path: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                   queue: str | None = None, raft: bool = False) -> str:
    python = sys.executable
    rel = os.path.relpath(python)
    if not rel.startswith(".."):
        python = rel
    cmd = [python, "-m", "wordcount.soak", "--runs", "1", "--seed", str(seed), "--path",
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
             raft: bool = False) -> SoakSummary:
    """``runs`` runs: run i uses seed ``seed + i`` on ``paths[i % len(paths)]``. Prints one line
    per run, then a summary and, for each failure, its seed and the command replaying it."""
    out = out or sys.stdout
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
            report = run_one(seed + i, path, base, timeout_s=timeout_s, keep=keep,
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
    p.add_argument("--path", choices=[*PATHS, "both"], default="both",
                   help="commit path: atomic (one wc_commit per task), staged (--commit-pairs "
                        "50-500: stage, commit, merge) or both in turn (default)")
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
    paths = PATHS if args.path == "both" else (args.path,)
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
    parser = argparse.ArgumentParser(prog="python -m wordcount.soak",
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
