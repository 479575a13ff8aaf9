"""PageRank on the framework (apps/pagerank.py): rounds of exactly-once jobs in fixed point,
bit-identical to the sequential oracle -- through `run` and `submit` with real worker
processes, under crashes at every point, a Redis restart from a snapshot taken rounds before,
and a RedisRaft leader kill; the rounds' redo after a lost table; bad input."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import redis
from wordcount import apps, engines
from wordcount.apps import TaskError, pagerank
from wordcount.engines import Result
from wordcount.exceptions import EXIT_INPUT_ERRORS, EXIT_OK
from wordcount.lab import graph as graphs
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.clirun import wc_bg
from wordcount.planner import InputError

from .conftest import save
from .test_jobs import Workers

ROUNDS = "12"


def wc(*args: str, env: dict[str, str] | None = None, timeout: float = 300
       ) -> subprocess.CompletedProcess:
    return run_wc(*args, env=env, timeout=timeout)


def oracle_tsv(ranks: Counter[str]) -> str:
    """The ranks as the TSV is documented (written here, not by the app under test)."""
    rows = sorted(ranks.items(), key=lambda kv: (-kv[1], kv[0]))
    return "".join(f"{p}\t{n // 10**15}.{n % 10**15:015d}\n" for p, n in rows)


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("graph")
    graphs.generate(str(root), pages=500, links=3, files=4, seed=7)
    # a page name of its own kind (non-ASCII, a space), a self-loop, a comment, CRLF
    (root / "extra.tsv").write_bytes("# comment\r\nstraße page\tp0\r\np1\tp1\n\np0\tstraße page"
                                     .encode())
    return root


@pytest.fixture(scope="module")
def expected(graph) -> tuple[Counter[str], int]:
    return pagerank.oracle(sorted(str(p) for p in graph.iterdir()), rounds=int(ROUNDS))


def test_the_oracle_is_pagerank_on_a_small_graph(tmp_path):
    """The fixed point is PageRank: a 3-cycle has equal ranks summing to ~1; a page that only
    receives links ranks above the pages that feed it; every rank sums to ~1 (floors lose a
    few units in 10**15)."""
    (tmp_path / "c.tsv").write_text("a\tb\nb\tc\nc\ta\n")
    ranks, _ = pagerank.oracle([str(tmp_path / "c.tsv")], rounds=50)
    assert len(set(ranks.values())) == 1 and abs(sum(ranks.values()) - 10**15) < 10
    (tmp_path / "s.tsv").write_text("a\tz\nb\tz\nc\tz\n")
    star, _ = pagerank.oracle([str(tmp_path / "s.tsv")], rounds=50)
    assert star["z"] > star["a"] == star["b"] == star["c"]
    assert abs(sum(star.values()) - 10**15) < 100


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(st.tuples(st.text("ab\u00dfc #\r", min_size=0, max_size=4),
                                st.sampled_from(["\t", "\t\t", ""]),
                                st.text("ab\u00dfc #\r", min_size=0, max_size=4)), max_size=30),
       end=st.sampled_from(["\n", "\r\n"]), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_links_mapped_in_any_buffers_equal_the_whole_file(lines, end, cuts):
    """A line cut between two buffers (anywhere) is mapped once, whole; comments, blank lines
    and CRLF alike; a malformed line (no tab, two, an empty name, a CR inside) refused by
    both readings, the worker's (a regular expression over buffers) and the oracle's (line
    by line)."""
    data = "".join(f"{p}{tab}{q}{end}" for p, tab, q in lines).encode()
    try:
        expected = apps.get("links").reference(data, "doc")
    except TaskError:
        expected = None
    m = apps.get("links").mapper("doc")
    last = 0
    try:
        for cut in sorted(c for c in cuts if c <= len(data)) + [len(data)]:
            m.add(data[last:cut])
            last = cut
        got = m.counts()
    except TaskError:
        got = None
    assert got == expected


def test_run_is_bit_identical_to_the_oracle(graph, expected, tmp_path):
    """`run --app pagerank` (the shuffle and atomic; ranges cut after a newline, small files
    packed) and `count --app pagerank` write the oracle's ranks, bit for bit."""
    ranks, rounds = expected
    for how in (["--commit", "shuffle"], ["--commit", "atomic", "--chunk-size", "900"]):
        out = tmp_path / "ranks.tsv"
        r = wc("run", str(graph), "--app", "pagerank", "--rounds", ROUNDS, "--workers", "2",
               *how, "--chunk-size", "2000", "--counts-out", str(out), "--json", "-q")
        assert r.returncode == EXIT_OK, r.stderr
        doc = json.loads(r.stdout)
        assert doc["rounds"] == rounds and doc["pages"] == len(ranks)
        assert doc["tasks"] > 4, "the graph files were not split into ranges"
        assert out.read_text(encoding="utf-8") == oracle_tsv(ranks), how
    local = wc("count", str(graph), "--app", "pagerank", "--rounds", ROUNDS, "--counts-out",
               str(tmp_path / "local.tsv"))
    assert local.returncode == EXIT_OK, local.stderr
    assert (tmp_path / "local.tsv").read_text(encoding="utf-8") == oracle_tsv(ranks)


