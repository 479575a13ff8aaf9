"""Benchmarks that print ratios measured side by side in one run (never timed assertions).

Every benchmark runs on a corpus chosen with ``--corpus`` (``corpus.parse_spec``): a preset
(``skew``: 512 MiB, one file 10x the others; ``distinct``: ~63 MB of 10-letter words, 2 M
distinct, ``--distinct N``/``--zipf S``) or any ``<files>x<size>`` (``8x32MiB``,
``10000x1KiB``, ``2000x4KiB``); ``--size`` makes it that many bytes in all (a test's tiny
corpus), ``--files`` another file count. Generated once, cached under ``.cache/``.

``wordcount bench tokenizer``: the naive reference, our serial engine, threads and processes on
the same corpus; MB/s, ratios, peak memory, and whether every count table is byte-identical to
the reference's.

``wordcount bench distributed``: ``wordcount run`` (private Redis + N worker processes) in each
commit mode asked (``--variants``: atomic, shuffle, per-word) against the serial engine and the
processes engine with N workers; every table compared with the serial engine's (a different one:
exit 1).

``wordcount bench queues``: one job per commit mode (``--modes``: atomic, shuffle) on the stream
queue and on the lease queue of a single Redis, and on the lease queue of a 3-node RedisRaft
cluster (when its binaries are there), alternated in each repeat round, each on a fresh Redis:
wall time, Redis CPU, commands and FCALLs per task, Raft log bytes, peak RSS of the workers and
of Redis; then Raft with a node killed every K seconds, and the failover time a client sees
after the leader is killed. ``--failover-only``: just the failover times, next to the bare
cluster's (a plain client polling every node until one accepts a write).
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import argtypes
from . import corpus
from .clirun import timed

# The Redis side (redis, client, connection, embedded, raft) is imported inside the benchmarks
# that use it: this module is imported whenever the CLI builds its parser.

NAN = float("nan")


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss: int  # bytes, the largest process of the run
    counts_path: str
    nbytes: int

    @property
    def mb_s(self) -> float:
        return self.nbytes / self.seconds / 1e6


def run_measured(label: str, argv: list[str], counts_path: str, env: dict | None = None
                 ) -> Measurement:
    """Run a wordcount command as its own process; wall time and peak RSS (of it or its
    largest child)."""
    run = timed(*argv, "--json", "--counts-out", counts_path, base_env=env)
    if run.returncode != 0:
        raise SystemExit(f"bench: {label} failed with exit status {run.returncode}: "
                         f"{run.stderr.strip()[-400:]}")
    doc = json.loads(run.stdout)
    return Measurement(label, run.seconds, run.peak_rss, counts_path, doc["bytes"])


def corpus_of(args: argparse.Namespace, default: str, legacy_per_file: bool = False
              ) -> tuple[str, corpus.Spec]:
    """The benchmark's corpus (generated the first time) and its spec. ``legacy_per_file``
    (bench queues without --corpus): ``--files N --size S`` are N files of S bytes each, as
    before presets existed."""
    try:
        if args.corpus is None and legacy_per_file and args.size is not None:
            files = args.files or corpus.parse_spec(default).files
            spec = corpus.parse_spec(f"{files}x{args.size}", distinct=args.distinct,
                                     zipf=args.zipf)
        else:
            spec = corpus.parse_spec(args.corpus or default, size=args.size, files=args.files,
                                     distinct=args.distinct, zipf=args.zipf)
        return corpus.ensure(spec, args.seed, args.dir), spec
    except ValueError as e:
        raise SystemExit(f"bench: {e}") from None


def print_table(rows: list[Measurement], baseline: Measurement,
                ratios: list[tuple[str, Measurement]]) -> bool:
    """One line per run: its time, throughput, speed-up over each of ``ratios`` (how many times
    faster), peak RSS, and whether its table is byte-identical to ``baseline``'s. True when
    every table is."""
    identical_all = True
    print(f"{'engine':<26}{'seconds':>9}{'MB/s':>9}"
          + "".join(f"{name:>10}" for name, _ in ratios) + f"{'peak RSS':>11}  counts")
    for m in rows:
        same = filecmp.cmp(m.counts_path, baseline.counts_path, shallow=False)
        identical_all &= same
        print(f"{m.label:<26}{m.seconds:>9.2f}{m.mb_s:>9.1f}"
              + "".join(f"{r.seconds / m.seconds:>10.2f}" for _, r in ratios)
              + f"{m.peak_rss / 2**20:>8.0f} MiB  {'identical' if same else 'DIFFERENT'}")
    return identical_all


def _best_of(repeat: int, plan: list[tuple[str, list[str]]], tmp: str,
             extra: list[str]) -> list[Measurement]:
    """Each command of ``plan`` ``repeat`` times, alternated within each round (a machine that
    slows down slows every variant alike); the fastest run of each, in plan order."""
    best: dict[str, Measurement] = {}
    for _ in range(repeat):
        for label, argv in plan:
            path = os.path.join(tmp, "".join(c if c.isalnum() else "-" for c in label) + ".tsv")
            m = run_measured(label, argv + extra, path)
            if label not in best or m.seconds < best[label].seconds:
                best[label] = m
    return [best[label] for label, _ in plan]


def tokenizer(args: argparse.Namespace) -> int:
    data, spec = corpus_of(args, "8x32MiB")
    n = str(args.workers)
    plan = [
        ("naive reference", ["count", data, "--engine", "reference"]),
        ("serial", ["count", data, "--engine", "serial"]),
        (f"threads x{n}", ["count", data, "--engine", "threads", "--workers", n]),
        (f"processes x{n}", ["count", data, "--engine", "processes", "--workers", n]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows = _best_of(args.repeat, plan, tmp, ["--chunk-size", str(args.chunk_size)])
        print(f"corpus: {data} ({spec.describe()}), best of {args.repeat}, "
              f"{os.cpu_count()} CPUs")
        ok = print_table(rows, rows[0], [("x naive", rows[0]), ("x serial", rows[1])])
    print("count tables: " + ("all identical" if ok else "DIFFERENT"))
    return 0 if ok else 1


# ``wordcount run`` flags per commit mode (bench distributed --variants)
VARIANTS = {mode: ["--commit", mode] for mode in ("atomic", "shuffle", "per-word")}


def _names(text: str, known, what: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in known]
    if unknown or not names:
        raise SystemExit(f"bench: unknown {what} {', '.join(unknown) or repr(text)} "
                         f"(choose from {', '.join(known)})")
    return list(dict.fromkeys(names))


def distributed(args: argparse.Namespace) -> int:
    """The Redis engine (``wordcount run``: private redis-server + N worker processes) in each
    commit mode against the serial engine and the local processes engine with the same number
    of workers, on the same corpus; every table compared with the serial engine's."""
    from .. import shuffle

    variants = _names(args.variants, VARIANTS, "variant")
    data, spec = corpus_of(args, "8x32MiB")
    n = str(args.workers)
    plan = [("serial", ["count", data, "--engine", "serial"]),
            (f"processes x{n}", ["count", data, "--engine", "processes", "--workers", n])]
    reduces = args.reduces or shuffle.default_reduces(args.workers)
    for variant in variants:
        argv = ["run", data, "--workers", n, *VARIANTS[variant]]
        label = f"run {variant} x{n}"
        if variant == "shuffle":
            argv += ["--reduces", str(reduces)]
            label += f" R={reduces}"
        if args.pack_size is not None:
            argv += ["--pack-size", str(args.pack_size)]
        plan.append((label, argv))
    with tempfile.TemporaryDirectory() as tmp:
        rows = _best_of(args.repeat, plan, tmp, ["--chunk-size", str(args.chunk_size)])
        print(f"corpus: {data} ({spec.describe()}), best of {args.repeat}, "
              f"{os.cpu_count()} CPUs; 'x serial'/'x procs': times faster than serial / "
              f"processes x{n}")
        ok = print_table(rows, rows[0], [("x serial", rows[0]), ("x procs", rows[1])])
    print("count tables: " + ("all identical to the serial engine's" if ok else
                              "DIFFERENT from the serial engine's (see the counts column)"))
    return 0 if ok else 1


