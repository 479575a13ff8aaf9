"""Command line: ``wordcount <command> ...``.

Thin: parse arguments, call one module, map errors to exit codes. A command is a parser
function (``_<name>_parser(sub)``, returning its parser) and a handler (``cmd_<name>(args)``,
returning the exit code), registered together in ``COMMANDS``.

The package's other modules are imported inside the functions that use them, on purpose:
importing this one must stay cheap (``wordcount --version`` imports neither redis nor pyarrow;
tests/test_imports.py checks it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import argtypes
from . import exceptions as exc
from .runtime import setup_logging, stop_on_signals

Handler = Callable[[argparse.Namespace], int]


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top", type=argtypes.non_negative_int, default=10, metavar="K",
                   help="words to show (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--counts-out", metavar="PATH",
                   help="write the whole table: word count, every word as word<TAB>count by "
                        "count desc then word; the index, word<TAB>N<TAB>doc:count,...; a "
                        "PATH ending in .json: one JSON object")


def add_app_arg(p: argparse.ArgumentParser) -> None:
    """(count, submit, run: the commands that make a table)"""
    from .apps import DEFAULT, name_of

    p.add_argument("--app", type=name_of, default=DEFAULT, metavar="NAME",
                   help=f"what the inputs become (default {DEFAULT}; `wordcount apps` lists "
                        "them; or package.module:APP, importable on every worker)")
    g = p.add_argument_group("an iterative app's rounds (--app pagerank)")
    g.add_argument("--rounds", type=argtypes.positive_int, metavar="N",
                   help="stop after N rounds (default 30)")
    g.add_argument("--epsilon", type=argtypes.fraction_in(0, 1), metavar="E",
                   help="or once the L1 change of a round is at most E (default 1e-9)")
    g.add_argument("--damping", type=argtypes.fraction_in(0, 1), metavar="D",
                   help="PageRank's damping factor, in [0, 1) (default 0.85)")


def _planner(args: argparse.Namespace, data_root: str | None = None):
    """plan(app spec, job name): a job of the command's inputs (an iterative app plans one
    per round)."""
    from . import client

    def plan(spec: str, name: str | None):
        return client.plan_job(args.inputs, args.chunk_size, name, args.data_root,
                               fingerprint=getattr(args, "fingerprint", "stat"),
                               data_root=data_root, pack_size=args.pack_size, app=spec)
    return plan


def _iter_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"rounds": args.rounds, "epsilon": args.epsilon, "damping": args.damping}


def _iterate(conn, job, args, started: float, plan, on_poll=None) -> int:
    """An iterative app's job (``job``: its inputs, name, queue and reduces): its rounds, each
    a job, then the app's table printed as any result."""
    from . import client, report

    app = _app(args)
    result, extra = client.run_rounds(conn, app, job, plan, _iter_options(args),
                                      quiet=args.quiet or (args.json and not args.verbose),
                                      on_poll=on_poll, fresh=getattr(args, "fresh", False))
    extra.update(app=app.name, wait_seconds=round(time.perf_counter() - started, 6))
    report.emit(result, args.top, args.json, args.counts_out, extra, app=app)
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def _app(args: argparse.Namespace):
    """The app ``--app`` names, loaded now: an unknown one is a usage error before any work."""
    from . import apps

    return apps.get(args.app)


def add_chunk_arg(p: argparse.ArgumentParser) -> None:
    from .planner import DEFAULT_CHUNK_SIZE

    p.add_argument("--chunk-size", type=argtypes.positive_size, default=DEFAULT_CHUNK_SIZE,
                   metavar="BYTES",
                   help="split files larger than this into byte-range tasks (default 64MiB; "
                        "suffixes K, M, G)")



def add_pack_arg(p: argparse.ArgumentParser) -> None:
    """(submit, run: a distributed job's plan)"""
    p.add_argument("--pack-size", type=argtypes.size, metavar="BYTES",
                   help="pack small files (and small ranges) into tasks of up to this many "
                        "bytes, each file still checked, and reported by name if unreadable "
                        "(default 4MiB, or the chunk size if smaller; 0: one task per range)")


# -- count ------------------------------------------------------------------------------------

