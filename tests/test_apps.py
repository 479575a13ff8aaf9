"""The app seam and the apps on it: word count (the first app: its output unchanged), the
inverted index (compared in full with a sequential oracle on every engine, through the CLI and
real worker processes, under crashes), a user's own app named by import path, the app in the
plan identity, `wordcount apps` and `wordcount lookup`.

The 6.5840 MapReduce lab's test script is the model: each app's output compared byte for byte
with the sequential version's, final when the first worker exits, and a crash test."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wordcount import apps, client, engines
from wordcount.apps import index
from wordcount.exceptions import EXIT_OK, EXIT_USAGE
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.clirun import wc_bg

from .conftest import assert_counts_equal

ROOT = Path(__file__).resolve().parents[1]


def wc(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
       cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_wc(*args, env=env, timeout=timeout, cwd=cwd)


def make_docs(root: Path, n: int = 40, seed: int = 3) -> Path:
    """Documents of a shared vocabulary (so a word is in several), a big one split into byte
    ranges, non-ASCII words, a file name with a comma, a colon and a tab, nested folders."""
    import random

    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(60)] + ["Σίσυφος", "straße", "ÉCOLE", "cat", "Cat"]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        words = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 80)))
        (sub / f"doc{i:02}.txt").write_text(words + "\n", encoding="utf-8")
    (root / "odd, name:\there.txt").write_text("cat odd odd\n", encoding="utf-8")
    (root / "big.txt").write_text(" ".join(rng.choice(vocab) for _ in range(60_000)),
                                  encoding="utf-8")
    return root


def index_oracle(root: Path) -> Counter[str]:
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file())
    return index.oracle(paths, str(root))


def lab_tsv(counts: Counter[str]) -> str:
    """The index as the sequential indexer writes it (written out by hand here, not by the app
    under test): word, N, doc:count,... sorted; escapes as documented."""
    esc = str.maketrans({"%": "%25", "\t": "%09", "\n": "%0A", "\r": "%0D", ",": "%2C",
                         ":": "%3A"})
    by_word: dict[str, dict[str, int]] = {}
    for k, n in counts.items():
        word, doc = k.split("\t", 1)
        by_word.setdefault(word, {})[doc] = n
    return "".join(f"{w}\t{len(d)}\t" + ",".join(f"{doc.translate(esc)}:{d[doc]}"
                                                for doc in sorted(d)) + "\n"
                   for w, d in sorted(by_word.items()))


# -- the seam ---------------------------------------------------------------------------------

def test_apps_lists_the_named_apps_and_an_unknown_one_is_a_usage_error(tmp_path):
    out = wc("apps", "--json")
    assert out.returncode == EXIT_OK, out.stderr
    assert [a["app"] for a in json.loads(out.stdout)] == ["wordcount", "index", "pagerank",
                                                          "links"]
    (tmp_path / "a.txt").write_text("x\n")
    bad = wc("count", str(tmp_path), "--app", "nope")
    assert bad.returncode == EXIT_USAGE
    assert "no app named 'nope'" in bad.stderr
    broken = wc("run", str(tmp_path), "--app", "no_such_module:APP")
    assert broken.returncode == EXIT_USAGE and "cannot be loaded" in broken.stderr


def test_the_lecture_example_is_indexed_as_the_lecture_says(tmp_path):
    """doc 25: red cat, doc 26: big cat -> big: 26, cat: 25 26, red: 25."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "25").write_text("red cat\n")
    (tmp_path / "d" / "26").write_text("big cat\n")
    out = tmp_path / "index.tsv"
    run = wc("count", str(tmp_path / "d"), "--app", "index", "--counts-out", str(out))
    assert run.returncode == EXIT_OK, run.stderr
    assert out.read_text() == "big\t1\t26:1\ncat\t2\t25:1,26:1\nred\t1\t25:1\n"
    assert "-- 4 words, 3 distinct words, 2 files" in run.stdout
    as_json = tmp_path / "index.json"
    assert wc("count", str(tmp_path / "d"), "--app", "index", "--counts-out",
              str(as_json)).returncode == EXIT_OK
    assert json.loads(as_json.read_text()) == {"big": {"26": 1}, "cat": {"25": 1, "26": 1},
                                              "red": {"25": 1}}


