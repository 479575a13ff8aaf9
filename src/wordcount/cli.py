"""Command line: ``wordcount <command> ...``.

Thin: parse arguments, call one module, map errors to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

from . import exceptions as exc
from .planner import DEFAULT_CHUNK_SIZE

Handler = Callable[[argparse.Namespace], int]


def _size(text: str) -> int:
    from .corpus import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_size(text: str) -> int:
    value = _size(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte: {text!r}")
    return value


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer within [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}: {text}")
        return value
    return parse


def _float_in(low: float, high: float = 1e6, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number within [low, high] (``above``: greater than low)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or (above and value == low) or value > high:
            bound = f"greater than {low:g}" if above else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {high:g}: {text}")
        return value
    return parse


_positive_int = _int_in(1)
_non_negative_int = _int_in(0)
_workers = _int_in(1, 1024)
_seconds = _float_in(0, 1e9, above=True)  # --timeout
_probability = _float_in(0, 1)
_claim_timeout = _int_in(10, 2**31 - 1)  # ms


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top", type=_non_negative_int, default=10, metavar="K",
                   help="words to show (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--counts-out", metavar="PATH",
                   help="write every word as word<TAB>count, by count desc then word")


def add_chunk_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-size", type=_positive_size, default=DEFAULT_CHUNK_SIZE,
                   metavar="BYTES",
                   help="split files larger than this into byte-range tasks (default 64MiB; "
                        "suffixes K, M, G)")


# -- count ------------------------------------------------------------------------------------

def cmd_count(args: argparse.Namespace) -> int:
    from . import engines, report

    report.check_output(args.counts_out, "--counts-out")
    with stop_on_signals(first=_stop_count):
        result = engines.count_inputs(args.inputs, args.engine, args.workers, args.chunk_size)
    report.emit(result, args.top, args.json, args.counts_out)
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def _stop_count(signum: int) -> None:
    """``count`` holds nothing to clean up but the processes engine's workers: they are stopped
    and the process exits at once (unwinding, the pool would count every task left first)."""
    import multiprocessing

    for p in multiprocessing.active_children():
        p.terminate()
    print(f"wordcount: stopped by {signal.Signals(signum).name}; nothing was printed",
          file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _count_parser(sub) -> None:
    from .engines import ENGINES

    p = sub.add_parser("count", help="count words locally (serial, threads or processes)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    p.add_argument("--engine", choices=ENGINES, default="serial")
    p.add_argument("--workers", type=_workers, default=None,
                   help="threads/processes, 1-1024 (default: CPU count)")
    add_chunk_arg(p)
    add_output_args(p)
    p.set_defaults(handler=cmd_count)


# -- corpus -----------------------------------------------------------------------------------

def cmd_corpus(args: argparse.Namespace) -> int:
    from . import corpus

    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise exc.UsageError(f"{args.outdir}: exists and is not a directory")
    try:
        paths = corpus.generate(args.outdir, args.files, args.size, args.skew_size, args.seed,
                                unicode=args.unicode)
    except ValueError as e:
        raise exc.UsageError(str(e)) from None
    except OSError as e:
        raise exc.WordcountError(f"cannot write the corpus to {args.outdir}: {e}") from None
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {total:,} bytes to {args.outdir}")
    return exc.EXIT_OK


def _corpus_parser(sub) -> None:
    p = sub.add_parser("corpus", help="generate a deterministic text corpus")
    p.add_argument("outdir")
    p.add_argument("--files", type=_non_negative_int, required=True)
    p.add_argument("--size", type=_size, required=True, metavar="BYTES", help="bytes per file")
    p.add_argument("--skew-size", type=_size, default=0, metavar="BYTES",
                   help="add one file of this size (skew experiments)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unicode", action="store_true", help="mix in non-ASCII words")
    p.set_defaults(handler=cmd_corpus)


# -- bench ------------------------------------------------------------------------------------

def _bench_parser(sub) -> None:
    from . import bench

    bench.add_parser(sub)


# -- distributed: shared options ----------------------------------------------------------------

def add_protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--claim-timeout", type=_claim_timeout, metavar="MS", dest="claim_timeout_ms",
                   help="steal a task idle (no heartbeat) this long (default 10000)")
    p.add_argument("--max-attempts", type=_positive_int,
                   help="deliveries before a task is dead-lettered (default 4)")
    p.add_argument("--commit-pairs", type=_positive_int,
                   help="distinct words above which a commit is staged and merged in pieces "
                        "of this many (default 50000)")


def add_redis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="redis://[:password@]host:port/db (env REDIS_URL); "
                   "the password may also come from REDIS_PASSWORD")
    p.add_argument("--data-root", help="directory the job's task paths are relative to")
    add_protocol_args(p)
    p.add_argument("-v", "--verbose", action="store_true")


def settings_from(args: argparse.Namespace, **extra):
    from .settings import Settings

    overrides = {k: getattr(args, k, None) for k in
                 ("redis_url", "claim_timeout_ms", "max_attempts", "data_root", "commit_pairs",
                  "speculate_factor", "queue")}
    overrides.update(extra)
    from urllib.parse import urlsplit

    from .settings import RedisUrl

    try:
        settings = Settings.from_env(**overrides)
        url = RedisUrl.parse(settings.redis_url)
        password = urlsplit(settings.redis_url).password
    except ValueError as e:  # urlsplit: "Invalid IPv6 URL", ...
        raise exc.UsageError(f"bad Redis URL (--redis-url / REDIS_URL): {e}") from None
    if url.scheme != "unix" and not all(0 < port < 65536 for _, port in url.nodes):
        raise exc.UsageError(f"bad Redis URL {settings.safe_url}: a port must be 1-65535")
    if not settings.redis_password and not password:
        raise exc.UsageError("a Redis password is required: set REDIS_PASSWORD or put it in "
                             "the URL (redis://:PASSWORD@host:port/0)")
    return settings


def setup_logging(verbose: bool, default: int) -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else default, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("redis").setLevel(logging.WARNING)


def add_fault_args(p: argparse.ArgumentParser) -> None:
    from .worker import CRASH_POINTS

    g = p.add_argument_group("fault injection (experiments and tests)")
    g.add_argument("--crash-at", choices=[*CRASH_POINTS, "any"],
                   help="end the process abruptly (os._exit) at this point of a task")
    g.add_argument("--crash-prob", type=_probability, default=1.0, metavar="P",
                   help="probability that a task attempt crashes (default 1)")
    g.add_argument("--stall-prob", type=_probability, default=0.0, metavar="P",
                   help="probability that a task attempt stalls for up to --stall-max s")
    g.add_argument("--stall-max", type=_float_in(0), default=2.0, metavar="S")
    g.add_argument("--slowdown", type=_float_in(1), default=1.0, metavar="FACTOR",
                   help="run at 1/FACTOR speed (a straggler)")
    g.add_argument("--commit", choices=["atomic", "per-word"], default="atomic",
                   help="per-word: the lab's naive ZINCRBY per occurrence (NOT crash-safe)")
    g.add_argument("--speculate-factor", type=_float_in(0), metavar="FACTOR",
                   help="back up a task running longer than FACTOR x the mean task time "
                        "(default 3; 0 disables)")


def faults_from(args: argparse.Namespace):
    from .worker import Faults

    for name in ("crash_prob", "stall_prob"):
        if not 0 <= getattr(args, name) <= 1:
            raise exc.UsageError(f"--{name.replace('_', '-')} must be within [0, 1]")
    if args.slowdown < 1:
        raise exc.UsageError("--slowdown must be >= 1")
    return Faults(crash_at=args.crash_at, crash_prob=args.crash_prob,
                  stall_prob=args.stall_prob, stall_max=args.stall_max, slowdown=args.slowdown)


def fault_argv(args: argparse.Namespace) -> list[str]:
    """The fault flags again, to pass to worker processes (``run``)."""
    argv: list[str] = []
    if args.crash_at:
        argv += ["--crash-at", args.crash_at, "--crash-prob", str(args.crash_prob)]
    argv += ["--stall-prob", str(args.stall_prob), "--stall-max", str(args.stall_max),
             "--commit", args.commit]
    for flag in ("claim_timeout_ms", "max_attempts", "commit_pairs", "speculate_factor"):
        value = getattr(args, flag, None)
        if value is not None:
            name = "claim-timeout" if flag == "claim_timeout_ms" else flag.replace("_", "-")
            argv += [f"--{name}", str(value)]
    return argv


def add_queue_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", choices=["stream", "lease", "auto"],
                   help="the task queue a new job goes to (env WORDCOUNT_QUEUE; default auto: "
                        "lease on RedisRaft, else stream). Workers serve each job on the queue "
                        "it was submitted to")


# -- worker -------------------------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from .worker import Worker

    setup_logging(args.verbose, logging.INFO)
    extra = {}
    if args.commit == "per-word" and args.speculate_factor is None:
        extra["speculate_factor"] = 0.0  # backups of non-idempotent commits double-count
    worker = Worker(settings_from(args, **extra), faults=faults_from(args),
                    exit_when_idle=args.exit_when_idle, commit_mode=args.commit)
    try:
        worker.run()
    except exc.ShutdownRequested:  # SIGTERM/SIGHUP/SIGINT while idle: a requested, clean stop
        logging.getLogger("wordcount.worker").info("worker %s stopped", worker.consumer)
    return exc.EXIT_OK


def _worker_parser(sub) -> None:
    p = sub.add_parser("worker", help="serve tasks from Redis until stopped")
    add_redis_args(p)
    p.add_argument("--exit-when-idle", action="store_true",
                   help="exit once no job has work left (the lab's behaviour)")
    add_fault_args(p)
    p.set_defaults(handler=cmd_worker)


# -- submit / status / run ----------------------------------------------------------------------

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


def deadline_of(args: argparse.Namespace) -> float | None:
    """--timeout S: one deadline (time.monotonic()) for the whole command."""
    import time

    return None if args.timeout is None else time.monotonic() + args.timeout


@contextlib.contextmanager
def timeout_message(args: argparse.Namespace, after: str) -> Iterator[None]:
    try:
        yield
    except exc.DeadlineExceededError as e:
        why = str(e)
        why = "" if why == "the deadline passed" or " did not finish within " in why else f": {why}"
        raise exc.DeadlineExceededError(f"no result within --timeout {args.timeout:g} s{why}; "
                                        f"{after}") from None


def _finish(conn, job, args, started: float, deadline: float | None = None,
            extra: dict | None = None, on_poll=None) -> int:
    import time

    from . import client, report

    timeout_s = None if deadline is None else max(0.0, deadline - time.monotonic())
    waited = client.wait(conn, job, quiet=args.quiet or (args.json and not args.verbose),
                         on_poll=on_poll, timeout_s=timeout_s)
    result, progress = client.result(conn, job, time.perf_counter() - started, waited)
    doc = {"job": job.name, "tasks": len(job.tasks), "dead": progress.dead,
           "stolen": progress.stolen, "backups": progress.backups,
           "duplicates": progress.duplicates, "resubmits": progress.resubmits,
           "created_ms": progress.created_ms, "finished_ms": progress.finished_ms,
           "reused": False, "check": progress.check}
    report.emit(result, args.top, args.json, args.counts_out, {**doc, **(extra or {})})
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def add_timeout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=_seconds, metavar="S",
                   help="give up after S seconds in all (Redis unreachable included): exit 6")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr (errors and the result are still printed)")


def cmd_submit(args: argparse.Namespace) -> int:
    import logging
    import time

    from . import client, report

    setup_logging(args.verbose, logging.WARNING)
    deadline = deadline_of(args)
    started = time.perf_counter()
    settings = settings_from(args)
    report.check_output(args.counts_out, "--counts-out")
    job = client.plan_job(args.inputs, args.chunk_size, args.job, args.data_root,
                          fingerprint=args.fingerprint)
    with stop_on_signals(), timeout_message(
            args, f"job {job.name} keeps running if it was submitted: submit the same inputs "
                  "again to wait for its result"):
        return _submit(args, settings, job, started, deadline)


def _submit(args: argparse.Namespace, settings, job, started: float,
            deadline: float | None) -> int:
    from . import client
    from .connection import Connection

    conn = Connection(settings, name="wordcount-client", deadline=deadline)
    conn.ensure_functions()
    from .queue import resolve_kind

    job.queue = resolve_kind(conn, settings.queue)
    if args.fresh:
        job.replace = True
        client.forget(conn, job.name)
    before = client.progress(conn, job.name)
    added = client.submit(conn, job)
    reused = before.finished and before.plan == job.plan_id
    if args.quiet:
        pass
    elif reused:
        import datetime

        when = datetime.datetime.fromtimestamp(before.finished_ms / 1000).isoformat(" ", "seconds")
        print(f"job {job.name}: finished at {when} with these unchanged inputs: reusing its "
              "result (--fresh counts again)", file=sys.stderr)
    else:
        print(f"job {job.name}: {len(job.tasks)} tasks ({added} new), "
              f"{job.total_bytes:,} bytes", file=sys.stderr)
    if args.no_wait:
        print(job.name)
        return exc.EXIT_OK
    return _finish(conn, job, args, started, deadline, {"reused": reused})


def _submit_parser(sub) -> None:
    p = sub.add_parser("submit", help="submit a job to Redis and wait for its result")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--job", help="job name (default: derived from the inputs, so resubmitting "
                                 "the same inputs resumes the same job)")
    p.add_argument("--fresh", action="store_true", help="delete the job's old state first")
    add_queue_arg(p)
    p.add_argument("--fingerprint", choices=["stat", "content"], default="stat",
                   help="what identifies an input file: stat (size, mtime, ctime, inode; the "
                        "default) or content (a hash of every byte: reads the inputs once)")
    p.add_argument("--no-wait", action="store_true", help="print the job name and return")
    add_timeout_args(p)
    add_redis_args(p)
    add_chunk_arg(p)
    add_output_args(p)
    p.set_defaults(handler=cmd_submit)


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from . import client, keys
    from .connection import Connection
    from .settings import check_job_name

    if args.job:
        check_job_name(args.job)
    conn = Connection(settings_from(args), name="wordcount-status")
    jobs = [args.job] if args.job else sorted(conn.call(lambda r: r.smembers(keys.jobs())))
    docs = []
    for name in jobs:
        p = client.progress(conn, name)
        docs.append({"job": name, **{k: getattr(p, k) for k in (
            "state", "total", "submitted", "done", "dead", "pending", "stolen", "backups",
            "duplicates", "done_bytes", "bytes", "words")}})
    if args.json:
        print(json.dumps(docs))
    elif not docs:
        print("no active job")
    for d in docs if not args.json else []:
        print(f"{d['job']}: {d['state']}, {d['done'] + d['dead']}/{d['total']} tasks done "
              f"({d['dead']} dead), {d['pending']} pending, {d['stolen']} stolen, "
              f"{d['backups']} backups, {d['done_bytes']:,}/{d['bytes']:,} bytes")
    return exc.EXIT_USAGE if args.job and docs[0]["state"] == "missing" else exc.EXIT_OK


def _status_parser(sub) -> None:
    p = sub.add_parser("status", help="show active jobs (or one job) in Redis")
    p.add_argument("--job")
    p.add_argument("--json", action="store_true")
    add_redis_args(p)
    p.set_defaults(handler=cmd_status)


def cmd_run(args: argparse.Namespace) -> int:
    import logging
    import time

    from . import client, report

    setup_logging(args.verbose, logging.WARNING)
    deadline = deadline_of(args)
    started = time.perf_counter()
    # Everything is checked, and the job planned, before anything is started.
    faults_from(args)
    stragglers = args.stragglers if args.stragglers is not None else (
        1 if args.slowdown > 1 else 0)
    if stragglers > args.workers:
        raise exc.UsageError(f"--stragglers {stragglers} is more than --workers {args.workers}")
    report.check_output(args.counts_out, "--counts-out")
    report.check_output(args.worker_log, "--worker-log")
    job = client.plan_job(args.inputs, args.chunk_size, args.job, args.data_root)
    with stop_on_signals(), timeout_message(args, "the local cluster was stopped"):
        return _run_cluster(args, job, stragglers, started, deadline)


def _run_cluster(args: argparse.Namespace, job, stragglers: int, started: float,
                 deadline: float | None) -> int:
    """A private redis-server, the workers, the job; all of it stopped (and its temp dir, which
    holds the workers' log unless --worker-log says otherwise, removed) however this ends."""
    from . import client
    from .connection import Connection
    from .embedded import RedisServer, WorkerPool
    from .queue import resolve_kind
    from .settings import Settings

    with RedisServer() as server:
        settings = Settings.from_env({}, redis_url=server.url, redis_password=server.password,
                                     queue=args.queue or os.environ.get("WORDCOUNT_QUEUE"))
        conn = Connection(settings, name="wordcount-client", deadline=deadline)
        conn.ensure_functions()
        log_path = args.worker_log or os.path.join(server.directory, "workers.log")
        pool = None
        try:
            pool = WorkerPool(args.workers, server.env(), fault_argv(args), log_path=log_path,
                              first_args=["--slowdown", str(args.slowdown)], first=stragglers)
            job.queue = resolve_kind(conn, settings.queue)
            client.submit(conn, job)
            rc = _finish(conn, job, args, started, deadline, {"workers": args.workers},
                         on_poll=pool.tend)
        finally:
            if pool is not None:
                pool.stop()
        if pool.crashes and not args.quiet:
            print(f"-- {pool.crashes} injected worker crashes survived", file=sys.stderr)
        return rc


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="count on a private Redis with N local worker processes")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--workers", type=_workers, default=2, help="worker processes (1-1024)")
    add_queue_arg(p)
    p.add_argument("--job", help="job name (default: derived from the inputs)")
    p.add_argument("--data-root", help="directory task paths are relative to (default: the "
                                       "inputs' common directory)")
    add_protocol_args(p)
    add_timeout_args(p)
    p.add_argument("--worker-log", metavar="PATH", help="append the workers' logs here")
    p.add_argument("--stragglers", type=_non_negative_int, metavar="K",
                   help="how many workers run with --slowdown (default 1 if --slowdown > 1)")
    p.add_argument("-v", "--verbose", action="store_true")
    add_fault_args(p)
    add_chunk_arg(p)
    add_output_args(p)
    p.set_defaults(handler=cmd_run)