def cmd_count(args: argparse.Namespace) -> int:
    from . import engines, report

    if args.workers is not None and args.engine in ("serial", "reference"):
        raise exc.UsageError(f"--workers is for the threads and processes engines: the "
                             f"{args.engine} engine runs on one thread (add --engine processes)")
    report.check_output(args.counts_out, "--counts-out")
    app = _app(args)
    with stop_on_signals(first=_stop_count):
        if app.iterative:  # rounds need shared tables: on one machine, the sequential oracle
            result = _count_iterative(args, app)
        else:
            result = engines.count_inputs(args.inputs, args.engine, args.workers,
                                          args.chunk_size, args.app)
    report.emit(result, args.top, args.json, args.counts_out, app=app)
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def _count_iterative(args: argparse.Namespace, app):
    from . import planner
    from .engines import Result

    if args.engine != "serial":
        raise exc.UsageError(f"--app {args.app} runs on one machine as its sequential oracle "
                             "(the serial engine); its rounds run distributed with `run`")
    started = time.perf_counter()
    files, errors = planner.discover(args.inputs)
    options = {k: v for k, v in _iter_options(args).items() if v is not None}
    ranks, _ = app.oracle(files, **{k: str(v) if k != "rounds" else v
                                    for k, v in options.items()})
    return Result(counts=ranks, files=len(files), bytes=sum(os.path.getsize(f) for f in files),
                  seconds=time.perf_counter() - started, errors=errors)


def _stop_count(signum: int) -> None:
    """``count`` holds nothing to clean up but the processes engine's workers: they are stopped
    and the process exits at once (unwinding, the pool would count every task left first).
    This runs in a signal handler: the line goes out with os.write, not through sys.stderr,
    whose buffer the main thread may be in the middle of writing ("reentrant call")."""
    import multiprocessing

    for p in multiprocessing.active_children():
        p.terminate()
    line = f"wordcount: stopped by {signal.Signals(signum).name}; nothing was printed\n"
    with contextlib.suppress(OSError):
        os.write(2, line.encode())
    os._exit(128 + signum)


def _count_parser(sub) -> argparse.ArgumentParser:
    from .engines import ENGINES

    p = sub.add_parser("count", help="count words locally (serial, threads or processes)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    p.add_argument("--engine", choices=ENGINES, default="serial",
                   help="serial (default): one thread; threads or processes: --workers of "
                        "them, the same table; reference: the naive oracle (re + Counter)")
    p.add_argument("--workers", type=argtypes.workers, default=None,
                   help="threads/processes, 1-1024 (default: CPU count)")
    add_app_arg(p)
    add_chunk_arg(p)
    add_output_args(p)
    return p


# -- apps -------------------------------------------------------------------------------------

