"""Benchmarks that print ratios measured side by side in one run (never timed assertions).

``wordcount bench tokenizer``: the naive reference, our serial engine, threads and processes on
the same generated ASCII corpus; MB/s, ratios, peak memory, and whether every count table is
byte-identical to the reference's.

``wordcount bench distributed``: ``wordcount run`` (private Redis + N worker processes; atomic
or the lab's per-word commits) against the processes engine with N workers, same corpus.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from . import corpus


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


def _corpus_args(p: argparse.ArgumentParser, size: int) -> None:
    from .cli import _size

    p.add_argument("--size", type=_size, default=size, help="corpus bytes")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--chunk-size", type=_size, default=64 << 20)
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


def run(args: argparse.Namespace) -> int:
    return {"tokenizer": tokenizer, "distributed": distributed}[args.bench](args)