# -- chaos ------------------------------------------------------------------------------------

def _chaos_parser(sub) -> None:
    from . import chaos

    chaos.add_parser(sub)


def _soak_parser(sub) -> None:
    from . import soak

    soak.add_parser(sub)


PARSERS = [_count_parser, _corpus_parser, _bench_parser, _worker_parser, _submit_parser,
           _status_parser, _run_parser, _chaos_parser, _soak_parser]


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wordcount")
    except metadata.PackageNotFoundError:  # run from a source tree
        from . import __version__

        return __version__


class _Parser(argparse.ArgumentParser):
    """argparse, less one trap: ``--opt=--`` (or ``--opt --``) would give the option an empty
    list, skipping its type check (CPython's argparse strips the first '--' of the values)."""

    def _get_values(self, action, arg_strings):
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wordcount", description="Exact word count: local engines and a Redis cluster.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except exc.WordcountError as e:
        print(f"wordcount: error: {e}", file=sys.stderr)
        return e.exit_code
    except exc.SignalReceived as e:
        done = "; the local cluster is stopped" if args.command == "run" else ""
        print(f"wordcount: stopped by {signal.Signals(e.signum).name}{done}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("wordcount: interrupted", file=sys.stderr)
        return exc.EXIT_INTERRUPTED
    except BrokenPipeError:
        return exc.EXIT_OK
    except Exception as e:
        code = _redis_failure(e)
        if code is None:
            raise
        return code


def _redis_failure(e: Exception) -> int | None:
    """A Redis error no module turned into one of ours: one line and its exit code."""
    redis = sys.modules.get("redis")
    if redis is None or not isinstance(e, redis.exceptions.RedisError):
        return None
    if "DB index is out of range" in str(e):
        print("wordcount: error: Redis has no database of the index in the URL (DB index is "
              "out of range): the /DB at the end of the Redis URL must be below the server's "
              "'databases' setting (default 16)", file=sys.stderr)
        return exc.EXIT_USAGE
    print(f"wordcount: error: Redis: {type(e).__name__}: {e}", file=sys.stderr)
    return exc.EXIT_REDIS


if __name__ == "__main__":
    sys.exit(main())