# -- bench queues ---------------------------------------------------------------------------

QUEUE_MODES = ("atomic", "shuffle")  # the commit modes a job can be submitted in


@dataclass
class JobRun:
    label: str
    mode: str  # atomic | shuffle
    queue: str  # stream | lease
    where: str  # "1-Redis" | "RedisRaft"
    seconds: float
    redis_cpu: float = NAN  # CPU seconds of every Redis process (all nodes), submit to done
    tasks: int = 0  # every task of the job: maps, and a shuffle job's reduces
    reduces: int = 0
    cmds: float = NAN  # commands Redis ran for the job (inside Functions too; not the polls)
    fcalls: float = NAN
    polls: int = 0  # the bench client's progress polls, and the commands each one costs
    poll_cmds: float = NAN
    raft_log: float = NAN  # bytes the leader's Raft log (raft.db) grew by
    raft_entries: float = NAN
    compacted: bool = False  # a snapshot compacted the log during the job: raft_log is low
    worker_rss: int = 0  # peak (VmHWM) of the largest worker process
    forked_rss: int = 0  # this process's RSS when it forked the workers (shared with them)
    redis_rss: int = 0  # peak (VmHWM) of the largest Redis process
    redis_mem: int = 0  # largest used_memory_peak of the nodes
    kills: int = 0
    digest: str = ""  # sha256 of the count table as --counts-out writes it
    words: int = 0  # distinct words in the table
    waited: object = None  # the job's last client.Progress

    @property
    def per_task(self) -> float:
        if not self.tasks or math.isnan(self.cmds):
            return NAN
        per_task = (self.cmds - self.polls * self.poll_cmds) / self.tasks
        return per_task if per_task >= 0 else NAN  # (never: a miscount, not a figure)


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of a process (VmHWM), bytes; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _reset_hwm(pid: int) -> None:
    """Start a process's VmHWM again from its current RSS (Linux: clear_refs 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _own_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


@dataclass
class _Target:
    """Where a job runs: one Redis or a RedisRaft cluster (fresh for each job)."""

    where: str
    env: dict
    url: str
    password: str
    clients: Callable[[], list]  # a plain admin client per node
    pids: Callable[[], list[int]]  # each node's redis-server
    leader: Callable[[], int]  # the node whose command counts are the job's
    raft: bool = False


_OWN_COMMANDS = ("cmdstat_info",)  # the bench's INFO calls; RedisRaft's own: cmdstat_raft*


def _commands(info: dict) -> tuple[int, int]:
    """(commands, FCALLs) in an ``INFO commandstats`` reply: every command Redis executed, the
    ones run inside Functions included, but the bench's INFO and RedisRaft's own (``RAFT``
    wraps each client command on the leader, ``RAFT.AE`` etc. between nodes)."""
    total = fcalls = 0
    for name, stat in info.items():
        if name in _OWN_COMMANDS or name.startswith("cmdstat_raft"):
            continue
        total += int(stat["calls"])
        if name in ("cmdstat_fcall", "cmdstat_fcall_ro"):
            fcalls += int(stat["calls"])
    return total, fcalls


def _sample(clients, leader: int, raft: bool) -> dict:
    cpu = 0.0
    for c in clients:
        info = c.info("cpu")
        cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    cmds, fcalls = _commands(clients[leader].info("commandstats"))
    out = {"cpu": cpu, "cmds": cmds, "fcalls": fcalls}
    if raft:
        info = clients[leader].info("raft")
        out.update(log=int(info["raft_file_size"]), entries=int(info["raft_current_index"]),
                   snapshots=int(info["raft_snapshots_created"]))
    return out


def _table_digest(target: _Target, job, waited) -> tuple[str, int]:
    """Read the finished job's result (self-checked) in a forked child, and return the sha256
    of its table as ``--counts-out`` writes it and its number of words. A child, so that this
    process, which forks every later job's workers, never holds a big table (a forked worker's
    RSS starts with this process's)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(rfd)
            from .. import client
            from ..connection import Connection
            from ..settings import Settings

            conn = Connection(Settings.from_env({}, redis_url=target.url,
                                                redis_password=target.password))
            result, _ = client.result(conn, job, 0.0, waited)
            h = hashlib.sha256()
            for word, n in sorted(result.counts.items(), key=lambda kv: (-kv[1], kv[0])):
                h.update(f"{word}\t{n}\n".encode("utf-8", "surrogatepass"))
            reply = ["ok", h.hexdigest(), len(result.counts)]
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported by the parent
            reply = ["error", f"{type(e).__name__}: {e}", 0]
        finally:
            try:
                os.write(wfd, json.dumps(reply).encode())
            finally:
                os._exit(code)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    status, digest, words = json.loads(b"".join(chunks) or b'["error", "no reply", 0]')
    if status != "ok":
        raise SystemExit(f"bench: the result of {job.name} could not be read: {digest}")
    return digest, words