def test_word_count_output_is_unchanged_by_the_seam(nasty_corpus, nasty_oracle, tmp_path):
    """The first app's table and TSV, on every engine, as before (the oracle's own TSV)."""
    from .conftest import tsv

    for engine in ("serial", "threads", "processes", "reference"):
        out = tmp_path / f"{engine}.tsv"
        run = wc("count", str(nasty_corpus), "--engine", engine, "--chunk-size", "50000",
                 "--counts-out", str(out))
        assert run.returncode == EXIT_OK, run.stderr
        assert out.read_text(encoding="utf-8") == tsv(nasty_oracle), engine


@pytest.mark.parametrize("engine", ["serial", "threads", "processes", "reference"])
def test_the_index_equals_its_oracle_on_every_local_engine(tmp_path, engine):
    docs = make_docs(tmp_path / "docs")
    got = engines.count_inputs([str(docs)], engine, 2, chunk_size=20_000, app_name="index")
    assert_counts_equal(got.counts, index_oracle(docs))


@settings(max_examples=40, deadline=None)
@given(files=st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\0", b" ")),
                      min_size=1, max_size=12),
       chunk=st.integers(8, 200), pack=st.sampled_from([0, 64, 4096]))
def test_a_planned_indexed_job_maps_every_range_and_pack_like_the_oracle(tmp_path_factory,
                                                                          files, chunk, pack):
    """What a worker does (byte ranges, packs of small files, each part its own document)
    against the oracle over whole files; bytes from any alphabet, invalid UTF-8 included."""
    root = tmp_path_factory.mktemp("hyp")
    for i, data in enumerate(files):
        (root / f"f{i}").write_bytes(data + "Σας ΣΑΣ".encode() * (i % 2))
    job = client.plan_job([str(root)], chunk, pack_size=pack, app="index")
    got: Counter[str] = Counter()
    app = apps.get("index")
    for t in job.tasks:
        if t.parts:
            counts, _ = engines.count_pack(t, lambda p: os.path.join(root, p), False,
                                           app=app)
        else:
            counts, _ = engines.count_checked(t, os.path.join(root, t.path), False, app=app)
        engines.merge_into(got, counts)
    assert_counts_equal(got, index_oracle(root))


def test_the_app_is_part_of_the_plan_identity(tmp_path):
    docs = make_docs(tmp_path / "docs", n=3)
    a = client.plan_job([str(docs)], 1 << 20)
    b = client.plan_job([str(docs)], 1 << 20, app="index")
    assert a.plan_id != b.plan_id and a.name != b.name
    assert client.plan_job([str(docs)], 1 << 20, app="index").plan_id == b.plan_id


# -- distributed: real redis-server, the CLI, worker processes ----------------------------------

def test_run_indexes_byte_for_byte_like_the_sequential_indexer(tmp_path):
    """`run --app index` (shuffle and atomic; ranges of a big file and packs of small ones)
    writes exactly the sequential indexer's TSV."""
    docs = make_docs(tmp_path / "docs")
    expected = lab_tsv(index_oracle(docs))
    for commit in ("shuffle", "atomic"):
        out = tmp_path / f"{commit}.tsv"
        run = wc("run", str(docs), "--app", "index", "--workers", "2", "--commit", commit,
                 "--chunk-size", "30000", "--counts-out", str(out), "--json", "-q")
        assert run.returncode == EXIT_OK, run.stderr
        doc = json.loads(run.stdout)
        assert doc["app"] == "index" and doc["check"]["ok"] and doc["commit"] == commit
        assert out.read_text(encoding="utf-8") == expected, commit


def test_the_index_is_exact_with_workers_crashing_at_random(tmp_path):
    """Every crash point, a third of the attempts: the index still equals the oracle, in full
    (the 6.5840 lab's crash test, on our protocol)."""
    docs = make_docs(tmp_path / "docs", n=60, seed=11)
    out = tmp_path / "crash.tsv"
    run = wc("run", str(docs), "--app", "index", "--workers", "3", "--crash-at", "any",
             "--crash-prob", "0.3", "--claim-timeout", "1000", "--max-attempts", "50",
             "--chunk-size", "20000", "--pack-size", "600", "--counts-out", str(out), "--json",
             "-q", timeout=300)
    assert run.returncode == EXIT_OK, run.stderr
    assert json.loads(run.stdout)["check"]["ok"]
    assert out.read_text(encoding="utf-8") == lab_tsv(index_oracle(docs))