def cmd_apps(args: argparse.Namespace) -> int:
    import json

    from . import apps

    rows = [(name, apps.get(name).summary) for name in apps.APPS]
    if args.json:
        print(json.dumps([{"app": n, "summary": s} for n, s in rows]))
        return exc.EXIT_OK
    width = max(len(n) for n, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    print(f"-- --app NAME picks one (default {apps.DEFAULT}); a module of your own: --app "
          "package.module:APP (an instance of wordcount.apps.App, importable by every worker)")
    return exc.EXIT_OK


def _apps_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("apps", help="the apps a job can run (--app NAME)")
    p.add_argument("--json", action="store_true")
    return p


def cmd_graph(args: argparse.Namespace) -> int:
    from .lab import graph

    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise exc.UsageError(f"{args.outdir}: exists and is not a directory")
    paths = graph.generate(args.outdir, args.pages, args.links, args.files, args.seed)
    size = sum(os.path.getsize(p) for p in paths)
    print(f"wrote {len(paths)} files, {size:,} bytes of links among {args.pages:,} pages to "
          f"{args.outdir}", file=sys.stderr)
    return exc.EXIT_OK


def _graph_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("graph", help="generate a deterministic link graph (--app pagerank)")
    p.add_argument("outdir")
    p.add_argument("--pages", type=argtypes.positive_int, required=True)
    p.add_argument("--links", type=argtypes.non_negative_int, default=5,
                   help="mean out-links per page (0..2x, some pages none; default 5)")
    p.add_argument("--files", type=argtypes.positive_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p


# -- corpus -----------------------------------------------------------------------------------

def cmd_corpus(args: argparse.Namespace) -> int:
    from .lab import corpus

    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise exc.UsageError(f"{args.outdir}: exists and is not a directory")
    if args.distinct is None and args.zipf is not None:
        raise exc.UsageError("--zipf is for the high-cardinality corpus: add --distinct N")
    if args.distinct is not None and args.unicode:
        raise exc.UsageError("--unicode is for the prose corpus, not --distinct (10-letter "
                             "ASCII words)")
    if args.source and (args.distinct is not None or args.unicode or args.skew_size):
        raise exc.UsageError("--from copies the text files given: --distinct, --unicode and "
                             "--skew-size are for the generated corpora")
    for f in args.source or ():
        if not os.path.isfile(f) or not os.access(f, os.R_OK):
            raise exc.UsageError(f"--from {f}: not a readable file")
    try:
        if args.source:
            paths = corpus.replicate(args.source, args.outdir, args.files, args.size)
        elif args.distinct is not None:
            paths = corpus.generate_distinct(args.outdir, args.files, args.size, args.distinct,
                                             args.skew_size, args.seed, args.zipf or 0.0)
        else:
            paths = corpus.generate(args.outdir, args.files, args.size, args.skew_size,
                                    args.seed, unicode=args.unicode)
    except ValueError as e:
        raise exc.UsageError(str(e)) from None
    except OSError as e:
        raise exc.WordcountError(f"cannot write the corpus to {args.outdir}: {e}") from None
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {total:,} bytes to {args.outdir}")
    return exc.EXIT_OK


def _corpus_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("corpus", help="generate a deterministic text corpus, or make one of "
                                      "text files given (--from)")
    p.add_argument("outdir")
    p.add_argument("--from", dest="source", nargs="+",
                   metavar="FILE", help="real text instead: these files one after another, "
                   "over and over, to --size per file (the lab's `cat in.txt in.txt ...`; the "
                   "last copy cut after a line)")
    p.add_argument("--files", type=argtypes.non_negative_int, required=True)
    p.add_argument("--size", type=argtypes.size, required=True, metavar="BYTES",
                   help="bytes per file")
    p.add_argument("--skew-size", type=argtypes.size, default=0, metavar="BYTES",
                   help="add one file of this size (skew experiments)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unicode", action="store_true", help="mix in non-ASCII words")
    p.add_argument("--distinct", type=argtypes.positive_int, metavar="N",
                   help="high-cardinality text instead: 10-letter words from a vocabulary of "
                        "N, each at least once if the files hold N words (11 bytes each), "
                        "so the table has min(N, words) distinct words")
    p.add_argument("--zipf", type=argtypes.float_in(0, 10), metavar="S",
                   help="with --distinct: draw the other words by Zipf(S) over the "
                        "vocabulary's ranks (default 0: uniformly)")
    return p


# -- distributed: shared options ----------------------------------------------------------------

def add_redis_args(p: argparse.ArgumentParser, planning: bool = True) -> None:
    """--redis-url and -v; ``planning`` (worker, submit, run): also --data-root and the
    protocol settings a job is planned or served with (an operator command on existing jobs
    takes none of them)."""
    from .workeropts import add_protocol_args

    p.add_argument("--redis-url", help="redis://[:password@]host:port/db (env REDIS_URL); "
                   "the password may also come from REDIS_PASSWORD")
    if planning:
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


def add_queue_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", choices=["stream", "lease", "auto"],
                   help="the task queue a new job goes to (env WORDCOUNT_QUEUE; default auto: "
                        "lease on RedisRaft, else stream). Workers serve each job on the queue "
                        "it was submitted to")


def deadline_of(args: argparse.Namespace) -> float | None:
    """--timeout S: one deadline (time.monotonic()) for the whole command."""
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


def add_timeout_args(p: argparse.ArgumentParser) -> None:
    """--timeout and --quiet: a command that follows a job (submit, wait)."""
    add_deadline_arg(p)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr (errors and the result are still printed)")


def _finish(conn, job, args, started: float, deadline: float | None = None,
            extra: dict | None = None, on_poll=None) -> int:
    """Wait for the job, read its result, print it (``args``: output options); the exit code.
    The result's ``seconds`` is the job's own time (creation to end); ``wait_seconds`` is how
    long this command waited for it."""
    from . import client, report

    timeout_s = None if deadline is None else max(0.0, deadline - time.monotonic())
    waited = client.wait(conn, job, quiet=args.quiet or (args.json and not args.verbose),
                         on_poll=on_poll, timeout_s=timeout_s)
    result, progress = client.result(conn, job, waited.job_seconds, waited, on_poll)
    doc = {**_result_doc(job, progress), "wait_seconds": round(time.perf_counter() - started, 6)}
    report.emit(result, args.top, args.json, args.counts_out, {**doc, **(extra or {})},
                app=_job_app(job))
    dashboard = os.environ.get("WORDCOUNT_DASHBOARD_URL")  # (set by the compose clusters)
    if dashboard and not args.json:
        print(f"-- dashboard: {dashboard.rstrip('/')}/#job={urllib.parse.quote(job.name)} "
              "(the job's timeline; live while the cluster runs)")
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def _job_app(job):
    """The app a job was submitted with (a job read back from Redis names its own)."""
    from . import apps

    return apps.get(job.app)


def _result_doc(job, progress) -> dict[str, Any]:
    """What a distributed result adds to the JSON of ``count``."""
    return {"job": job.name, "tasks": len(job.tasks), "reduces": progress.reduces,
            "commit": "shuffle" if progress.reduces else "atomic", "dead": progress.dead,
            "stolen": progress.stolen, "backups": progress.backups,
            "duplicates": progress.duplicates, "resubmits": progress.resubmits,
            "created_ms": progress.created_ms, "finished_ms": progress.finished_ms,
            "reused": False, "check": progress.check}


# -- worker -------------------------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace) -> int:
    from .workeropts import WorkerOptions

    setup_logging(args.verbose, logging.INFO)
    options = WorkerOptions.from_args(args)
    if options.commit == "shuffle":
        raise exc.UsageError("worker: --commit shuffle is a job's mode, chosen by `submit` or "
                             "`run`; every worker follows the mode of each job it serves")
    return options.serve(settings_from(args, **options.settings_overrides()),
                         exit_when_idle=args.exit_when_idle)


def _worker_parser(sub) -> argparse.ArgumentParser:
    from .workeropts import add_fault_args

    p = sub.add_parser("worker", help="serve tasks from Redis until stopped")
    add_redis_args(p)
    p.add_argument("--exit-when-idle", action="store_true",
                   help="exit once no job has work left (the lab's behaviour)")
    add_fault_args(p)
    return p


# -- submit -------------------------------------------------------------------------------------

def cmd_submit(args: argparse.Namespace) -> int:
    from . import report

    setup_logging(args.verbose, logging.WARNING)
    deadline = deadline_of(args)
    started = time.perf_counter()
    settings = settings_from(args)
    report.check_output(args.counts_out, "--counts-out")
    if _app(args).iterative and args.no_wait:
        raise exc.UsageError(f"--app {args.app} runs rounds that this command drives: it "
                             "cannot --no-wait")
    job = _planner(args, settings.data_root)(args.app, args.job)
    _check_reduces(args)
    job.reduces = args.reduces or 0  # (a shuffle job without it: from the workers, below)
    with stop_on_signals(), timeout_message(
            args, f"job {job.name} keeps running if it was submitted: `wordcount wait "
                  f"{job.name}` waits for its result (or submit the same inputs again)"):
        return _submit(args, settings, job, started, deadline)


def _check_reduces(args: argparse.Namespace) -> None:
    if args.reduces and args.commit != "shuffle":
        raise exc.UsageError(f"--reduces is the shuffle's: --commit {args.commit} has no reduce "
                             "tasks")


def _submit(args: argparse.Namespace, settings, job, started: float,
            deadline: float | None) -> int:
    from . import client
    from .connection import Connection

    conn = Connection(settings, name="wordcount-client", deadline=deadline)
    conn.ensure_functions()
    from .queue import resolve_kind

    job.queue = resolve_kind(conn, settings.queue)
    from . import jobs

    if args.commit == "shuffle" and not job.reduces:
        from . import registry, shuffle

        now = int(time.time() * 1000)
        alive = [r for r in registry.reports(conn, now) if not r.lost(now)]
        job.reduces = shuffle.default_reduces(len(alive))

    jobs.expire(conn, settings.keep_jobs_s)  # finished jobs past their retention
    if _app(args).iterative:
        return _iterate(conn, job, args, started, _planner(args, settings.data_root))
    before = client.progress(conn, job.name)
    added = client.submit(conn, job, fresh=args.fresh)
    reused = before.finished and before.plan == job.plan_id and not args.fresh
    if args.quiet:
        pass
    elif reused:
        when = datetime.datetime.fromtimestamp(before.finished_ms / 1000).isoformat(" ", "seconds")
        print(f"job {job.name}: finished at {when} with these unchanged inputs: reusing its "
              "result (--fresh counts again)", file=sys.stderr)
    else:
        print(f"job {job.name}: {len(job.tasks)} tasks ({added} new), "
              f"{job.total_bytes:,} bytes", file=sys.stderr)
    if args.no_wait:
        print(job.name)
        if not args.quiet:
            print(f"`wordcount wait {job.name}` waits for its result, `wordcount jobs` lists "
                  "the jobs", file=sys.stderr)
        return exc.EXIT_OK
    return _finish(conn, job, args, started, deadline, {"reused": reused})


def _submit_parser(sub) -> argparse.ArgumentParser:
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
    from .workeropts import JOB_COMMIT_MODES, add_reduces_arg

    p.add_argument("--commit", choices=JOB_COMMIT_MODES, default="shuffle",
                   help="shuffle (the default): maps store R partitions, R reduce tasks sum "
                        "them (Redis work per map task O(R), not O(its vocabulary)); atomic: "
                        "each task's counts applied in the Function that settles it")
    add_reduces_arg(p)
    add_timeout_args(p)
    add_redis_args(p)
    add_app_arg(p)
    add_chunk_arg(p)
    add_pack_arg(p)
    add_output_args(p)
    return p


# -- operating jobs and workers: jobs, status, result, wait, cancel, delete, requeue, workers ----

READ_ONLY_RETRY_S = 5.0  # how long a read-only command waits for an unreachable Redis


def _operator(args: argparse.Namespace, name: str, functions: bool = False):
    """A connection for an operator command (with --timeout's deadline when it has one).
    Only a command that runs our Functions (``functions``) checks the library's version: the
    others only read keys, which the admin user may do (it may not FCALL). A read-only command
    (no ``functions``) fails fast when Redis is unreachable: READ_ONLY_RETRY_S, unless
    --timeout or WORDCOUNT_RETRY_SECONDS says otherwise."""
    import dataclasses

    from .connection import Connection

    setup_logging(getattr(args, "verbose", False), logging.WARNING)
    settings = settings_from(args)
    if not functions and getattr(args, "timeout", None) is None \
            and not os.environ.get("WORDCOUNT_RETRY_SECONDS"):
        settings = dataclasses.replace(settings, retry_seconds=READ_ONLY_RETRY_S)
    conn = Connection(settings, name=name,
                      deadline=deadline_of(args) if hasattr(args, "timeout") else None)
    if functions:
        conn.ensure_functions()
    return conn


def _job_name(text: str) -> str:
    from .settings import check_job_name

    try:
        return check_job_name(text)
    except exc.UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _job_parser(sub, name: str, help_: str, deadline: bool = True) -> argparse.ArgumentParser:
    """The parser of a command on one job: ``wordcount NAME JOB [--redis-url ...]
    [--timeout S]`` (``deadline``: the command adds its own --timeout)."""
    p = sub.add_parser(name, help=help_)
    p.add_argument("job", metavar="JOB", type=_job_name,
                   help="the job's name (`wordcount jobs` lists them)")
    add_redis_args(p, planning=False)
    if deadline:
        add_deadline_arg(p)
    return p


def add_deadline_arg(p: argparse.ArgumentParser) -> None:
    """--timeout on an operator command (`wait` has its own, with --quiet)."""
    p.add_argument("--timeout", type=argtypes.seconds, metavar="S",
                   help="give up after S seconds in all, Redis unreachable included: exit 6 "
                        f"(default: read-only commands wait {READ_ONLY_RETRY_S:g} s for an "
                        "unreachable Redis, the others WORDCOUNT_RETRY_SECONDS, 120)")


def cmd_jobs(args: argparse.Namespace) -> int:
    import json

    from . import jobs, report

    conn = _operator(args, "wordcount-jobs")
    only = getattr(args, "job", None)

    def show() -> None:
        # (a user that may not run our Functions -- admin -- lists without expiring)
        with contextlib.suppress(exc.PermissionRefusedError):
            jobs.expire(conn, conn.settings.keep_jobs_s)
        if only:
            jobs.require(conn, only)
        docs = [r.as_dict() for r in jobs.rows(conn, only)]
        if args.json:
            print(json.dumps(docs), flush=True)
        else:
            report.print_jobs(docs, int(time.time() * 1000))
    return watch(args, show)


def watch(args: argparse.Namespace, show: Callable[[], None]) -> int:
    """Show once, or (--watch S) again every S seconds until interrupted (exit 0): the screen
    redrawn on a terminal, one listing after another (JSON: one line each) otherwise."""
    if not getattr(args, "watch", None):
        show()
        return exc.EXIT_OK
    tty = sys.stdout.isatty()
    with stop_on_signals():
        try:
            while True:
                if tty:
                    print("\x1b[H\x1b[2J", end="")  # home, clear
                    print(f"every {args.watch:g} s, {datetime.datetime.now():%H:%M:%S} "
                          "(Ctrl-C stops)")
                show()
                if not tty and not args.json:
                    print(flush=True)
                time.sleep(args.watch)
        except (exc.SignalReceived, KeyboardInterrupt):
            return exc.EXIT_OK


def add_watch_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watch", type=argtypes.seconds, nargs="?", const=2.0, metavar="S",
                   help="show it again every S seconds (default 2) until Ctrl-C")


