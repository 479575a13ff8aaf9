"""The peers side by side (E24): ours against GNU ``tr | sort | uniq -c``, a Dask bag and
PySpark ``local[2]``, on the same corpus and the same 2 cores, each peer in its idiomatic and
its tuned form.

Every peer counts by our word rule (lowercase, then maximal runs of ``[a-z0-9]``: the same as
``str.isalnum`` runs on the ASCII corpus) and runs as its own process (Dask and PySpark in the
separate venv ``make peers`` makes, ``.venv-peers`` or ``$WORDCOUNT_PEERS_VENV``), timed
around the whole command, start-up included, plus the conversion of its ``(word, count)``
output to our table (``apps.get("wordcount").write``: the distinct words only). The runner then
compares that table byte for byte with the serial engine's, as for ours: a peer with another
answer is a FAILED run. A peer that is not installed is skipped (``Variant.requires``: its
variants do not run, and the JSON's ``skipped_variants`` and the report say why)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .core import Context, Experiment, Variant, find, secs

MiB = 1 << 20
FILES = 8
WORKERS = 2  # the cores each side gets (this machine has 2)
VENV_ENV = "WORDCOUNT_PEERS_VENV"
TIMEOUT_S = 3600

OURS = {"ours: serial": ["--engine", "serial"],
        "ours: processes ×2": ["--engine", "processes", "--workers", str(WORKERS)],
        "ours: run ×2": None}  # `run --workers 2`
# (no "|" in a label: the report's markdown table would split the column)
GNU, DASK, SPARK = "GNU tr+sort+uniq -c", "dask bag", f"pyspark local[{WORKERS}]"
TUNED = " (tuned)"
GOALS = {DASK: 6.0, SPARK: 10.0}  # ours at least this many times faster than the tuned peer

# (conversion seconds of the peer runs, by workdir: the setup text reports the largest)
_CONVERT: dict[str, float] = {}


# -- where the peers are -----------------------------------------------------------------------

def venv() -> Path:
    """The peers' venv: ``$WORDCOUNT_PEERS_VENV``, else ``.venv-peers`` at the repo root (the
    current directory when the package is not run from a checkout)."""
    if env := os.environ.get(VENV_ENV):
        return Path(env)
    root = Path(__file__).resolve().parents[4]
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / ".venv-peers"


_PROBE = """
import json
from importlib import metadata
found = {}
for name in ("dask", "pyspark"):
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


@functools.cache
def _probe(python: str) -> dict[str, str | None]:
    """The versions of dask and pyspark installed for ``python`` ({} without it)."""
    if not Path(python).exists():
        return {}
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                             timeout=120).stdout
        return json.loads(out)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
        return {}


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


@functools.cache
def _version(argv: tuple[str, ...]) -> str:
    """The first line ``argv`` prints (stdout, else stderr), or "unknown"."""
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
        return ((p.stdout or p.stderr).strip().splitlines() or ["unknown"])[0]
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def status(peer: str) -> tuple[str | None, str | None]:
    """(the peer's version, None) when it can run here, else (None, why not)."""
    if peer == GNU:
        missing = [t for t in ("bash", "cat", "tr", "sort", "uniq") if not shutil.which(t)]
        if missing:
            return None, f"{', '.join(missing)} not on PATH"
        version = _version(("sort", "--version"))
        return version.replace("sort (GNU coreutils)", "GNU coreutils"), None
    python = venv() / "bin" / "python"
    name = "dask" if peer == DASK else "pyspark"
    version = _probe(str(python)).get(name)
    if version is None:
        return None, f"not installed in {venv()} (make peers)"
    if peer == SPARK and _java() is None:
        return None, "no java on PATH or in $JAVA_HOME (make peers installs a JRE)"
    return version, None


# -- how each peer runs ------------------------------------------------------------------------

def _files(corpus: Path) -> list[str]:
    return [str(corpus)] if corpus.is_file() else sorted(
        str(p) for p in corpus.rglob("*") if p.is_file())


