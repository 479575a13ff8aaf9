"""Shared fixtures: a deliberately nasty corpus, and the oracle's full count table."""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from wordcount.words import reference_counts

NASTY_TEXTS: dict[str, bytes] = {
    "greek.txt": "ΟΔΥΣΣΕΥΣ ΚΑΙ ΟΔΥΣΣΕΑΣ. Σίσυφος ΣΟΦΟΣ, ΑΣ.Β ΑΣ'Β\n".encode() * 50,
    "turkish.txt": "İSTANBUL ılık IĞDIR istanbul İi Iı\n".encode() * 40,
    "cjk_emoji.txt": "漢字かな交じり文 テスト 😀 emoji😀word ① ½ Ⅻ x²\n".encode() * 30,
    "german.txt": "Straße STRASSE ẞ groß\r\nÆsir œuvre ǅ ǈ\r".encode() * 30,
    "invalid_utf8.bin": b"ok \xff\xfe bad\xc3 word\xe2\x82 \xed\xa0\x80 tail\xc3\xa9 " * 30,
    "crlf.txt": b"line one\r\nline two\rline three\n" * 100,
    "empty.txt": b"",
    "blank.txt": b" \t\n\r\v\f  \n\n",
    "underscores.txt": b"snake_case_word don't x__y 1_000 _lead trail_\n" * 20,
}


@pytest.fixture(autouse=True)
def _root_log_handlers():
    """In-process CLI calls configure the root logger (basicConfig) on the stderr that pytest
    captured for that test: take their handlers away afterwards, or later tests log into a
    closed stream ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in root.handlers:
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def binary_noise(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def build_nasty(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in NASTY_TEXTS.items():
        (root / name).write_bytes(data)
    (root / "noise.bin").write_bytes(binary_noise(7, 200_000))
    (root / "longline.txt").write_bytes(b"Ab" * 150_000 + b" end\n")
    tiny = root / "tiny"
    tiny.mkdir(exist_ok=True)
    for i in range(150):
        (tiny / f"t{i:03}.txt").write_bytes(f"w{i % 7} word Word WORD{i}\n".encode())
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True, exist_ok=True)
    (deep / "deep.txt").write_bytes(b"deep deep DEEP\n")
    mixed = "".join(f"ascii line {i} Σ END ΣΑΣ ı\n" if i % 97 == 0 else f"plain line {i}\n"
                    for i in range(20_000))
    (root / "mixed.txt").write_text(mixed, encoding="utf-8")
    return root


def oracle(root: Path) -> Counter[str]:
    """Reference counts over whole files, walked the way the planner walks (no symlinks)."""
    total: Counter[str] = Counter()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += reference_counts(Path(p).read_bytes())
    return total


@pytest.fixture(scope="session")
def nasty_corpus(tmp_path_factory) -> Path:
    return build_nasty(tmp_path_factory.mktemp("nasty"))


@pytest.fixture(scope="session")
def nasty_oracle(nasty_corpus) -> Counter[str]:
    return oracle(nasty_corpus)


def tsv(counts: Counter[str]) -> str:
    return "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# -- distributed engine fixtures -------------------------------------------------------------

@pytest.fixture
def redis_server(tmp_path):
    """A fresh password-protected redis-server on loopback, snapshotting every second."""
    from wordcount.embedded import RedisServer

    server = RedisServer(directory=str(tmp_path / "redis"), save="1 1")
    server.start()
    yield server
    server.stop()


def save(r) -> None:
    """SAVE now (the snapshot a test will roll Redis back to), with automatic snapshots off
    from here on and any background save they started finished first: SAVE during a BGSAVE
    is refused ("Background save already in progress"). ``r``: a redis.Redis client."""
    r.config_set("save", "")
    deadline = time.monotonic() + 30
    while r.info("persistence")["rdb_bgsave_in_progress"]:
        assert time.monotonic() < deadline, "a background save never ended"
        time.sleep(0.01)
    r.save()


def connect(server, **overrides):
    from wordcount.connection import Connection
    from wordcount.settings import Settings

    settings = Settings.from_env({}, redis_url=server.url, redis_password=server.password,
                                 **overrides)
    conn = Connection(settings)
    conn.load_functions()
    return conn


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """6 x 300 KB ASCII + Unicode files and one 1.2 MB skew file, plus the nasty files."""
    from wordcount.lab.corpus import generate

    root = tmp_path_factory.mktemp("small")
    generate(root / "gen", 6, 300_000, skew_size=1_200_000, seed=3, unicode=True)
    build_nasty(root / "nasty")
    return root


@pytest.fixture(scope="session")
def small_oracle(small_corpus) -> Counter[str]:
    return oracle(small_corpus)


def assert_counts_equal(got: Counter[str], expected: Counter[str]) -> None:
    """Full tables, byte for byte as written by --counts-out; a readable diff on failure."""
    if tsv(got) == tsv(expected):
        return
    diff = {w: (got.get(w, 0), expected.get(w, 0)) for w in set(got) | set(expected)
            if got.get(w, 0) != expected.get(w, 0)}
    sample = sorted(diff.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1]))[:8]
    raise AssertionError(f"{len(diff)} words differ (got, expected), e.g. {sample}; totals "
                         f"{sum(got.values())} vs {sum(expected.values())}")


@pytest.fixture(params=["stream", "lease"])
def queue_kind(request, monkeypatch) -> str:
    """Run a test once per task queue: new jobs (CLI, workers' environment, ``run_job``) go to
    this queue via WORDCOUNT_QUEUE."""
    monkeypatch.setenv("WORDCOUNT_QUEUE", request.param)
    return request.param


def take(conn, job: str, consumer: str = "w1"):
    """One task of ``job`` taken by ``consumer`` (its lease started), on whichever queue."""
    from wordcount.queue import Queues

    c = Queues(conn, consumer, conn.settings).take([job])
    assert c is not None, f"no task of {job} to take"
    return c


@pytest.fixture(scope="session")
def raft_binaries():
    """redis-server 7.2.6 + redisraft.so on the host (``make raft-bin``); skip, naming what is
    missing, without them; fail when they are there but broken."""
    from wordcount.lab.raft import RaftUnavailable, find_binaries

    try:
        found = find_binaries()
    except RaftUnavailable as e:
        pytest.skip(str(e))
    found.check()  # there but broken: an error, not a skip
    return found


@pytest.fixture
def raft_cluster(raft_binaries, tmp_path):
    """A started 3-node RedisRaft cluster on 127.0.0.1, stopped after the test."""
    from wordcount.lab.raft import RaftCluster

    c = RaftCluster(3, directory=str(tmp_path / "raft"), binaries=raft_binaries)
    c.start()
    yield c
    c.stop()