def _one_job(label: str, mode: str, target: _Target, data: str, kind: str, workers: int,
             chunk: int, reduces: int, nemesis=None, pack_size: int | None = None) -> JobRun:
    """Submit one job to a running Redis (or cluster), run it with N worker processes, and
    measure it: wall time from submit to finished, and (without a nemesis: a restarted node
    starts its counters again) Redis's CPU, commands and Raft log over that time, and the
    peak RSS of the workers and of Redis."""
    from .. import client
    from ..embedded import LocalCluster

    job = client.plan_job([data], chunk, name="bench-" + "".join(
        ch if ch.isalnum() else "-" for ch in label), pack_size=pack_size)
    job.queue = kind
    job.reduces = reduces if mode == "shuffle" else 0
    run = JobRun(label, mode, kind, target.where, NAN, forked_rss=_own_rss())
    clients: list = []
    with LocalCluster(workers, env=target.env, log_path=os.devnull) as cluster:
        conn = cluster.connect()
        try:
            time.sleep(0.5)  # the workers are up and idle: their start is not the job's time
            clients = target.clients()
            _measure_job(run, job, conn, cluster, clients, target, nemesis)
        finally:
            for c in clients:
                c.close()
    run.digest, run.words = _table_digest(target, job, run.waited)
    conn.close()
    return run


