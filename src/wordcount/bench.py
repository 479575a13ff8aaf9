"""Benchmarks that print ratios measured side by side in one run (never timed assertions).

``wordcount bench tokenizer``: the naive reference, our serial engine, threads and processes on
the same generated ASCII corpus; MB/s, ratios, peak memory, and whether every count table is
byte-identical to the reference's.

``wordcount bench distributed``: ``wordcount run`` (private Redis + N worker processes; atomic
or the lab's per-word commits) against the processes engine with N workers, same corpus.
``wordcount bench queues``: one job on the stream queue and on the lease queue of a single
Redis, and on the lease queue of a 3-node RedisRaft cluster (when its binaries are there), with
Redis CPU per job; then Raft with a node killed every K seconds, and the failover time a client
sees after the leader is killed. ``--failover-only``: just the failover times, next to the bare
cluster's (a plain client polling every node until one accepts a write).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from . import argtypes, corpus

# The Redis side (redis, client, connection, embedded, raft) is imported inside the benchmarks
# that use it: this module is imported whenever the CLI builds its parser.


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
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wordcount", *argv, "--json",
                             "--counts-out", counts_path], stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {label} failed with exit status {proc.returncode}")
    doc = json.loads(out)
    return Measurement(label, seconds, usage.ru_maxrss * 1024, counts_path, doc["bytes"])


def ensure_corpus(directory: str, size: int, files: int, seed: int) -> str:
    marker = os.path.join(directory, f".complete-{files}x{size // files}-{seed}")
    if not os.path.exists(marker):
        corpus.generate(directory, files, size // files, seed=seed)
        open(marker, "w").close()
    return directory


def print_table(rows: list[Measurement], baseline: Measurement, serial: Measurement | None
                ) -> bool:
    identical_all = True
    print(f"{'engine':<22}{'seconds':>9}{'MB/s':>9}{'x naive':>9}{'x serial':>10}"
          f"{'peak RSS':>11}  counts")
    for m in rows:
        same = filecmp.cmp(m.counts_path, baseline.counts_path, shallow=False)
        identical_all &= same
        vs_serial = f"{serial.seconds / m.seconds:>10.2f}" if serial else f"{'':>10}"
        print(f"{m.label:<22}{m.seconds:>9.2f}{m.mb_s:>9.1f}"
              f"{baseline.seconds / m.seconds:>9.2f}{vs_serial}"
              f"{m.peak_rss / 2**20:>8.0f} MiB  {'identical' if same else 'DIFFERENT'}")
    return identical_all


def tokenizer(args: argparse.Namespace) -> int:
    data = ensure_corpus(args.dir or os.path.join(".cache", f"bench-{args.size}"), args.size,
                         args.files, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        def out(name: str) -> str:
            return os.path.join(tmp, f"{name}.tsv")

        plan = [
            ("naive reference", ["count", data, "--engine", "reference"]),
            ("serial", ["count", data, "--engine", "serial"]),
            (f"threads x{args.workers}",
             ["count", data, "--engine", "threads", "--workers", str(args.workers)]),
            (f"processes x{args.workers}",
             ["count", data, "--engine", "processes", "--workers", str(args.workers)]),
        ]
        best: dict[str, Measurement] = {}
        for _ in range(args.repeat):
            for label, argv in plan:
                m = run_measured(label, argv + ["--chunk-size", str(args.chunk_size)],
                                 out(label.split()[0]))
                if label not in best or m.seconds < best[label].seconds:
                    best[label] = m
        rows = [best[label] for label, _ in plan]
        print(f"corpus: {data} ({rows[0].nbytes / 2**20:.0f} MiB, {args.files} files), "
              f"best of {args.repeat}, {os.cpu_count()} CPUs")
        ok = print_table(rows, rows[0], rows[1])
    return 0 if ok else 1


def distributed(args: argparse.Namespace) -> int:
    """The Redis engine (``wordcount run``: private redis-server + N worker processes) against
    the local processes engine with the same number of workers, on the same corpus."""
    data = ensure_corpus(args.dir or os.path.join(".cache", f"bench-{args.size}"), args.size,
                         args.files, args.seed)
    n = str(args.workers)
    chunk = ["--chunk-size", str(args.chunk_size)]
    plan = [("processes", ["count", data, "--engine", "processes", "--workers", n])]
    for variant in args.variants.split(","):
        extra = {"atomic": [], "per-word": ["--commit", "per-word"]}.get(variant)
        if extra is None:
            raise SystemExit(f"bench: unknown variant {variant!r} (atomic, per-word)")
        plan.append((f"run {variant}", ["run", data, "--workers", n, *extra]))
    with tempfile.TemporaryDirectory() as tmp:
        best: dict[str, Measurement] = {}
        for _ in range(args.repeat):
            for label, argv in plan:
                m = run_measured(f"{label} x{n}", argv + chunk,
                                 os.path.join(tmp, label.replace(" ", "-") + ".tsv"))
                if label not in best or m.seconds < best[label].seconds:
                    best[label] = m
        rows = [best[label] for label, _ in plan]
        print(f"corpus: {data} ({rows[0].nbytes / 2**20:.0f} MiB, {args.files} files), "
              f"best of {args.repeat}, {os.cpu_count()} CPUs; 'x naive' column = x processes")
        ok = print_table(rows, rows[0], None)
    return 0 if ok else 1


@dataclass
class JobRun:
    label: str
    seconds: float
    redis_cpu: float  # CPU seconds of every Redis process (all nodes)
    kills: int = 0
    counts: dict | None = None  # the full count table


def _redis_cpu(clients) -> float:
    total = 0.0
    for c in clients:
        info = c.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def _one_job(label: str, env: dict, url: str, password: str, data: str, kind: str,
             workers: int, chunk: int, admin_clients, nemesis=None,
             pack_size: int | None = None) -> JobRun:
    """Submit one job to a running Redis (or cluster), run it with N worker processes, and
    measure it (wall time from submit to finished; Redis CPU of the job)."""
    from . import client
    from .connection import Connection
    from .embedded import WorkerPool
    from .settings import Settings

    conn = Connection(Settings.from_env({}, redis_url=url, redis_password=password))
    conn.ensure_functions()
    job = client.plan_job([data], chunk, name="bench-" + "".join(
        ch if ch.isalnum() else "-" for ch in label), pack_size=pack_size)
    job.queue = kind
    pool = WorkerPool(workers, env, log_path=os.devnull)
    time.sleep(0.5)  # the workers are up and idle: their start is not the job's time
    cpu0 = _redis_cpu(admin_clients())
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
        waited = client.wait(conn, job, quiet=True, poll_s=0.02, on_poll=pool.tend)
        seconds = time.perf_counter() - started
        stop.set()
        if thread:
            thread.join(60)
        result, _ = client.result(conn, job, seconds, waited)
    finally:
        stop.set()
        pool.stop()
    cpu = _redis_cpu(admin_clients()) - cpu0 if not nemesis else float("nan")
    return JobRun(label, seconds, cpu, kills[0], dict(result.counts))


def queues(args: argparse.Namespace) -> int:
    """Stream vs lease queue on one Redis, lease on RedisRaft; Raft under node kills."""
    import redis

    from .embedded import RedisServer
    from .raft import RaftCluster, RaftUnavailable, find_binaries

    data = ensure_corpus(args.dir or os.path.join(".cache", f"bench-q-{args.files}x{args.size}"),
                         args.size * args.files, args.files, args.seed)
    runs: list[JobRun] = []
    with RedisServer() as server:
        admin = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
        for _ in range(args.repeat):
            for kind in ("stream", "lease"):
                runs.append(_one_job(f"{kind} single", server.env(), server.url,
                                     server.password, data, kind, args.workers,
                                     args.chunk_size, lambda: [admin],
                                     pack_size=args.pack_size))
                admin.flushall()
    try:
        binaries = find_binaries()
    except RaftUnavailable as e:
        binaries = None
        print(f"(no RedisRaft runs: {e})")
    failover: list[float] = []
    if binaries:
        with tempfile.TemporaryDirectory() as tmp:
            for i, every in enumerate([0.0] * args.repeat + list(args.kill_every)):
                with RaftCluster(3, directory=os.path.join(tmp, f"c{i}"),
                                 binaries=binaries) as cluster:
                    label = "lease raft" + (f" kill/{every:g}s" if every else "")
                    runs.append(_one_job(label, cluster.env(), cluster.url, cluster.password,
                                         data, "lease", args.workers, args.chunk_size,
                                         lambda c=cluster: [c.client(j) for j in range(3)],
                                         _raft_nemesis(cluster, every) if every else None,
                                         pack_size=args.pack_size))
            with RaftCluster(3, directory=os.path.join(tmp, "failover"),
                             binaries=binaries) as cluster:
                failover = [_failover_seconds(cluster) for _ in range(args.failovers)]
    base = next(r for r in runs if r.label == "stream single")
    same = all(r.counts == base.counts for r in runs)
    print(f"corpus: {data} ({args.files} files x {args.size:,} bytes), {args.workers} "
          f"workers, {os.cpu_count()} CPUs; each row one job (best of {args.repeat})")
    print(f"{'run':<22}{'seconds':>9}{'x stream':>10}{'Redis CPU s':>13}{'kills':>7}")
    best: dict[str, JobRun] = {}
    for r in runs:
        if r.label not in best or r.seconds < best[r.label].seconds:
            best[r.label] = r
    for r in best.values():
        print(f"{r.label:<22}{r.seconds:>9.2f}{r.seconds / best['stream single'].seconds:>10.2f}"
              f"{r.redis_cpu:>13.2f}{r.kills:>7}")
    if failover:
        print(f"failover seen by a client after SIGKILL of the leader: "
              f"{', '.join(f'{f:.2f}' for f in failover)} s")
    print("count tables: " + ("all identical" if same else "DIFFERENT"))
    return 0 if same else 1


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
    from .connection import Connection
    from .settings import Settings

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


def _corpus_args(p: argparse.ArgumentParser, size: int) -> None:
    p.add_argument("--size", type=argtypes.size, default=size, help="corpus bytes")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--chunk-size", type=argtypes.size, default=64 << 20)
    p.add_argument("--dir", help="corpus directory (default .cache/bench-SIZE, reused)")


def add_parser(sub) -> None:

    p = sub.add_parser("bench", help="benchmarks printing side-by-side ratios")
    kinds = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    t = kinds.add_parser("tokenizer", help="naive reference vs serial vs threads vs processes")
    _corpus_args(t, 256 << 20)
    t.set_defaults(handler=run)
    d = kinds.add_parser("distributed", help="wordcount run (Redis) vs the processes engine")
    _corpus_args(d, 256 << 20)
    d.add_argument("--variants", default="atomic",
                   help="comma-separated run variants: atomic, per-word (default atomic)")
    d.set_defaults(handler=run)
    q = kinds.add_parser("queues", help="stream vs lease queue on one Redis, and on RedisRaft "
                                        "(here --size is per file: default 2000 x 4 KiB)")
    _corpus_args(q, 4 << 10)
    q.set_defaults(files=2000)
    q.add_argument("--kill-every", type=float, nargs="*", default=[5.0, 10.0], metavar="S",
                   help="Raft runs with a node killed every S seconds (default 5 10)")
    q.add_argument("--failovers", type=int, default=3, help="leader kills to time")
    q.add_argument("--pack-size", type=argtypes.size, metavar="BYTES",
                   help="the jobs' --pack-size (default: submit's; 0: a task per file)")
    q.add_argument("--failover-only", action="store_true",
                   help="only time failovers (--failovers leader kills), next to the bare "
                        "cluster's")
    q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.bench == "queues" and args.failover_only:
        return failover(args)
    return {"tokenizer": tokenizer, "distributed": distributed, "queues": queues}[args.bench](
        args)
