"""``wordcount run``: a whole cluster on this machine. A private redis-server on loopback (with a
random password), N worker processes, one job; everything stopped at the end (``run_job``).

``RedisServer`` is also what the tests use to crash and restart Redis for real, and
``WorkerPool`` how they start workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import redis

from . import client
from .connection import Connection
from .exceptions import EXIT_CRASHED, EXIT_REDIS, UsageError, WordcountError
from .queue import resolve_kind
from .runtime import setup_logging
from .settings import Settings
from .workeropts import WorkerOptions

log = logging.getLogger(__name__)


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGINT})


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGHUP and SIGINT (in this thread) while processes are started or stopped:
    one arriving meanwhile is delivered right after, so a start or a stop is never cut in half
    (a redis-server or a worker left running, a temp dir left behind). A process forked inside
    inherits the mask: ``_worker_main`` lifts it."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server process on 127.0.0.1, password-protected, data in ``directory``."""

    def __init__(self, directory: str | None = None, password: str | None = None,
                 port: int | None = None, save: str = "", appendonly: bool = False,
                 binary: str | None = None) -> None:
        self.binary = binary or shutil.which("redis-server")
        if not self.binary:
            raise WordcountError("redis-server not found on PATH: install it (Debian: apt-get "
                                 "install redis-server, or `make redis-server`)")
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="wordcount-redis-")
        self.directory = directory or self._tmp.name  # type: ignore[union-attr]
        self.password = password or secrets.token_urlsafe(18)
        self.port = port or free_port()
        self.save = save
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _config(self) -> str:
        # The password goes in a 0600 file, never on a command line (visible in ps).
        path = os.path.join(self.directory, "redis.conf")
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}",
                 "dbfilename dump.rdb", f'save "{self.save}"',
                 f"appendonly {'yes' if self.appendonly else 'no'}",
                 "stop-writes-on-bgsave-error no", "daemonize no", "loglevel warning",
                 f"logfile {os.path.join(self.directory, 'redis.log')}",
                 f'requirepass "{self.password}"']
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 20.0) -> RedisServer:
        try:
            return self._start(timeout)
        except BaseException:  # a failed or interrupted start leaves no process, no temp dir
            self.stop()
            raise

    def _start(self, timeout: float) -> RedisServer:
        os.makedirs(self.directory, exist_ok=True)
        self.proc = subprocess.Popen([self.binary, self._config()], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        probe = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                            socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if probe.ping():
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    if self.proc.poll() is not None:
                        raise WordcountError(f"redis-server exited at start; see "
                                             f"{self.directory}/redis.log") from None
                if time.monotonic() > deadline:
                    raise WordcountError("redis-server did not answer within "
                                         f"{timeout:.0f} s")
                time.sleep(0.05)
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL: a crash. Whatever was not snapshotted is lost."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        with signals_held():
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.kill()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def wipe(self) -> None:
        """Delete the RDB/AOF files, so the next start begins from nothing."""
        for name in os.listdir(self.directory):
            if name.startswith(("dump", "appendonly")):
                path = os.path.join(self.directory, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url, "REDIS_PASSWORD": self.password}

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _worker_main(env: dict[str, str], options: WorkerOptions, log_path: str | None) -> None:
    """Body of a forked worker process: its own environment, log, Redis connection and faults;
    ``wordcount worker --exit-when-idle`` with these options."""
    # Not the parent's handlers (``run`` raises on SIGTERM/SIGHUP/SIGINT); the Worker installs
    # its own. The parent forks with them held (``signals_held``): a pending one lands now.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    os.environ.update(env)
    fd = os.open(log_path or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # the parent's sys.stdout/err may not write to fds 1/2 (pytest's capture, for one)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    setup_logging(options.verbose, logging.INFO)
    try:  # errors as ``wordcount worker`` reports them (cli.main)
        code = options.serve(Settings.from_env(**options.settings_overrides()),
                             exit_when_idle=True)
    except WordcountError as e:
        print(f"wordcount: error: {e}", file=sys.stderr)
        code = e.exit_code
    except redis.exceptions.RedisError as e:
        print(f"wordcount: error: Redis: {type(e).__name__}: {e}", file=sys.stderr)
        code = EXIT_REDIS
    sys.exit(code)


class WorkerProcess:
    """A forked worker that exits when idle (credentials via its environment). Forked rather
    than exec'd: it starts in milliseconds, with the package already imported."""

    def __init__(self, env: dict[str, str], options: WorkerOptions, log_path: str | None
                 ) -> None:
        ctx = multiprocessing.get_context("fork")
        self.proc = ctx.Process(target=_worker_main, args=(env, options, log_path),
                                daemon=False)
        self.proc.start()
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.exitcode

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            raise subprocess.TimeoutExpired("wordcount worker", timeout or 0)
        return self.proc.exitcode


class WorkerPool:
    """N worker processes; ones that end by an injected crash are started again."""

    def __init__(self, n: int, env: dict[str, str], options: WorkerOptions | None = None,
                 respawn: bool = True, log_path: str | None = None,
                 first_options: WorkerOptions | None = None, first: int = 0,
                 envs: Sequence[dict[str, str]] | None = None) -> None:
        """The first ``first`` workers run with ``first_options`` (e.g. stragglers), the others
        with ``options``. Worker flags as a list: ``WorkerOptions.parse(["--slowdown", "40"])``.
        ``envs``: more environment for worker i (e.g. a clock that is off), on top of ``env``.
        """
        if n < 1:
            raise UsageError("--workers must be at least 1")
        self.respawn, self.log_path = respawn, log_path
        self.envs = [{**env, **(envs[i] if envs and i < len(envs) else {})} for i in range(n)]
        self.env = env
        options = options or WorkerOptions()
        self.options = [first_options if first_options is not None and i < first else options
                        for i in range(n)]
        self.procs: list[WorkerProcess] = []
        self.crashes = 0
        try:
            with signals_held():  # none forked but not yet in self.procs
                for i, o in enumerate(self.options):
                    self.procs.append(WorkerProcess(self.envs[i], o, log_path))
        except BaseException:
            self.stop()
            raise

    def tend(self) -> None:
        """Keep N workers while the job runs: start again the ones that crashed (injected) or
        exited because they saw no job (Redis lost it); fail on any other exit."""
        for i, p in enumerate(self.procs):
            code = p.poll()
            if code is None:
                continue
            if code not in (0, EXIT_CRASHED):
                raise WordcountError(f"a worker exited with status {code}; see "
                                     f"{self.log_path or 'its log'}")
            if code == EXIT_CRASHED:
                self.crashes += 1
            if self.respawn or code == 0:
                with signals_held():
                    self.procs[i] = WorkerProcess(self.envs[i], self.options[i], self.log_path)

    def stop(self, timeout: float = 10.0, grace: float = 1.0) -> None:
        """SIGTERM every worker (an idle one stops at once, a busy one after its task); after
        ``grace`` s a second SIGTERM to those still busy (stop now); SIGKILL at ``timeout``."""
        with signals_held():
            deadline = time.monotonic() + timeout
            for p in self.procs:  # a paused (SIGSTOP) worker hears no SIGTERM
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGCONT)
            for when in (time.monotonic() + grace, deadline):
                alive = [p for p in self.procs if p.poll() is None]
                for p in alive:
                    p.terminate()
                for p in alive:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(max(0.01, when - time.monotonic()))
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()


RUN_BLOCK_MS = 100  # a `run` worker's longest wait for new work (Settings.block_ms: 1 s)


def run_job(job: client.Job, workers: int, options: WorkerOptions,
            finish: Callable[[Connection, Callable[[], None]], int], *, stragglers: int = 0,
            queue: str | None = None, worker_log: str | None = None,
            deadline: float | None = None, quiet: bool = False) -> int:
    """``wordcount run``: a private redis-server, ``workers`` worker processes (the first
    ``stragglers`` at ``options.slowdown``, the others at full speed), the job submitted on
    ``queue``; then ``finish(conn, tend)`` waits for it and reports it (calling ``tend`` on
    every poll keeps the pool) and returns the exit code. All of it is stopped (and its temp
    dir, which holds the workers' log unless ``worker_log`` says otherwise, removed) however
    this ends."""
    with RedisServer() as server:
        settings = Settings.from_env({}, redis_url=server.url, redis_password=server.password,
                                     queue=queue)
        conn = Connection(settings, name="wordcount-client", deadline=deadline)
        conn.ensure_functions()
        log_path = worker_log or os.path.join(server.directory, "workers.log")
        pool = None
        try:
            # a private cluster: workers wait for new work in short blocks, so a job that
            # starts as the last one ends (an iterative app's next round) is taken at once
            env = {**server.env(), "WORDCOUNT_BLOCK_MS":
                   os.environ.get("WORDCOUNT_BLOCK_MS") or str(RUN_BLOCK_MS)}
            pool = WorkerPool(workers, env, options.replace(slowdown=1.0),
                              log_path=log_path, first_options=options, first=stragglers)
            job.queue = resolve_kind(conn, settings.queue)
            client.submit(conn, job)
            rc = finish(conn, pool.tend)
        finally:
            if pool is not None:
                pool.stop()
        if pool.crashes and not quiet:  # ("survived" only by a job that ended complete)
            print(f"-- {pool.crashes} injected worker crashes"
                  + (" survived" if rc == 0 else ""), file=sys.stderr)
        return rc