def _measure_job(run: JobRun, job, conn, cluster, clients: list, target: _Target, nemesis
                 ) -> None:
    """Submit the job and wait for it on the cluster; its wall time, the workers' peak RSS,
    and (without a nemesis) Redis's counters over that time into ``run``. The workers stop
    at the end (the ``with`` of the caller too: a second stop is a no-op)."""
    from .. import client

    leader = target.leader()
    for pid in target.pids():
        _reset_hwm(pid)
    peaks: dict[int, int] = {}

    def sample_workers() -> None:
        for p in cluster.pool.procs:
            peaks[p.pid] = max(peaks.get(p.pid, 0), _vm_hwm(p.pid))

    last = [0.0]
    polls = [0]

    def on_poll() -> None:
        polls[0] += 1
        if time.monotonic() - last[0] > 0.25:
            last[0] = time.monotonic()
            sample_workers()

    before = None if nemesis else _sample(clients, leader, target.raft)
    stop = threading.Event()
    kills = [0]
    thread = None
    if nemesis:
        thread = threading.Thread(target=nemesis, args=(stop, kills), daemon=True)
    started = time.perf_counter()
    try:
        client.submit(conn, job)
        if thread:
            thread.start()
        waited = cluster.wait(conn, job, poll_s=0.02, on_poll=on_poll)
        run.seconds = time.perf_counter() - started
        after = None if nemesis else _sample(clients, leader, target.raft)
        sample_workers()  # (still alive, idle: VmHWM is their peak)
    finally:
        stop.set()
        if thread and thread.is_alive():
            thread.join(60)
    cluster.pool.stop()
    run.waited = waited
    run.polls = polls[0] + 1  # (the last poll saw the job done)
    run.tasks, run.reduces, run.kills = waited.total + waited.reduces, waited.reduces, kills[0]
    run.worker_rss = max(peaks.values(), default=0)
    if before is not None and after is not None:
        run.redis_cpu = after["cpu"] - before["cpu"]
        run.cmds, run.fcalls = after["cmds"] - before["cmds"], after["fcalls"] - before["fcalls"]
        if target.raft and target.leader() != leader:  # an election meanwhile: the commands
            run.cmds = run.fcalls = NAN                # went through two nodes
        if target.raft:
            run.raft_log = after["log"] - before["log"]
            run.raft_entries = after["entries"] - before["entries"]
            run.compacted = after["snapshots"] > before["snapshots"]
        # what one progress poll of the client costs, measured alone (the workers stopped):
        # the least of 5, since a node may run other commands meanwhile (RedisRaft's own: once
        # 133 for a 4-command poll, which made a job's commands per task negative)
        costs = []
        for _ in range(5):
            a = _commands(clients[leader].info("commandstats"))[0]
            client.progress(conn, job.name)
            costs.append(_commands(clients[leader].info("commandstats"))[0] - a)
        run.poll_cmds = min(costs)
    run.redis_rss = max((_vm_hwm(pid) for pid in target.pids()), default=0)
    mems = []
    for c in clients:
        try:
            mems.append(int(c.info("memory")["used_memory_peak"]))
        except Exception:  # noqa: BLE001 - a node down after a nemesis: no figure from it
            pass
    run.redis_mem = max(mems, default=0)


