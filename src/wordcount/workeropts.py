"""How a worker runs: its flags (defined here once, for ``wordcount worker``, ``wordcount run``
and the local worker pool), their values (``WorkerOptions``, range-checked), and the ``Worker``
they make."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import argtypes
from .exceptions import EXIT_OK, ShutdownRequested, UsageError
from .settings import Settings
from .worker import CRASH_POINTS, NoFaults, Worker

# atomic: one Function settles a task and applies its counts; shuffle: a job of two phases
# (maps store R partitions, R reduce tasks sum them: wordcount/shuffle.py), a job's mode that
# `run` and `submit` choose and every worker follows; per-word: the lab's naive ZINCRBY per
# occurrence (NOT crash-safe)
COMMIT_MODES = ("atomic", "shuffle", "per-word")
JOB_COMMIT_MODES = ("atomic", "shuffle")
# --crash-prob's default: a job under injected crashes that still finishes (with 1, every
# attempt of every task crashes, and every task ends set aside)
DEFAULT_CRASH_PROB = 0.3


def add_reduces_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reduces", type=argtypes.reduces, metavar="R",
                   help="reduce tasks of a shuffle job (default 2 per worker: `run`'s "
                        "--workers, or the workers alive in Redis; at least 2)")


def add_protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--claim-timeout", type=argtypes.claim_timeout, metavar="MS",
                   dest="claim_timeout_ms",
                   help="steal a task idle (no heartbeat) this long (default 10000)")
    p.add_argument("--max-attempts", type=argtypes.positive_int,
                   help="deliveries before a task is dead-lettered (default 4)")
    p.add_argument("--commit-pairs", type=argtypes.positive_int,
                   help="distinct words above which a commit is staged and merged in pieces "
                        "of this many (default 50000)")


def add_fault_args(p: argparse.ArgumentParser, commit_default: str = "atomic") -> None:
    """The fault and commit-mode flags of ``worker`` and ``run`` (``run``'s jobs default to
    the shuffle, a worker's own commits to atomic: a job's mode is the job's, workers follow
    it)."""
    g = p.add_argument_group("fault injection (experiments and tests)")
    g.add_argument("--crash-at", choices=[*CRASH_POINTS, "any"],
                   help="end the process abruptly (os._exit) at this point of a task")
    g.add_argument("--crash-prob", type=argtypes.probability, default=DEFAULT_CRASH_PROB,
                   metavar="P",
                   help="probability that a task attempt crashes (default "
                        f"{DEFAULT_CRASH_PROB:g}: a job that still finishes; 1 crashes every "
                        "attempt, so every task ends set aside)")
    g.add_argument("--stall-prob", type=argtypes.probability, default=0.0, metavar="P",
                   help="probability that a task attempt stalls for up to --stall-max s")
    g.add_argument("--stall-max", type=argtypes.float_in(0), default=2.0, metavar="S")
    g.add_argument("--slowdown", type=argtypes.float_in(1), default=1.0, metavar="FACTOR",
                   help="run at 1/FACTOR speed (a straggler)")
    g.add_argument("--commit", choices=COMMIT_MODES, default=commit_default,
                   help="shuffle (run only: a job's mode, which workers follow): maps store R "
                        "partitions, R reduce tasks sum them; atomic: each task's counts "
                        "applied in the Function that settles it; per-word: the lab's naive "
                        "ZINCRBY per occurrence (NOT crash-safe); default %(default)s")
    g.add_argument("--speculate-factor", type=argtypes.float_in(0), metavar="FACTOR",
                   help="back up a task running longer than FACTOR x the mean task time "
                        "(default 3; 0 disables)")


class _FlagParser(argtypes.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"worker flags: {message}")


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker is started with, besides its environment (Redis URL, password,
    ``WORDCOUNT_*``): the protocol settings it overrides, its injected faults, its commit mode.
    Plain values, so a forked worker makes its own faults (and random stream) from them."""

    crash_at: str | None = None  # one of CRASH_POINTS, or "any"
    crash_prob: float = DEFAULT_CRASH_PROB
    stall_prob: float = 0.0
    stall_max: float = 2.0
    slowdown: float = 1.0
    commit: str = "atomic"  # COMMIT_MODES
    claim_timeout_ms: int | None = None  # None: from the environment, else the default
    max_attempts: int | None = None
    commit_pairs: int | None = None
    speculate_factor: float | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        for name in ("crash_prob", "stall_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"--{name.replace('_', '-')} must be within [0, 1]")
        if self.slowdown < 1:
            raise UsageError("--slowdown must be >= 1")
        if self.crash_at not in (None, "any", *CRASH_POINTS):
            raise UsageError(f"--crash-at: unknown crash point {self.crash_at!r}")
        if self.commit not in COMMIT_MODES:
            raise UsageError(f"--commit: unknown commit mode {self.commit!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorkerOptions:
        """From parsed flags (``add_protocol_args``, ``add_fault_args``, ``-v``); flags the
        command does not have keep their defaults."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if hasattr(args, f.name)})

    @classmethod
    def parse(cls, argv: Sequence[str]) -> WorkerOptions:
        """From flags spelled as ``wordcount worker`` takes them: ``["--slowdown", "40",
        "--claim-timeout", "300", "-v"]`` (the protocol and fault flags, ``-v``)."""
        p = _FlagParser(prog="wordcount worker", add_help=False)
        add_protocol_args(p)
        add_fault_args(p)
        p.add_argument("-v", "--verbose", action="store_true")
        return cls.from_args(p.parse_args(list(argv)))

    def replace(self, **changes: Any) -> WorkerOptions:
        return dataclasses.replace(self, **changes)

    def settings_overrides(self) -> dict[str, Any]:
        """The ``Settings`` fields these options set (None: not set)."""
        overrides: dict[str, Any] = {
            "claim_timeout_ms": self.claim_timeout_ms, "max_attempts": self.max_attempts,
            "commit_pairs": self.commit_pairs, "speculate_factor": self.speculate_factor}
        if self.commit == "per-word" and self.speculate_factor is None:
            overrides["speculate_factor"] = 0.0  # backups of non-idempotent commits double-count
        return overrides

    def faults(self) -> NoFaults:
        """None injected, or (a fault option given) a new lab ``Faults`` with its own random
        stream: the one place the product reaches the lab, only for a fault option."""
        if not self.crash_at and not self.stall_prob and self.slowdown <= 1:
            return NoFaults()
        from .lab.faults import Faults

        return Faults(crash_at=self.crash_at, crash_prob=self.crash_prob,
                      stall_prob=self.stall_prob, stall_max=self.stall_max,
                      slowdown=self.slowdown)

    def worker(self, settings: Settings, exit_when_idle: bool = False) -> Worker:
        # (shuffle is a job's mode: a worker follows each job's, and commits the tasks of a
        # one-phase job atomically)
        return Worker(settings, faults=self.faults(), exit_when_idle=exit_when_idle,
                      commit_mode="atomic" if self.commit == "shuffle" else self.commit)

    def serve(self, settings: Settings, exit_when_idle: bool = False) -> int:
        """Run a worker until it is stopped (or, ``exit_when_idle``, no job has work left)."""
        worker = self.worker(settings, exit_when_idle)
        try:
            worker.run()
        except ShutdownRequested as stop:  # a signal while idle: a requested, clean stop
            logging.getLogger("wordcount.worker").info("worker %s: %s received; stopped",
                                                       worker.consumer, stop)
        return EXIT_OK
