"""The worker's fault injection (``--crash-at``, ``--crash-prob``, ``--stall-*``,
``--slowdown``): ``Faults`` implements the hooks a worker calls (``worker.NoFaults``: arm a task
attempt, its crash points, after each buffer, after a reduce) to end the process abruptly at a
point of a task, stall it once mid-task, or run it at 1/``slowdown`` speed (a straggler).
``workeropts.WorkerOptions.faults`` builds one only when a fault option is given.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field

from ..exceptions import EXIT_CRASHED
from ..worker import CRASH_POINTS, NoFaults

__all__ = ["CRASH_EXIT", "CRASH_POINTS", "Faults"]

log = logging.getLogger("wordcount.worker")

CRASH_EXIT = EXIT_CRASHED  # the status of an injected crash: WorkerPool starts the worker again


@dataclass
class Faults(NoFaults):
    """Injected failures, for experiments and tests."""

    crash_at: str | None = None  # one of CRASH_POINTS, or "any" (a random one per attempt)
    crash_prob: float = 1.0  # (the flag's default: workeropts.DEFAULT_CRASH_PROB)
    stall_prob: float = 0.0  # 6.5840-style: sleep up to stall_max seconds mid-task
    stall_max: float = 2.0
    slowdown: float = 1.0  # 2 = half speed (a straggler)
    rng: random.Random = field(default_factory=random.Random)
    _last: float = field(default=0.0, repr=False)  # when the last buffer was counted
    _stall: bool = field(default=False, repr=False)  # this attempt still stalls once

    def arm(self) -> str | None:
        """Decide, for one task attempt, where (if anywhere) this attempt crashes, and
        whether it stalls once."""
        armed = None
        if self.crash_at and self.rng.random() < self.crash_prob:
            armed = self.rng.choice(CRASH_POINTS) if self.crash_at == "any" else self.crash_at
        self._stall = self.rng.random() < self.stall_prob
        self._last = time.perf_counter()
        return armed

    def crash_point(self, armed: str | None, point: str) -> None:
        if armed == point:
            log.warning("injected crash at %s", point)
            logging.shutdown()
            os._exit(CRASH_EXIT)

    def pace(self, nbytes: int) -> None:
        now = time.perf_counter()
        if self.slowdown > 1:
            time.sleep((now - self._last) * (self.slowdown - 1))
        if self._stall:
            self._stall = False
            time.sleep(self.rng.uniform(0, self.stall_max))
        self._last = time.perf_counter()

    def reduce_done(self, started: float) -> None:
        if self.slowdown > 1:  # a straggler is slow at reduces too
            time.sleep((time.perf_counter() - started) * (self.slowdown - 1))