def _single(server) -> _Target:
    import redis

    return _Target("1-Redis", server.env(), server.url, server.password,
                   lambda: [redis.Redis(host="127.0.0.1", port=server.port,
                                        password=server.password)],
                   lambda: [server.proc.pid], lambda: 0)


def _raft(cluster) -> _Target:
    return _Target("RedisRaft", cluster.env(), cluster.url, cluster.password,
                   lambda: [cluster.client(j) for j in range(len(cluster.nodes))],
                   lambda: [n.proc.pid for n in cluster.nodes if n.alive],
                   cluster.leader, raft=True)


def _fmt(value: float, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}{spec}}"


def _print_queue_runs(runs: list[JobRun], modes: list[str]) -> None:
    best: dict[str, JobRun] = {}
    for r in runs:
        if r.label not in best or r.seconds < best[r.label].seconds:
            best[r.label] = r
    print(f"{'run':<36}{'seconds':>8}{'Redis CPU s':>12}{'cmds/task':>10}{'FCALL/task':>11}"
          f"{'Raft log KiB':>13}{'entries':>8}{'worker RSS':>11}{'Redis RSS':>10}"
          f"{'Redis mem':>10}")
    for r in best.values():
        log = _fmt(r.raft_log / 1024, ".0f", 12) + ("*" if r.compacted else " ")
        fcalls = r.fcalls / r.tasks if r.tasks else NAN
        print(f"{r.label + (f' ({r.kills} kills)' if r.kills else ''):<36}{r.seconds:>8.2f}"
              f"{_fmt(r.redis_cpu, '.2f', 12)}{_fmt(r.per_task, '.1f', 10)}"
              f"{_fmt(fcalls, '.2f', 11)}{log}{_fmt(r.raft_entries, '.0f', 8)}"
              f"{r.worker_rss / 2**20:>7.0f} MiB{r.redis_rss / 2**20:>6.0f} MiB"
              f"{r.redis_mem / 2**20:>6.0f} MiB")

    def get(mode: str, queue: str, where: str) -> JobRun | None:
        return best.get(f"{mode} {queue} {where}")

    for mode in modes:
        one, raft = get(mode, "lease", "1-Redis"), get(mode, "lease", "RedisRaft")
        if one and raft:
            cpu = (f", {raft.redis_cpu / one.redis_cpu:.2f}x Redis CPU (3 nodes / 1)"
                   if one.redis_cpu > 0 else "")
            print(f"RedisRaft / one Redis, {mode}, lease queue: {raft.seconds / one.seconds:.2f}x"
                  f" wall{cpu}")
    if "atomic" in modes and "shuffle" in modes:
        parts = []
        for queue, where in (("stream", "1-Redis"), ("lease", "1-Redis"), ("lease", "RedisRaft")):
            a, s = get("atomic", queue, where), get("shuffle", queue, where)
            if a and s:
                cpu = (f", Redis CPU {s.redis_cpu / a.redis_cpu:.2f}x"
                       if a.redis_cpu > 0 else "")
                parts.append(f"{queue} {where} {s.seconds / a.seconds:.2f}x wall{cpu}")
        if parts:
            print("shuffle / atomic: " + "; ".join(parts))


