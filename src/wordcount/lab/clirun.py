"""The wordcount CLI as a child process, for the lab and the tests: one place for how it is
started (this interpreter, ``-m wordcount``), its environment (``env`` on top of ``base_env``,
by default this process's), its output (text pipes, unless the caller names its own ``stdout=``,
``stderr=`` or ``text=``) and its timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

COMMAND = (sys.executable, "-m", "wordcount")


def _env(env: Mapping[str, str] | None, base_env: Mapping[str, str] | None) -> dict[str, str]:
    return {**(os.environ if base_env is None else base_env), **(env or {})}


def _output(kw: dict) -> dict:
    """stdout and stderr piped, as text, where the caller said nothing else."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    return kw


def wc(*args: str, env: Mapping[str, str] | None = None, timeout: float | None = 120,
       base_env: Mapping[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``wordcount ARGS`` to its end (``subprocess.TimeoutExpired`` past ``timeout`` s,
    ``None``: no limit); its stdout and stderr captured as text unless ``kw`` says otherwise."""
    return subprocess.run([*COMMAND, *args], timeout=timeout, env=_env(env, base_env),
                          **_output(kw))


def wc_bg(*args: str, env: Mapping[str, str] | None = None,
          base_env: Mapping[str, str] | None = None, **kw) -> subprocess.Popen:
    """Start ``wordcount ARGS`` in the background, its stdout and stderr piped as text unless
    ``kw`` says otherwise (e.g. ``stdout=log, stderr=subprocess.STDOUT``)."""
    return subprocess.Popen([*COMMAND, *args], env=_env(env, base_env), **_output(kw))


@dataclass
class Timed:
    """A whole command's run: wall seconds, exit status, its output, and its peak RSS (bytes,
    of it or of its largest child)."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int


def timed(*args: str, env: Mapping[str, str] | None = None,
          base_env: Mapping[str, str] | None = None) -> Timed:
    """Run ``wordcount ARGS`` to its end, timed around the process (what the benchmarks and
    the experiments measure), its resource usage read when it is reaped (``os.wait4``)."""
    started = time.perf_counter()
    proc = wc_bg(*args, env=env, base_env=base_env)
    err: list[str] = []  # drained beside stdout: a full stderr pipe must not stall the child
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    try:
        out = proc.stdout.read()
        drain.join()
    except BaseException:  # stopped (a signal, Ctrl-C): the command stops too, cleaning up
        proc.terminate()
        proc.wait()
        raise
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    return Timed(seconds, proc.returncode, out, err[0] if err else "", usage.ru_maxrss * 1024)