def _jobs_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("jobs", help="list the jobs in Redis: running, done and cancelled")
    p.add_argument("--json", action="store_true", help="one JSON list (the same figures)")
    add_watch_arg(p)
    add_redis_args(p, planning=False)
    add_deadline_arg(p)
    return p


def _status_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("status", help="every job (as `jobs`), or one job with --job")
    p.add_argument("--job", type=_job_name,
                   help="only this job (exit 2 if Redis has no such job)")
    p.add_argument("--json", action="store_true")
    add_redis_args(p, planning=False)
    add_deadline_arg(p)
    return p


def cmd_result(args: argparse.Namespace) -> int:
    from . import client, jobs, report

    conn = _operator(args, "wordcount-result")
    job = jobs.load(conn, args.job)
    p = client.progress(conn, job.name)
    if p.state == "cancelled":
        raise exc.JobCancelledError(f"job {job.name} was cancelled: its counts are partial")
    if not p.finished:
        raise exc.JobNotFinishedError(
            f"job {job.name} is running: {p.done + p.dead}/{p.all_tasks} tasks settled; "
            f"`wordcount wait {job.name}` waits for its result")
    report.check_output(args.counts_out, "--counts-out")
    result, progress = client.result(conn, job, p.job_seconds, p)
    report.emit(result, args.top, args.json, args.counts_out, _result_doc(job, progress),
                app=_job_app(job))
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def _result_parser(sub) -> argparse.ArgumentParser:
    p = _job_parser(sub, "result", "the result of a finished job (self-checked); exit 7 while "
                                   "it runs")
    add_output_args(p)
    return p