def queues(args: argparse.Namespace) -> int:
    """Each commit mode on the stream and the lease queue of one Redis and on the lease queue
    of RedisRaft, alternated in each round; then Raft under node kills; failover times."""
    from .. import shuffle
    from ..embedded import RedisServer
    from .raft import RaftCluster, RaftUnavailable, find_binaries

    modes = _names(args.modes, QUEUE_MODES, "mode")
    data, spec = corpus_of(args, "2000x4KiB", legacy_per_file=True)
    reduces = args.reduces or shuffle.default_reduces(args.workers)
    binaries = None
    if args.no_raft:
        print("(no RedisRaft runs: --no-raft)")
    else:
        try:
            binaries = find_binaries()
        except RaftUnavailable as e:
            print(f"(no RedisRaft runs: {e})")

    def job(label: str, mode: str, target: _Target, kind: str, nemesis=None) -> JobRun:
        return _one_job(label, mode, target, data, kind, args.workers, args.chunk_size,
                        reduces, nemesis, pack_size=args.pack_size)

    runs: list[JobRun] = []
    failover: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        def raft_cluster() -> RaftCluster:
            return RaftCluster(3, directory=tempfile.mkdtemp(dir=tmp), binaries=binaries)

        for _ in range(args.repeat):
            for mode in modes:
                for kind in ("stream", "lease"):
                    with RedisServer() as server:
                        runs.append(job(f"{mode} {kind} 1-Redis", mode, _single(server), kind))
                if binaries:
                    with raft_cluster() as cluster:
                        runs.append(job(f"{mode} lease RedisRaft", mode, _raft(cluster),
                                        "lease"))
        if binaries:
            for every in args.kill_every:
                for mode in modes:
                    with raft_cluster() as cluster:
                        runs.append(job(f"{mode} lease RedisRaft kill/{every:g}s", mode,
                                        _raft(cluster), "lease", _raft_nemesis(cluster, every)))
            if args.failovers:
                with raft_cluster() as cluster:
                    failover = [_failover_seconds(cluster) for _ in range(args.failovers)]
    firsts = {r.mode: r for r in reversed(runs)}
    tasks = "; ".join(f"{m} {r.tasks - r.reduces} map(s)" + (f" + {r.reduces} reduces"
                                                              if r.reduces else "")
                      for m, r in sorted(firsts.items()))
    polls = sorted({f"{r.poll_cmds:.0f}" for r in runs if not math.isnan(r.poll_cmds)})
    print(f"corpus: {data} ({spec.describe()})\n{args.workers} workers, {os.cpu_count()} CPUs; "
          f"each row one job on a fresh Redis (best of {args.repeat} by wall time); tasks per "
          f"job: {tasks}")
    for line in (
            "Redis CPU s: used_cpu_user + used_cpu_sys (INFO cpu), submit to done, summed over "
            "the nodes",
            "cmds/task: INFO commandstats calls (on the leader), submit to done, / tasks: the "
            "commands run inside Functions count too (atomic: a ZINCRBY per word of a task); "
            "not counted: the bench's INFO, RedisRaft's own RAFT*, the waiting client's "
            f"progress polls (every 20 ms, {'/'.join(polls) or '?'} commands each, measured)",
            "Raft log KiB: growth of the leader's log (INFO raft raft_file_size = raft.db; * a "
            "snapshot compacted it meanwhile: a lower bound); entries: raft_current_index growth",
            "worker RSS: VmHWM of the largest worker (forked from this bench process, RSS <= "
            f"{max(r.forked_rss for r in runs) / 2**20:.0f} MiB at the fork: the pages a worker "
            "still shares with it count in its RSS); Redis RSS: VmHWM of the largest Redis "
            "process; Redis mem: largest used_memory_peak"):
        print("  " + line)
    _print_queue_runs(runs, modes)
    if failover:
        print(f"failover seen by a client after SIGKILL of the leader: "
              f"{', '.join(f'{f:.2f}' for f in failover)} s")
    base = runs[0]
    different = [r.label for r in runs if r.digest != base.digest]
    if different:
        print(f"count tables: DIFFERENT from {base.label}'s: {', '.join(different)}")
    else:
        print(f"count tables: all identical ({len(runs)} jobs, {base.words:,} words)")
    return 1 if different else 0


