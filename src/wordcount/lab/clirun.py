"""The wordcount CLI as a child process, for the lab and the tests: one place for how it is
started (this interpreter, ``-m wordcount``), its environment (``env`` on top of ``base_env``,
by default this process's), its output (text pipes) and its timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

COMMAND = (sys.executable, "-m", "wordcount")


def _env(env: Mapping[str, str] | None, base_env: Mapping[str, str] | None) -> dict[str, str]:
    return {**(os.environ if base_env is None else base_env), **(env or {})}


def wc(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120,
       base_env: Mapping[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``wordcount ARGS`` to its end (``subprocess.TimeoutExpired`` past ``timeout`` s);
    its stdout and stderr as text."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(env, base_env), **kw)


def wc_bg(*args: str, env: Mapping[str, str] | None = None,
          base_env: Mapping[str, str] | None = None, **kw) -> subprocess.Popen:
    """Start ``wordcount ARGS`` in the background, its stdout and stderr piped as text."""
    return subprocess.Popen([*COMMAND, *args], env=_env(env, base_env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)
