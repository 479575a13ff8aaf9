"""Variants on the compose cluster (docker-compose.yml): the job as `make up` runs it
(``scripts/cluster-job.sh``: Redis, N worker containers, the client container), on an
experiment's corpus, in a compose project of its own that is removed afterwards. For COST
on the cluster (E2) and the half-CPU straggler container (E8: the ``straggler`` profile's
``cpus: 0.5``).

Redis and the worker containers are started first (``up --wait``), then the job; a run's
``seconds`` is the **job's own time** as Redis saw it (its creation to its last commit, the
client's ``result.json``), not the containers' start and stop around it; the whole
command's time is kept as ``wall``. Each table is the client's ``counts.tsv``,
compared with the serial engine's like every other run's.

The variants need Docker and the images (``make images``); where either is missing (or
``WORDCOUNT_EXPERIMENTS_DOCKER=0`` turns them off) they are skipped with that reason
(``Variant.requires``), never failed.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .core import Variant

ROOT = Path(__file__).resolve().parents[4]  # the checkout: scripts/, docker-compose.yml
SCRIPT = ROOT / "scripts" / "cluster-job.sh"
SWITCH = "WORDCOUNT_EXPERIMENTS_DOCKER"  # "0": leave the compose variants out
IMAGES = ("wordcount/worker:latest", "wordcount/client:latest", "wordcount/redis:latest")


@functools.cache
def unavailable() -> str | None:
    """None when a compose job can run here, else why not."""
    if os.environ.get(SWITCH) == "0":
        return f"turned off ({SWITCH}=0)"
    if not SCRIPT.exists() or not (ROOT / "docker-compose.yml").exists():
        return f"the compose cluster's files are not here ({SCRIPT}): run from a checkout"
    if shutil.which("docker") is None:
        return "Docker is not installed"
    try:
        missing = [i for i in IMAGES if subprocess.run(
            ["docker", "image", "inspect", i], capture_output=True, timeout=30).returncode]
    except (OSError, subprocess.SubprocessError) as e:
        return f"Docker does not answer ({e})"
    if missing:
        return f"the cluster's images are not built ({', '.join(missing)}): run `make images`"
    return None


def job(corpus: Path, counts: Path, *, workers: int, straggler: bool = False,
        backups: bool = True, timeout: float = 900) -> dict[str, Any]:
    """One job on a compose project of its own: ``workers`` worker containers, plus the
    ``straggler`` profile's container (``cpus: 0.5``, full speed otherwise) when
    ``straggler``; backup tasks off with ``backups=False``. The table goes to ``counts``."""
    project = f"wcexp{os.getpid()}"
    results = counts.parent / "compose-results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "WORDCOUNT_DATA": str(corpus),
           "WORDCOUNT_RESULTS": str(results), "WORKERS": str(workers), "WORKER_ARGS": "",
           "COMPOSE_PROFILES": "straggler" if straggler else "", "STRAGGLER_SLOWDOWN": "1",
           "STRAGGLER_CPUS": "0.5", "WORDCOUNT_SPECULATE_FACTOR": "" if backups else "0",
           "SUBMIT_ARGS": "--chunk-size 4MiB"}
    started = time.monotonic()
    try:
        # the workers first (the script then leaves them be): the job's time is counting,
        # not the worker containers' start
        up = subprocess.run(["docker", "compose", "up", "--detach", "--wait", "--scale",
                             f"worker={workers}", "redis", "worker",
                             *(["straggler"] if straggler else [])], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
        if up.returncode:
            return {"seconds": time.monotonic() - started, "exit": up.returncode,
                    "stderr": up.stderr.strip()[-400:]}
        proc = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
        wall = time.monotonic() - started
    finally:
        subprocess.run(["docker", "compose", "--profile", "*", "down", "--volumes",
                        "--remove-orphans", "--timeout", "5"], env=env, cwd=ROOT,
                       capture_output=True, timeout=120)
    doc_path = results / "result.json"
    doc = json.loads(doc_path.read_text()) if doc_path.exists() else {}
    if (results / "counts.tsv").exists():
        shutil.copyfile(results / "counts.tsv", counts)
    return {"seconds": float(doc.get("seconds", wall)), "exit": proc.returncode,
            "wall": round(wall, 3), "stderr": proc.stderr.strip()[-400:],
            **{k: doc[k] for k in ("tasks", "stolen", "backups", "duplicates", "check")
               if k in doc}}


def variant(label: str, only=lambda x: True, **kw: Any) -> Variant:
    """A compose-cluster variant; ``kw`` for ``job``; ``workers`` may be "x" (the point)."""
    def call(corpus: Path, x: Any, counts: Path) -> dict[str, Any]:
        workers = x if kw.get("workers") == "x" else kw.get("workers", 2)
        return job(corpus, counts, **{**kw, "workers": workers})

    return Variant(label, call=call, only=only, requires=unavailable)