def _raft_nemesis(cluster, every: float):
    """Kill a random node every ``every`` s, start it again 1 s later."""
    def run(stop, kills) -> None:
        rng = random.Random(7)
        while not stop.wait(every):
            victim = rng.randrange(len(cluster.nodes))
            cluster.kill(victim)
            kills[0] += 1
            if stop.wait(1.0):
                cluster.start(victim)
                return
            cluster.start(victim)
    return run


def _failover_seconds(cluster, connection=None) -> float:
    """SIGKILL the leader; seconds until a write through our Connection succeeds again.
    ``connection``: the Connection class to time (another version of it, to compare)."""
    from ..connection import Connection
    from ..settings import Settings

    conn = (connection or Connection)(Settings.from_env({}, redis_url=cluster.url,
                                                        redis_password=cluster.password))
    try:
        conn.call(lambda r: r.set("wc:bench:failover", 0))
        leader = cluster.leader()
        cluster.kill(leader)
        started = time.perf_counter()
        conn.call(lambda r: r.set("wc:bench:failover", 1))
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    cluster.start(leader)
    cluster.wait_ready()
    return seconds


def _raft_election_seconds(cluster) -> float:
    """The bare cluster's failover, for comparison: SIGKILL the leader; seconds until one of
    the other nodes accepts a write (a plain client asking each in turn, no backoff)."""
    import redis

    leader = cluster.leader()
    cluster.kill(leader)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < 60:
            for node in cluster.nodes:
                if not node.alive:
                    continue
                client = cluster.client(node.index, timeout=1.0)
                try:
                    if client.set("wc:bench:election", 1):
                        return time.perf_counter() - started
                except redis.exceptions.RedisError:
                    pass
                finally:
                    client.close()
            time.sleep(0.01)
        raise TimeoutError("no node accepted a write within 60 s of the leader's kill")
    finally:
        cluster.start(leader)
        cluster.wait_ready()


def failover(args: argparse.Namespace) -> int:
    """``bench queues --failover-only``: the failover a client sees after SIGKILL of the
    leader, next to the bare cluster's (a plain client polling every node), alternating on one
    cluster so both see the same machine."""
    from .raft import RaftCluster, RaftUnavailable, find_binaries

    try:
        binaries = find_binaries()
    except RaftUnavailable as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, RaftCluster(
            3, directory=os.path.join(tmp, "failover"), binaries=binaries) as cluster:
        for _ in range(args.failovers):
            ours.append(_failover_seconds(cluster))
            bare.append(_raft_election_seconds(cluster))

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    def show(label: str, values: list[float]) -> str:
        return (f"{label:<34}{median(values):>8.2f}{min(values):>8.2f}{max(values):>8.2f}  "
                + " ".join(f"{v:.2f}" for v in values))
    print(f"failover after SIGKILL of the leader, {args.failovers} kills each, "
          f"{os.cpu_count()} CPUs (seconds)")
    print(f"{'':<34}{'median':>8}{'min':>8}{'max':>8}  each")
    print(show("wordcount client (Connection)", ours))
    print(show("bare cluster (any node accepts)", bare))
    print(f"client / bare (medians): {median(ours) / median(bare):.2f}")
    return 0