# (each file then a newline, so a file's last word never runs into the next file's first:
# the word rule is per file)
CAT = 'for f; do cat -- "$f" || exit; echo; done'
GNU_IDIOMATIC = "tr -cs 'A-Za-z0-9' '\\n' | tr A-Z a-z | sort | uniq -c"
GNU_TUNED = f"tr A-Z a-z | tr -cs 'a-z0-9' '\\n' | sort -S 1G --parallel={WORKERS} | uniq -c"


def _parse_uniq(path: Path) -> dict[str, int]:
    """``uniq -c``'s ``   COUNT WORD`` lines; the empty word (the newline ``tr`` makes of
    leading punctuation) dropped."""
    table: dict[str, int] = {}
    get = table.get
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            n, _, word = line.strip().partition(" ")
            if word:
                table[word] = get(word, 0) + int(n)
    return table


def _parse_tsv(path: Path) -> dict[str, int]:
    table: dict[str, int] = {}
    get = table.get
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            word, _, n = line.rstrip("\n").rpartition("\t")
            table[word] = get(word, 0) + int(n)
    return table


DASK_SCRIPT = r'''
import collections, re, sys
import dask.bag as db

pattern, out, mode, workers, blocksize = sys.argv[1:6]
if mode == "idiomatic":
    word = re.compile(r"[a-z0-9]+")
    pairs = (db.read_text(pattern).map(lambda line: word.findall(line.lower())).flatten()
             .frequencies().compute())
else:
    # letters lowercased, digits kept, every other byte a space (ASCII input)
    table = bytes(c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32
                  for c in range(256))

    def count(lines):
        return collections.Counter("".join(lines).encode().translate(table).split())

    def merge(counters):
        total = collections.Counter()
        for c in counters:
            total.update(c)
        return total

    total = (db.read_text(pattern, blocksize=int(blocksize)).reduction(count, merge)
             .compute(scheduler="processes", num_workers=int(workers)))
    pairs = ((w.decode(), n) for w, n in total.items())
with open(out, "w", encoding="utf-8") as f:
    f.writelines(f"{w}\t{n}\n" for w, n in pairs)
'''

SPARK_SCRIPT = r'''
import re, sys
from pyspark.sql import SparkSession

corpus, out, mode, cores = sys.argv[1:5]
builder = SparkSession.builder.master(f"local[{cores}]").appName("wordcount-e24")
if mode == "tuned":
    builder = (builder.config("spark.driver.memory", "2g")
               .config("spark.sql.shuffle.partitions", cores)
               .config("spark.ui.enabled", "false"))
spark = builder.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
if mode == "idiomatic":
    word = re.compile(r"[a-z0-9]+")
    pairs = (spark.sparkContext.textFile(corpus)
             .flatMap(lambda line: word.findall(line.lower()))
             .map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).collect())
else:
    from pyspark.sql import functions as F
    words = F.explode(F.split(F.lower(F.col("value")), "[^a-z0-9]+")).alias("word")
    pairs = (spark.read.text(corpus).select(words).where(F.col("word") != "")
             .groupBy("word").count().collect())
with open(out, "w", encoding="utf-8") as f:
    f.writelines(f"{w}\t{n}\n" for w, n in pairs)
spark.stop()
'''


def _timed(argv: list[str], counts: Path, out: Path, parse, env: dict[str, str] | None = None
           ) -> dict[str, Any]:
    """Run a peer's command (in the counts' directory), then turn its output into our table
    at ``counts``; timed around both."""
    from ... import apps

    app = apps.get("wordcount")
    try:  # what the table writer imports on first use, imported before the clock starts
        import pyarrow.compute  # noqa: F401
        import pyarrow.csv  # noqa: F401
    except ImportError:
        pass
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          cwd=counts.parent, timeout=TIMEOUT_S)
    peer = time.perf_counter()
    if proc.returncode != 0 or not out.exists():
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{Path(argv[0]).name} exited {proc.returncode}: {err[-400:]}")
    app.write(parse(out), str(counts))
    done = time.perf_counter()
    key = str(counts.parent)
    _CONVERT[key] = max(_CONVERT.get(key, 0.0), done - peer)
    out.unlink(missing_ok=True)
    return {"seconds": done - started, "exit": 0, "peer_seconds": peer - started,
            "convert_seconds": done - peer}


