"""``wordcount run``: a whole cluster on this machine. A private redis-server on loopback (with a
random password), N worker processes, one job; everything stopped at the end (``run_job``).

``RedisServer`` is also what the tests use to crash and restart Redis for real, and
``LocalCluster`` (a ``WorkerPool`` and, unless given one, a server) how the tests, the soak
harness and the benchmarks run jobs.
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
import threading
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


class LocalCluster:
    """Worker processes on this machine, and a redis-server of its own unless it is given
    where Redis is (``server``: a ``RedisServer``, a ``RaftCluster``, anything with ``env()``;
    or ``env`` alone). What ``wordcount run``, the soak harness, the benchmarks and the tests
    run jobs on; the one place for

    - how the workers start: forked, with stop signals held, their log at ``log_path``, each
      new wait for work at most ``block_ms`` (None: the workers' default);
    - how a job is waited for (``wait``, ``run``): the pool tended on every poll (a crashed
      worker started again, any other exit an error), ``on_poll`` after it, an optional
      ``nemesis(elapsed)`` on a thread of its own every ``every_s`` (one that raises fails the
      wait at the next poll), and a timeout;
    - how it all stops, however it ends (``stop``, or leaving the ``with``): the workers
      first (SIGCONT, SIGTERM, a second SIGTERM after ``grace``, SIGKILL after
      ``stop_timeout`` s), then a server of its own, with its temp dir.
    """

    def __init__(self, workers: int, server=None, *, env: dict[str, str] | None = None,
                 options: WorkerOptions | None = None, log_path: str | None = None,
                 first_options: WorkerOptions | None = None, first: int = 0,
                 envs: Sequence[dict[str, str]] | None = None, respawn: bool = True,
                 block_ms: int | None = None, stop_timeout: float = 10.0) -> None:
        self.workers, self.options, self.log_path = workers, options, log_path
        self.first_options, self.first, self.envs = first_options, first, envs
        self.respawn, self.block_ms, self.stop_timeout = respawn, block_ms, stop_timeout
        self.own_server = server is None and env is None
        self.server = RedisServer() if self.own_server else server
        self._env = env
        self.pool: WorkerPool | None = None

    @property
    def env(self) -> dict[str, str]:
        """Where the workers (and a client) find Redis: REDIS_URL, REDIS_PASSWORD."""
        return dict(self._env) if self._env is not None else self.server.env()

    @property
    def crashes(self) -> int:
        return self.pool.crashes if self.pool is not None else 0

    def start(self) -> LocalCluster:
        try:
            if self.own_server:
                self.server.start()
            env = self.env
            if self.block_ms is not None:
                env["WORDCOUNT_BLOCK_MS"] = os.environ.get("WORDCOUNT_BLOCK_MS") or str(
                    self.block_ms)
            if self.log_path is None and self.own_server:
                self.log_path = os.path.join(self.server.directory, "workers.log")
            self.pool = WorkerPool(self.workers, env, self.options, respawn=self.respawn,
                                   log_path=self.log_path, first_options=self.first_options,
                                   first=self.first, envs=self.envs)
        except BaseException:
            self.stop()
            raise
        return self

    def connect(self, name: str = "wordcount-client", deadline: float | None = None,
                **overrides) -> Connection:
        """A client connection to this cluster's Redis, the Functions loaded."""
        env = self.env
        settings = Settings.from_env({}, redis_url=env["REDIS_URL"],
                                     redis_password=env.get("REDIS_PASSWORD"), **overrides)
        conn = Connection(settings, name=name, deadline=deadline)
        conn.ensure_functions()
        return conn

    def tend(self) -> None:
        if self.pool is not None:
            self.pool.tend()

    def wait(self, conn: Connection, job: client.Job, *, timeout_s: float | None = None,
             poll_s: float = 0.1, quiet: bool = True, on_poll: Callable[[], None] | None = None,
             nemesis: Callable[[float], None] | None = None, every_s: float = 0.1
             ) -> client.Progress:
        """``client.wait`` for the job (resubmitting it if Redis lost it) with the pool tended
        on every poll; see the class."""
        def poll() -> None:
            self.tend()
            running.check()  # a failed nemesis (a node it could not restart) ends the wait
            if on_poll is not None:
                on_poll()

        with Nemesis(nemesis, every_s) as running:
            waited = client.wait(conn, job, poll_s=poll_s, quiet=quiet, timeout_s=timeout_s,
                                 on_poll=poll)
        running.check()
        return waited

    def run(self, conn: Connection, job: client.Job, *, fresh: bool = False, **wait_kw
            ) -> client.Progress:
        """Submit the job, then ``wait`` for it."""
        client.submit(conn, job, fresh=fresh)
        return self.wait(conn, job, **wait_kw)

    def stop(self) -> None:
        try:
            if self.pool is not None:
                self.pool.stop(timeout=self.stop_timeout)
        finally:
            if self.own_server:
                self.server.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Nemesis:
    """``during(elapsed)`` on a thread of its own every ``every_s`` while the ``with`` lasts
    (a client waiting through a lost quorum must not stop it from bringing nodes back);
    ``check()`` afterwards raises what it raised. ``during=None``: nothing runs."""

    def __init__(self, during: Callable[[float], None] | None, every_s: float = 0.1) -> None:
        self.during, self.every_s = during, every_s
        self.started = time.monotonic()
        self.stopped = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, daemon=True, name="nemesis")

    def _loop(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                self.during(time.monotonic() - self.started)  # type: ignore[misc]
            except BaseException as e:  # noqa: BLE001 - raised by check()
                self.errors.append(e)
                return

    def __enter__(self) -> Nemesis:
        self.started = time.monotonic()
        if self.during is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(60)

    def check(self) -> None:
        if self.errors:
            raise WordcountError(f"the nemesis failed: {self.errors[0]!r}") from self.errors[0]


def run_job(job: client.Job, workers: int, options: WorkerOptions,
            finish: Callable[[Connection, Callable[[], None]], int], *, stragglers: int = 0,
            queue: str | None = None, worker_log: str | None = None,
            deadline: float | None = None, quiet: bool = False) -> int:
    """``wordcount run``: a ``LocalCluster`` of its own (a private redis-server, ``workers``
    worker processes, the first ``stragglers`` at ``options.slowdown``, the others at full
    speed), the job submitted on ``queue``; then ``finish(conn, tend)`` waits for it and
    reports it (calling ``tend`` on every poll keeps the pool) and returns the exit code. All
    of it is stopped (and its temp dir, which holds the workers' log unless ``worker_log``
    says otherwise, removed) however this ends."""
    # a private cluster: workers wait for new work in short blocks, so a job that starts as
    # the last one ends (an iterative app's next round) is taken at once
    cluster = LocalCluster(workers, options=options.replace(slowdown=1.0), log_path=worker_log,
                           first_options=options, first=stragglers, block_ms=RUN_BLOCK_MS)
    with cluster:
        conn = cluster.connect(deadline=deadline, queue=queue)
        job.queue = resolve_kind(conn, conn.settings.queue)
        client.submit(conn, job)
        rc = finish(conn, cluster.tend)
    if cluster.crashes and not quiet:  # ("survived" only by a job that ended complete)
        print(f"-- {cluster.crashes} injected worker crashes"
              + (" survived" if rc == 0 else ""), file=sys.stderr)
    return rc