def _corpus_args(p: argparse.ArgumentParser, default: str, size_help: str) -> None:
    p.add_argument("--corpus", metavar="SPEC",
                   help=f"the corpus: <files>x<size> (8x32MiB, 10000x1KiB, 2000x4KiB, ...), "
                        f"skew (512 MiB: 8 files + one 10x as big) or distinct (~63 MB of "
                        f"10-letter words, 2 M distinct); default {default}; generated once "
                        f"under .cache/")
    p.add_argument("--size", type=argtypes.size, metavar="BYTES", help=size_help)
    p.add_argument("--files", type=argtypes.positive_int,
                   help="another file count (the corpus's total size kept)")
    p.add_argument("--distinct", type=argtypes.positive_int, metavar="N",
                   help="high-cardinality text: 10-letter words from a vocabulary of N, each "
                        "at least once (the distinct preset: 2,000,000)")
    p.add_argument("--zipf", type=argtypes.float_in(0, 10), metavar="S",
                   help="with --distinct: the other words drawn by Zipf(S) (default 0: "
                        "uniformly)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=argtypes.workers, default=2)
    p.add_argument("--repeat", type=argtypes.positive_int, default=1)
    p.add_argument("--chunk-size", type=argtypes.positive_size, default=64 << 20)
    p.add_argument("--dir", help="corpus directory (default .cache/corpus-<layout>-seed<N>, "
                                 "reused)")


def add_parser(sub) -> None:
    total = "the corpus's total bytes, its layout kept (e.g. 2MiB for a quick run)"
    p = sub.add_parser("bench", help="benchmarks printing side-by-side ratios")
    kinds = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    t = kinds.add_parser("tokenizer", help="naive reference vs serial vs threads vs processes")
    _corpus_args(t, "8x32MiB", total)
    t.set_defaults(handler=run)
    d = kinds.add_parser("distributed", help="wordcount run (Redis) in each commit mode vs the "
                                             "serial and processes engines")
    _corpus_args(d, "8x32MiB", total)
    d.add_argument("--variants", default="atomic,shuffle",
                   help="comma-separated commit modes of `run`: atomic, shuffle, per-word "
                        "(default atomic,shuffle)")
    d.add_argument("--reduces", type=argtypes.reduces, metavar="R",
                   help="the shuffle's reduce tasks (default run's: 2 per worker)")
    d.add_argument("--pack-size", type=argtypes.size, metavar="BYTES",
                   help="run's --pack-size (default run's)")
    d.set_defaults(handler=run)
    q = kinds.add_parser("queues", help="each commit mode on the stream and lease queue of one "
                                        "Redis, and on RedisRaft: time, Redis CPU, commands "
                                        "per task, Raft log, peak RSS")
    _corpus_args(q, "2000x4KiB", total + "; without --corpus, as before: --files N --size S "
                                         "are N files of S bytes each")
    q.add_argument("--modes", default="atomic,shuffle",
                   help="comma-separated commit modes: atomic, shuffle (default both)")
    q.add_argument("--reduces", type=argtypes.reduces, metavar="R",
                   help="the shuffle's reduce tasks (default 2 per worker)")
    q.add_argument("--no-raft", action="store_true", help="no RedisRaft runs")
    q.add_argument("--kill-every", type=float, nargs="*", default=[5.0, 10.0], metavar="S",
                   help="Raft runs with a node killed every S seconds, per mode (default 5 10)")
    q.add_argument("--failovers", type=argtypes.non_negative_int, default=3,
                   help="leader kills to time")
    q.add_argument("--pack-size", type=argtypes.size, metavar="BYTES",
                   help="the jobs' --pack-size (default: submit's; 0: a task per file)")
    q.add_argument("--failover-only", action="store_true",
                   help="only time failovers (--failovers leader kills), next to the bare "
                        "cluster's")
    q.set_defaults(handler=run)
    from . import history_bench
    history_bench.add_parser(kinds)


def run(args: argparse.Namespace) -> int:
    if args.bench == "queues" and args.failover_only:
        return failover(args)
    return {"tokenizer": tokenizer, "distributed": distributed, "queues": queues}[args.bench](
        args)