def gnu(corpus: Path, counts: Path, tuned: bool = False) -> dict[str, Any]:
    """The coreutils pipeline over the corpus's files, its table written to ``counts``."""
    out = counts.with_name("peer-gnu.txt")
    script = (f"set -o pipefail; out=$1; shift; {'export LC_ALL=C; ' if tuned else ''}"
              f"{{ {CAT}; }} | {GNU_TUNED if tuned else GNU_IDIOMATIC} > \"$out\"")
    return _timed(["bash", "-c", script, "bash", str(out), *_files(corpus)], counts, out,
                  _parse_uniq)


def dask(corpus: Path, counts: Path, tuned: bool = False) -> dict[str, Any]:
    """A Dask bag over the corpus's files (a glob), its table written to ``counts``."""
    out = counts.with_name("peer-dask.tsv")
    files = _files(corpus)
    total = sum(os.path.getsize(f) for f in files)
    blocksize = max(MiB, -(-total // (4 * WORKERS)))  # 4 partitions a worker (or a file each)
    pattern = str(corpus / "*") if corpus.is_dir() else str(corpus)
    return _timed([str(venv() / "bin" / "python"), "-c", DASK_SCRIPT, pattern, str(out),
                   "tuned" if tuned else "idiomatic", str(WORKERS), str(blocksize)],
                  counts, out, _parse_tsv)


def spark(corpus: Path, counts: Path, tuned: bool = False) -> dict[str, Any]:
    """PySpark ``local[2]`` over the corpus directory, its table written to ``counts``."""
    out = counts.with_name("peer-spark.tsv")
    python = str(venv() / "bin" / "python")
    env = {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
           "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")}
    return _timed([python, "-c", SPARK_SCRIPT, str(corpus.resolve()), str(out),
                   "tuned" if tuned else "idiomatic", str(WORKERS)], counts, out, _parse_tsv,
                  env=env)


RUNNERS = {GNU: gnu, DASK: dask, SPARK: spark}


def _peer_variant(peer: str, tuned: bool) -> Variant:
    run = RUNNERS[peer]
    return Variant(peer + (TUNED if tuned else ""),
                   call=lambda c, x, out: run(c, out, tuned=tuned),
                   requires=lambda: status(peer)[1])


def _ours(label: str, flags: list[str] | None) -> Variant:
    if flags is None:
        return Variant(label, lambda c, x: ["run", str(c), "--workers", str(WORKERS)])
    return Variant(label, lambda c, x: ["count", str(c), *flags])


# -- E24 ---------------------------------------------------------------------------------------

def _size(ctx: Context) -> int:
    return ctx.size(64 * MiB, 1 * MiB)


def _corpus(ctx: Context, x: Any) -> Path:
    from .. import corpus as corpora

    per = max(1, x // FILES)
    return ctx.corpus(f"peers-{FILES}x{per}-s24",
                      lambda d: corpora.generate(d, FILES, per, seed=24))


def _setup(ctx: Context) -> str:
    from ..corpus import human

    parts = [f"{FILES} synthetic files of {human(_size(ctx) // FILES)} each (ASCII prose), "
             f"{WORKERS} cores each side. Ours: `count --engine serial`, `count --engine "
             f"processes --workers {WORKERS}`, `run --workers {WORKERS}`. Each peer is one "
             "process timed around the whole command, start-up included (the JVM for "
             "PySpark, spawned worker processes for Dask), and the conversion of its "
             "(word, count) output to our table (the distinct words only"
             + (f"; at most {_CONVERT[str(ctx.workdir)]:.2f} s here"
                if str(ctx.workdir) in _CONVERT else "") + "); every peer counts by our word "
             "rule (lowercase, runs of [a-z0-9]: the same as isalnum runs on ASCII) and its "
             "table is checked exact like ours."]
    for peer, how in (
            (GNU, f"the files (a newline after each) into idiomatic `{GNU_IDIOMATIC}` in "
                  "the caller's locale (here "
                  f"{os.environ.get('LC_ALL') or os.environ.get('LANG') or 'C, none set'}); "
                  f"tuned `{GNU_TUNED}` with LC_ALL=C"),
            (DASK, "idiomatic `read_text(glob).map(findall(line.lower())).flatten()"
                   ".frequencies()` (the default scheduler); tuned: `read_text(blocksize≈"
                   f"total/{4 * WORKERS})` and one `collections.Counter` a partition "
                   "(`bytes.translate` + `split`) merged by `reduction`, the processes "
                   f"scheduler with {WORKERS} workers"),
            (SPARK, "idiomatic RDD `textFile.flatMap(findall(line.lower())).map((w, 1))"
                    ".reduceByKey(add)` (Python workers); tuned DataFrame `split(lower(value), "
                    "'[^a-z0-9]+')` → `explode` → `groupBy().count()` (all in the JVM), "
                    f"`spark.sql.shuffle.partitions={WORKERS}`, driver memory 2g, no UI"),
    ):
        version, why = status(peer)
        if why:  # (the report says which variants did not run here, and why)
            continue
        java = ""
        if peer == SPARK:
            found = re.search(r'version "([^"]+)"', _version((_java() or "java", "-version")))
            java = f" on Java {found[1] if found else '(version unknown)'}"
        parts.append(f"{peer} ({version}{java}): {how}.")
    return " ".join(parts).removesuffix(".")  # (the report adds its own)


def _times(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """a's median as a multiple of b's: "6.1×"; "n/a" without both."""
    return f"{a['median'] / b['median']:.1f}×" if a and b else "n/a"


def _answer(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    ours = [r for r in (find(s, v) for v in OURS) if r]
    if not ours:
        return "No exact run of ours: no answer."
    best = min(ours, key=lambda r: r["median"])
    run2 = find(s, "ours: run ×2")
    left_out = doc.get("skipped_variants", {})
    skipped = [p for p in (GNU, DASK, SPARK) if p in left_out]
    parts = []
    for peer in (GNU, DASK, SPARK):
        if peer in skipped:
            continue
        idiom, tuned = find(s, peer), find(s, peer + TUNED)
        text = (f"{peer} tuned {secs(tuned)} ({_times(tuned, best)} our time), idiomatic "
                f"{secs(idiom)} ({_times(idiom, best)})")
        if peer in GOALS:
            goal = GOALS[peer]
            met = ("n/a" if not tuned else
                   "met" if tuned["median"] >= goal * best["median"] else "not met")
            text += (f", the goal ours ≥ {goal:g}× faster than the tuned peer {met} (against "
                     f"`run ×2`: {_times(tuned, run2)})")
        parts.append(text)
    failed = sum(r["failed"] for r in s)
    return (f"On {doc['machine']['cores']} cores ours at its fastest ({best['variant']}) took "
            f"{secs(best)}; each peer's median, as a multiple of that: " + "; ".join(parts)
            + "." + ("".join(f" {p}: not run here, {left_out[p]}." for p in skipped))
            + (f" {failed} runs FAILED (a failed command, or a table other than the serial "
               "engine's) and are left out." if failed else
               " Every table that ran was the serial engine's, word for word."))


E24 = Experiment(
    "E24", "peers", "The peers on the same corpus and cores: GNU tr|sort|uniq -c, a Dask bag "
    f"and PySpark local[{WORKERS}], idiomatic and tuned, as multiples of our time",
    "corpus size (bytes)", lambda ctx: [_size(ctx)], _corpus,
    [*(_ours(label, flags) for label, flags in OURS.items()),
     *(_peer_variant(peer, tuned) for peer in (GNU, DASK, SPARK) for tuned in (False, True))],
    _answer, setup=_setup, requires=lambda ctx: status(GNU)[1])

PEER_EXPERIMENTS: tuple = (E24,)