def cmd_lookup(args: argparse.Namespace) -> int:
    import json

    from . import apps, client, jobs

    conn = _operator(args, "wordcount-lookup")
    p = jobs.require(conn, args.job)
    if p.state != "done":
        raise exc.JobNotFinishedError(
            f"job {args.job} is {p.state}: {p.done + p.dead}/{p.all_tasks} tasks settled, so "
            "its table is partial; `wordcount wait` waits for it")
    app = apps.get(p.app)
    found = app.lookup(conn, args.job, args.words)
    if not found:
        raise exc.UsageError(f"no word in {' '.join(map(repr, args.words))} (the word rule "
                             "keeps runs of letters and digits, lowercased)")
    if client.progress(conn, args.job).finished_ms != p.finished_ms:
        raise exc.JobLostError(f"job {args.job} changed while it was read (Redis restarted, "
                               "or it was counted again): ask again")
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        for row in found:
            print(app.lookup_line(row))
    return exc.EXIT_OK


def _lookup_parser(sub) -> argparse.ArgumentParser:
    p = _job_parser(sub, "lookup", "look words up in a finished job's table, in Redis (an "
                                   "index job: the documents of each word)")
    p.add_argument("words", nargs="+", metavar="WORD")
    p.add_argument("--json", action="store_true", help="one JSON list")
    return p