def test_run_with_workers_crashing_at_every_point_is_bit_identical(graph, expected, tmp_path):
    ranks, _ = expected
    out = tmp_path / "ranks.tsv"
    r = wc("run", str(graph), "--app", "pagerank", "--rounds", "6", "--workers", "3",
           "--crash-at", "any", "--crash-prob", "0.25", "--claim-timeout", "800",
           "--max-attempts", "60", "--chunk-size", "3000", "--counts-out", str(out), "--json",
           timeout=600)
    assert r.returncode == EXIT_OK, r.stderr
    assert "injected worker crashes survived" in r.stderr
    six, _ = pagerank.oracle(sorted(str(p) for p in graph.iterdir()), rounds=6)
    assert out.read_text(encoding="utf-8") == oracle_tsv(six)


def test_a_bad_line_sets_its_task_aside_and_the_rounds_stop_with_exit_3(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "ok.tsv").write_text("a\tb\n")
    (tmp_path / "g" / "bad.tsv").write_text("a\tb\nno tab here\n")
    r = wc("run", str(tmp_path / "g"), "--app", "pagerank", "--pack-size", "0")
    assert r.returncode == EXIT_INPUT_ERRORS, r.stderr
    assert "not a page<TAB>target line: b'no tab here'" in r.stderr
    assert "bad.tsv" in r.stderr


def test_the_rounds_count_again_what_a_rollback_took(graph, tmp_path):
    """The driver's redo: round 3's kernel finds round 2's table gone (PREREQ), so rounds
    links..2 run again (2 afresh: its table is gone) and round 3 afresh; the ranks are the
    oracle's. Rounds run on the serial engine here, the kernel reading a dict of tables."""
    paths = sorted(str(p) for p in graph.iterdir())
    tables: dict[str, Counter[str]] = {}
    calls: list[tuple[str, bool]] = []

    def table(name: str) -> Counter[str]:
        if name not in tables:
            raise TaskError(f"PREREQ: no table {name}")
        return tables[name]

    def run_round(spec: str, suffix: str, fresh: bool):
        calls.append((suffix, fresh))
        name = "g" + suffix
        if suffix == "-r3" and not fresh and "g-r2" in tables:  # Redis rolled back round 2
            del tables["g-r2"]
            return Result(errors=[InputError("graph", "task 0-1 set aside: PREREQ: gone")]), name
        if name in tables:  # finished: reused
            return Result(counts=tables[name]), name
        app = apps.get(spec)
        app.bind(table)
        res = engines.count_inputs(paths, "serial", chunk_size=5000, app_name=spec)
        tables[name] = res.counts
        return res, name

    ranks, extra = apps.get("pagerank").iterate(run_round, {"rounds": 5})
    assert calls[:4] == [("-links", False), ("-r1", False), ("-r2", False), ("-r3", False)]
    assert calls[4:8] == [("-links", False), ("-r1", False), ("-r2", False), ("-r3", True)]
    assert "g-r2" in tables and extra["rounds"] == 5
    assert ranks == pagerank.oracle(paths, rounds=5)[0]


# -- a Redis that restarts from an old snapshot; a RedisRaft leader killed ---------------------

def submit_rounds(env: dict[str, str], graph: Path, out: Path) -> subprocess.Popen:
    """`wordcount submit --app pagerank` of the graph as job "pr", in the background."""
    return wc_bg("submit", str(graph), "--app", "pagerank", "--job", "pr", "--rounds", ROUNDS,
                 "--chunk-size", "3000", "--counts-out", str(out), "--json", "-q", env=env)


@pytest.fixture
def fast_workers(monkeypatch):
    """Workers (tests/test_jobs.py) that wait for new work in short blocks, as `run`'s do: the
    next round is taken at once."""
    monkeypatch.setenv("WORDCOUNT_BLOCK_MS", "100")
    return Workers


def meta_exists(r: redis.Redis, job: str) -> bool:
    return bool(r.exists(f"wc:{{{job}}}:meta"))


