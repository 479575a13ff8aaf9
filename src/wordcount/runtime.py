"""What a command sets up for its own process: its log on stderr, and how SIGTERM, SIGHUP and
SIGINT stop it. Standard library only: the CLI imports it at start-up."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from . import exceptions as exc


def setup_logging(verbose: bool, default: int) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else default, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("redis").setLevel(logging.WARNING)


@contextlib.contextmanager
def stop_on_signals(first: Callable[[int], None] | None = None) -> Iterator[None]:
    """SIGTERM (a supervisor), SIGHUP (a closed terminal) and SIGINT (Ctrl-C) stop the command
    the way Ctrl-C stops any Python program: SignalReceived is raised in the main thread, so every
    ``with`` and ``finally`` on the way out runs (``run``: its workers and private Redis are
    stopped, its temp dir removed), after ``first(signum)``. Signals after the first are
    ignored: the cleanup is under way, and bounded. A process forked meanwhile (a process pool's)
    gets the default action instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    owner = os.getpid()

    def handler(signum: int, _frame: object) -> None:
        if os.getpid() != owner:  # a forked child: as if no handler had been installed
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not received:
            received.append(signum)
            if first is not None:
                first(signum)
            raise exc.SignalReceived(signum)

    previous = {s: signal.signal(s, handler)
                for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)