def cmd_wait(args: argparse.Namespace) -> int:
    from . import jobs, report

    started = time.perf_counter()
    deadline = deadline_of(args)
    report.check_output(args.counts_out, "--counts-out")
    conn = _operator(args, "wordcount-wait", functions=True)  # it may resubmit the job
    job = jobs.load(conn, args.job)
    with stop_on_signals(), timeout_message(args, f"job {job.name} keeps running: `wordcount "
                                                  f"wait {job.name}` again"):
        return _finish(conn, job, args, started, deadline)


def _wait_parser(sub) -> argparse.ArgumentParser:
    p = _job_parser(sub, "wait", "wait for a job (submitted with --no-wait), then print its "
                                 "result", deadline=False)
    add_timeout_args(p)
    add_output_args(p)
    return p


def cmd_cancel(args: argparse.Namespace) -> int:
    from . import client, jobs

    conn = _operator(args, "wordcount-cancel", functions=True)
    cancelled = jobs.cancel(conn, args.job)
    p = client.progress(conn, args.job)
    if cancelled:
        print(f"job {args.job} cancelled: {p.done + p.dead}/{p.all_tasks} tasks had settled; "
              "workers drop its tasks in flight (`wordcount delete` removes it)")
    else:
        print(f"job {args.job} is {p.state}, not running: nothing changed")
    return exc.EXIT_OK