def test_submit_workers_lookup_and_result_as_a_user_types_them(redis_server, tmp_path):
    """submit --app index --no-wait; workers that exit when idle: the index is final when the
    first of them exits; lookup answers from Redis; jobs shows the app; the same --job under
    another app is a conflict, never a reused result."""
    docs = make_docs(tmp_path / "docs", n=20)
    env = redis_server.env()
    sub = wc("submit", str(docs), "--app", "index", "--no-wait", "--job", "idx",
             "--chunk-size", "30000", env=env)
    assert sub.returncode == EXIT_OK, sub.stderr
    workers = [wc_bg("worker", "--exit-when-idle", env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
               for _ in range(3)]
    try:
        deadline = time.monotonic() + 120
        while all(w.poll() is None for w in workers):
            assert time.monotonic() < deadline, "no worker exited"
            time.sleep(0.05)
        out = tmp_path / "first-exit.tsv"
        res = wc("result", "idx", "--counts-out", str(out), env=env)
        assert res.returncode == EXIT_OK, res.stderr  # final when the first worker exits
        oracle = index_oracle(docs)
        assert out.read_text(encoding="utf-8") == lab_tsv(oracle)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
            w.wait(30)
    look = wc("lookup", "idx", "CAT", "straße", "nothere", "--json", env=env)
    assert look.returncode == EXIT_OK, look.stderr
    expect = {}
    for k, n in oracle.items():
        word, doc = k.split("\t", 1)
        expect.setdefault(word, {})[doc] = n
    found = json.loads(look.stdout)
    assert found == [[w, len(expect.get(w, {})), dict(sorted(expect.get(w, {}).items()))]
                     for w in ("cat", "straße", "nothere")]
    assert found[0][1] > 1 and found[2][1] == 0
    text = wc("lookup", "idx", "odd", env=env)
    assert text.stdout == "odd\t1 documents\todd, name:\there.txt (2)\n"
    jobs = json.loads(wc("jobs", "--json", env=env).stdout)
    assert [j["app"] for j in jobs if j["job"] == "idx"] == ["index"]
    clash = wc("submit", str(docs), "--job", "idx", "--chunk-size", "30000", env=env)
    assert clash.returncode == EXIT_USAGE and "another app" in clash.stderr, clash.stderr
    # word count's lookup: the counts of the words, from the same kind of table
    wc_run = wc("submit", str(docs), "--job", "counts", "--no-wait", env=env)
    assert wc_run.returncode == EXIT_OK
    w = run_wc("worker", "--exit-when-idle", env=env, timeout=120, text=False)
    assert w.returncode == 0
    counts = wc("lookup", "counts", "cat", "w1", "--json", env=env)
    total = Counter()
    for k, n in oracle.items():
        total[k.split("\t", 1)[0]] += n
    assert json.loads(counts.stdout) == [["cat", total["cat"]], ["w1", total["w1"]]]


MY_APP = '''
from collections import Counter
from wordcount.apps import App
from wordcount import report, words

class Initials(App):
    """Words by their first character: a user's own app."""
    name = "initials"
    summary = "words by their first character"
    key_noun, total_noun = "initials", "words"

    class _M:
        def __init__(self):
            self.t = words.Tally()
        def add(self, data):
            self.t.add(data)
        def counts(self):
            out = Counter()
            for w, n in self.t.counts().items():
                out[w[0]] += n
            return out

    def mapper(self, doc):
        return self._M()

    def reference(self, data, doc):
        out = Counter()
        for w, n in words.reference_counts(data).items():
            out[w[0]] += n
        return out

    def write(self, counts, path):
        report.write_counts(counts, path)

APP = Initials()
'''


def test_a_users_own_app_by_import_path_runs_on_the_workers(tmp_path):
    """--app mypkg.initials:APP, importable by the workers (PYTHONPATH), exact against its own
    reference on every engine and through `run`."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "initials.py").write_text(MY_APP)
    docs = make_docs(tmp_path / "docs", n=10)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    expected = Counter()
    for k, n in index_oracle(docs).items():
        expected[k[0]] += n
    outs = {}
    for cmd in (["count", "--engine", "reference"], ["count", "--engine", "processes"],
                ["run", "--workers", "2", "--chunk-size", "30000"]):
        out = tmp_path / f"{cmd[0]}-{cmd[2]}.tsv"
        r = wc(*cmd, str(docs), "--app", "mypkg.initials:APP", "--counts-out", str(out),
               "--json", "-q" if cmd[0] == "run" else "--top=3", env=env)
        assert r.returncode == EXIT_OK, r.stderr
        outs[tuple(cmd)] = out.read_text(encoding="utf-8")
        got = Counter({w: int(n) for w, n in (line.split("\t") for line in
                                              outs[tuple(cmd)].splitlines())})
        assert_counts_equal(got, expected)
    assert len(set(outs.values())) == 1


# -- the layering -------------------------------------------------------------------------------

APP_MODULES = {"wordcount.words", "wordcount.apps.wordcount", "wordcount.apps.index",
               "wordcount.apps.pagerank"}


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` (a module of src/wordcount/) imports anywhere."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["wordcount", base] if base else ["wordcount"])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_the_framework_never_imports_an_app():
    """Only the seam (wordcount.apps) is known to the framework: no product module imports an
    app, or the word rule the apps share (the lab's tooling may)."""
    product = list((ROOT / "src" / "wordcount").glob("*.py"))  # (the lab is lab/)
    assert len(product) > 15
    offenders = {p.stem: sorted(_imports(p) & APP_MODULES) for p in product}
    assert {k: v for k, v in offenders.items() if v} == {}
    # (and the check sees such an import where there is one)
    assert _imports(ROOT / "src" / "wordcount" / "apps" / "index.py") & {"wordcount.words"}


# -- the 6.5840 lab's parallelism and job-count checks -------------------------------------------

TASK_LINE = re.compile(r"task (\S+) (\S+) \((\w+), (reduce \d+|\d+ bytes)\) applied in (\d+) ms "
                       r"\(counted; committed in \d+ ms\) by (\S+) from (\d+)")


def test_maps_and_reduces_run_in_parallel_and_each_task_exactly_once(tmp_path):
    """Two workers, both slowed (so that a task lasts long enough to overlap another): some map
    tasks and some reduce tasks were counted at the same time by the two workers (intervals
    from the workers' logs); with no fault every task was applied exactly once (one
    'applied' line per map and reduce task, no duplicate, steal or backup); the index exact."""
    docs = make_docs(tmp_path / "docs", n=30)
    log = tmp_path / "workers.log"
    out = tmp_path / "index.tsv"
    run = wc("run", str(docs), "--app", "index", "--workers", "2", "--stragglers", "2",
             "--slowdown", "50", "--reduces", "4", "--chunk-size", "20000", "--pack-size",
             "3000", "--worker-log", str(log), "--counts-out", str(out), "--json", "-q")
    assert run.returncode == EXIT_OK, run.stderr
    doc = json.loads(run.stdout)
    assert (doc["duplicates"], doc["stolen"], doc["backups"]) == (0, 0, 0)
    assert out.read_text(encoding="utf-8") == lab_tsv(index_oracle(docs))
    lines = [m.groups() for m in TASK_LINE.finditer(log.read_text())]
    applied = [(tid, what) for _, tid, _, what in (g[:4] for g in lines)]
    assert len(applied) == doc["tasks"] + doc["reduces"] == len(set(applied))

    def overlapping(kind: str) -> bool:
        spans = [(int(g[6]), int(g[6]) + int(g[4]), g[5]) for g in lines
                 if g[3].startswith("reduce") == (kind == "reduce")]
        return any(a[2] != b[2] and a[0] < b[1] and b[0] < a[1]
                   for i, a in enumerate(spans) for b in spans[i + 1:])
    assert overlapping("map"), "no two map tasks ran at the same time"
    assert overlapping("reduce"), "no two reduce tasks ran at the same time"
