"""The wordcount CLI as a child process, for the lab and the tests: one place for how it is
started (this interpreter, ``-m wordcount``), its environment (``env`` on top of ``base_env``,
by default this process's), its output (text pipes, unless the caller names its own ``stdout=``,
``stderr=`` or ``text=``) and its timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

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