def _cancel_parser(sub) -> argparse.ArgumentParser:
    return _job_parser(sub, "cancel", "stop a running job: no task of it is taken or committed "
                                      "any more")


def cmd_delete(args: argparse.Namespace) -> int:
    from . import jobs

    conn = _operator(args, "wordcount-delete", functions=True)
    swept = jobs.delete(conn, args.job, force=args.force)
    print(f"job {args.job} deleted" + (f" ({swept} stage pieces swept)" if swept else ""))
    return exc.EXIT_OK


def _delete_parser(sub) -> argparse.ArgumentParser:
    p = _job_parser(sub, "delete", "delete a job that is not running, and all its keys")
    p.add_argument("--force", action="store_true",
                   help="a running job too (a client waiting for it stops: exit 9)")
    return p


def cmd_requeue(args: argparse.Namespace) -> int:
    from . import jobs

    conn = _operator(args, "wordcount-requeue", functions=True)
    unreadable = jobs.still_unreadable(conn, args.job)
    n = jobs.requeue(conn, args.job)
    if n:
        print(f"job {args.job}: {n} dead-lettered tasks requeued; `wordcount wait {args.job}` "
              "follows it")
        if unreadable:
            print(f"wordcount: warning: {len(unreadable)} of their files cannot be read from "
                  f"here, so they will likely be set aside again: "
                  + ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else ""),
                  file=sys.stderr)
    else:
        print(f"job {args.job} has no dead-lettered task: nothing changed")
    return exc.EXIT_OK


def _requeue_parser(sub) -> argparse.ArgumentParser:
    return _job_parser(sub, "requeue", "give a job's dead-lettered tasks new attempts (once "
                                       "their cause is fixed)")