def test_a_redis_restart_from_a_snapshot_rounds_old_is_survived_bit_for_bit(
        redis_server, graph, expected, tmp_path, fast_workers):
    """A snapshot taken while round 3 runs; Redis killed once round 6 exists, restarted from it:
    rounds 3-5 are rolled back (their jobs gone or running again), the client counts them
    again, and the final ranks are the oracle's, bit for bit."""
    ranks, _ = expected
    r = redis.Redis.from_url(redis_server.url, password=redis_server.password)
    workers = fast_workers(redis_server, 2, log=tmp_path / "workers.log")
    out = tmp_path / "ranks.tsv"
    client = submit_rounds(redis_server.env(), graph, out)
    seen = {}
    try:

        def wait_for(job: str) -> None:
            deadline = time.monotonic() + 120
            while not meta_exists(r, job):
                assert client.poll() is None, client.communicate()
                assert time.monotonic() < deadline, f"{job} never appeared"
                time.sleep(0.01)

        wait_for("pr-r3")
        save(r)  # the snapshot the restart will load: round 3 running or just done
        wait_for("pr-r6")
        seen["before"] = [j for j in ("pr-r3", "pr-r4", "pr-r5") if meta_exists(r, j)]
        redis_server.kill()
        redis_server.start()
        r = redis.Redis.from_url(redis_server.url, password=redis_server.password)
        seen["after"] = [j for j in ("pr-r5", "pr-r6") if meta_exists(r, j)]
        stdout, stderr = client.communicate(timeout=300)
    finally:
        if client.poll() is None:
            client.kill()
        workers.stop()
    assert seen["before"] == ["pr-r3", "pr-r4", "pr-r5"]
    assert seen["after"] == [], "the restart did not roll the rounds back"
    assert client.returncode == EXIT_OK, stderr
    assert json.loads(stdout)["rounds"] == int(ROUNDS)
    assert out.read_text(encoding="utf-8") == oracle_tsv(ranks)


def test_a_raft_leader_killed_mid_rounds_is_survived_bit_for_bit(raft_cluster, graph, expected,
                                                                  tmp_path, fast_workers):
    ranks, _ = expected
    workers = fast_workers(raft_cluster, 2, log=tmp_path / "workers.log")
    out = tmp_path / "ranks.tsv"
    client = submit_rounds(raft_cluster.env(), graph, out)
    killed: list[int] = []

    def nemesis() -> None:
        leader = raft_cluster.leader()
        while client.poll() is None:
            try:
                if raft_cluster.client(leader).exists("wc:{pr-r3}:meta"):
                    break
            except redis.RedisError:
                pass
            time.sleep(0.05)
        if client.poll() is None:
            raft_cluster.kill(leader)
            killed.append(leader)
            time.sleep(3)
            raft_cluster.start(leader)

    thread = threading.Thread(target=nemesis, daemon=True)
    thread.start()
    try:
        stdout, stderr = client.communicate(timeout=400)
    finally:
        if client.poll() is None:
            client.kill()
        thread.join(60)
        workers.stop()
    assert killed, "the rounds ended before the leader was killed"
    assert client.returncode == EXIT_OK, stderr
    assert json.loads(stdout)["rounds"] == int(ROUNDS)
    assert out.read_text(encoding="utf-8") == oracle_tsv(ranks)


def test_the_same_rounds_counted_anew_on_changed_links_read_the_new_tables(redis_server,
                                                                             tmp_path,
                                                                             fast_workers):
    """`submit --job pr` of a graph, then `submit --job pr --fresh` of the same pages with one
    link moved, on the same long-lived workers: round 1's parameters are the same text both
    times (same job names, same page count), so only the tables' versions tell the workers
    that the links changed -- the second result is the new graph's oracle, bit for bit."""
    env = redis_server.env()
    g = tmp_path / "g"
    g.mkdir()
    (g / "links.tsv").write_text("a\tb\nb\tc\nc\ta\nd\ta\n")
    workers = fast_workers(redis_server, 2, log=tmp_path / "workers.log")
    try:
        first = wc("submit", str(g), "--app", "pagerank", "--job", "pr", "--rounds", "5",
                   "--counts-out", str(tmp_path / "1.tsv"), "-q", env=env)
        assert first.returncode == EXIT_OK, first.stderr
        (g / "links.tsv").write_text("a\tb\nb\tc\nc\ta\nd\tc\n")  # d now links to c
        again = wc("submit", str(g), "--app", "pagerank", "--job", "pr", "--rounds", "5",
                   "--fresh", "--counts-out", str(tmp_path / "2.tsv"), "-q", env=env)
        assert again.returncode == EXIT_OK, again.stderr
    finally:
        workers.stop()
    new, _ = pagerank.oracle([str(g / "links.tsv")], rounds=5)
    assert (tmp_path / "2.tsv").read_text() == oracle_tsv(new)
    assert (tmp_path / "1.tsv").read_text() != (tmp_path / "2.tsv").read_text()