def cmd_workers(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from . import registry, report

    conn = _operator(args, "wordcount-workers")
    if args.prune:
        gone = registry.prune_lost(conn)
        print(f"forgot {len(gone)} lost worker(s)" + (f": {', '.join(gone)}" if gone else ""),
              file=sys.stderr)

    def show() -> None:
        now = int(time.time() * 1000)
        docs = [{**dataclasses.asdict(r), "age_s": round(r.age_s(now), 3), "lost": r.lost(now),
                 "silent": r.silent(now)} for r in registry.reports(conn, now)]
        if args.json:
            print(json.dumps(docs), flush=True)
        else:
            report.print_workers(docs, now)
    return watch(args, show)


def _workers_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("workers", help="the workers: state, current task, heartbeat age, "
                                       "tasks done")
    p.add_argument("--json", action="store_true")
    p.add_argument("--prune", action="store_true",
                   help="first forget the workers shown LOST (no report for 3 intervals)")
    add_watch_arg(p)
    add_redis_args(p, planning=False)
    add_deadline_arg(p)
    return p


# -- run ----------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from . import embedded, report
    from .workeropts import WorkerOptions

    setup_logging(args.verbose, logging.WARNING)
    deadline = deadline_of(args)
    started = time.perf_counter()
    # Everything is checked, and the job planned, before anything is started.
    options = WorkerOptions.from_args(args).replace(verbose=False)  # -v is the client's here
    stragglers = args.stragglers if args.stragglers is not None else (
        1 if args.slowdown > 1 else 0)
    if stragglers > args.workers:
        raise exc.UsageError(f"--stragglers {stragglers} is more than --workers {args.workers}")
    report.check_output(args.counts_out, "--counts-out")
    report.check_output(args.worker_log, "--worker-log")
    app = _app(args)
    plan = _planner(args)
    job = plan(args.app, args.job)
    _check_reduces(args)
    if args.commit == "shuffle":
        from . import shuffle

        job.reduces = args.reduces or shuffle.default_reduces(args.workers)

    def finish(conn, tend: Callable[[], None]) -> int:
        if app.iterative:
            return _iterate(conn, job, args, started, plan, on_poll=tend)
        return _finish(conn, job, args, started, deadline, {"workers": args.workers},
                       on_poll=tend)

    first = job
    if app.iterative:  # the local cluster starts with round 0 (the rounds then follow)
        first = plan("links", job.name + "-links")
        first.reduces = job.reduces
    with stop_on_signals(), timeout_message(args, "the local cluster was stopped"):
        return embedded.run_job(first, args.workers, options, finish, stragglers=stragglers,
                                queue=args.queue or os.environ.get("WORDCOUNT_QUEUE"),
                                worker_log=args.worker_log, deadline=deadline,
                                quiet=args.quiet)


def _run_parser(sub) -> argparse.ArgumentParser:
    from .workeropts import add_fault_args, add_protocol_args, add_reduces_arg

    p = sub.add_parser("run", help="count on a private Redis with N local worker processes")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--workers", type=argtypes.workers, default=2,
                   help="worker processes (1-1024)")
    add_queue_arg(p)
    p.add_argument("--job", help="job name (default: derived from the inputs)")
    p.add_argument("--data-root", help="directory task paths are relative to (default: the "
                                       "inputs' common directory)")
    add_protocol_args(p)
    add_timeout_args(p)
    p.add_argument("--worker-log", metavar="PATH", help="append the workers' logs here")
    p.add_argument("--stragglers", type=argtypes.non_negative_int, metavar="K",
                   help="how many workers run with --slowdown (default 1 if --slowdown > 1)")
    p.add_argument("-v", "--verbose", action="store_true")
    add_reduces_arg(p)
    add_fault_args(p, commit_default="shuffle")
    add_app_arg(p)
    add_chunk_arg(p)
    add_pack_arg(p)
    add_output_args(p)
    return p


# -- commands whose module defines its parser and handlers ------------------------------------

def _bench_parser(sub) -> None:
    from .lab import bench

    bench.add_parser(sub)


def _chaos_parser(sub) -> None:
    from chaos import monkey as chaos

    chaos.add_parser(sub)


def _soak_parser(sub) -> None:
    from .lab import soak

    soak.add_parser(sub)


def _experiment_parser(sub) -> None:
    from .lab import experiments

    experiments.add_parser(sub)


def _dashboard_parser(sub) -> None:
    from .dashboard import command

    command.add_parser(sub, add_redis_args, settings_from)


# (parser function, handler): the handler is set on the parser the function returns; None for
# the commands that set their own (bench, chaos, soak, experiment, dashboard: one handler per
# sub-command or module).
COMMANDS: list[tuple[Callable[[Any], argparse.ArgumentParser | None], Handler | None]] = [
    (_count_parser, cmd_count),
    (_apps_parser, cmd_apps),
    (_graph_parser, cmd_graph),
    (_corpus_parser, cmd_corpus),
    (_bench_parser, None),
    (_worker_parser, cmd_worker),
    (_submit_parser, cmd_submit),
    (_status_parser, cmd_jobs),
    (_jobs_parser, cmd_jobs),
    (_result_parser, cmd_result),
    (_lookup_parser, cmd_lookup),
    (_wait_parser, cmd_wait),
    (_cancel_parser, cmd_cancel),
    (_delete_parser, cmd_delete),
    (_requeue_parser, cmd_requeue),
    (_workers_parser, cmd_workers),
    (_dashboard_parser, None),
    (_run_parser, cmd_run),
    (_chaos_parser, None),
    (_soak_parser, None),
    (_experiment_parser, None),
]


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wordcount")
    except metadata.PackageNotFoundError:  # run from a source tree
        from . import __version__

        return __version__


def _top_parser() -> argparse.ArgumentParser:
    parser = argtypes.ArgumentParser(
        prog="wordcount", description="Exact word count: local engines and a Redis cluster.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _top_parser()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, handler in COMMANDS:
        p = add(sub)
        if handler is not None:
            p.set_defaults(handler=handler)  # type: ignore[union-attr]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:  # answered without every command's parser (and its imports)
        _top_parser().parse_args(argv[:1])
    args = build_parser().parse_args(argv)
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
