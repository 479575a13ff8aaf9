"""E24, the peers (wordcount.lab.experiments.peers): the tiny run through the experiments
CLI with the peers' venv absent (ours and GNU run and are exact; Dask and PySpark are skipped
with the reason in the JSON and the answer), and each peer's table against the serial engine's on a
small corpus of mixed case, digits and punctuation. Dask and PySpark only when `make peers`
made their venv (one Spark run: its JVM takes seconds to start)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wordcount.lab import experiments
from wordcount.lab.clirun import wc_bg
from wordcount.lab.experiments import catalog, peers, report

OURS = set(peers.OURS)
GNU = {peers.GNU, peers.GNU + peers.TUNED}


def test_e24_tiny_runs_ours_and_gnu_and_skips_missing_peers(tmp_path, monkeypatch):
    monkeypatch.setenv(peers.VENV_ENV, str(tmp_path / "no-peers"))
    rc = experiments.main(["E24", "--tiny", "-q", "--results", str(tmp_path / "r"),
                           "--docs", str(tmp_path / "d"), "--workdir", str(tmp_path / "w")])
    assert rc == 0
    doc = report.validate(json.loads((tmp_path / "r" / "E24.json").read_text()))
    assert "skipped" not in doc
    assert {r["variant"] for r in doc["runs"]} == OURS | GNU
    assert all(r["exact"] for r in doc["runs"])
    assert set(doc["params"]["variants"]) == OURS | GNU | {
        p + t for p in (peers.DASK, peers.SPARK) for t in ("", peers.TUNED)}
    why = f"not installed in {tmp_path / 'no-peers'} (make peers)"
    assert doc["skipped_variants"] == {p + t: why for p in (peers.DASK, peers.SPARK)
                                       for t in ("", peers.TUNED)}
    answer = catalog.EXPERIMENTS["E24"].answer(doc)
    for peer in (peers.DASK, peers.SPARK):  # skipped, with the reason
        assert f"{peer}: not run here, {why}." in answer
    assert f"{peers.GNU} tuned" in answer and "n/a" not in answer
    assert answer in (tmp_path / "d" / "EXPERIMENTS.md").read_text()


TEXT = [  # ASCII: mixed case, digits, punctuation, underscores, CRLF, tabs; leading punctuation
    b"...Hello, WORLD! hello-world; HeLLo_wOrld 42 x42y 0042 42.\r\n\tTabs\tand\fFEEDS\v\n",
    b"\"Quoted\" (parens) [brackets] {braces} <angles> it's IT'S o'clock 3.14 -7 +8e10\n\n",
    b"a a A a.b.c a_b_c __init__ ~~ tilde~x 1990s 90S \x00nul\x7fdel ZZZ zzz zZz\n",
    b"no final newline: word WORD Word",
]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, bytes]:
    """A small corpus (the lines above, and some generated prose) and the serial engine's
    table of it."""
    from wordcount.lab import corpus as corpora

    root = tmp_path_factory.mktemp("peers")
    corpus = root / "corpus"
    corpora.generate(corpus, 2, 64 * 1024, seed=24)
    for i, text in enumerate(TEXT):
        (corpus / f"mixed-{i}.txt").write_bytes(text)
    oracle = root / "oracle.tsv"
    proc = wc_bg("count", str(corpus), "--engine", "serial", "--counts-out", str(oracle))
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    return corpus, oracle.read_bytes()


def _check(runner, small, tmp_path, tuned: bool) -> None:
    corpus, want = small
    counts = tmp_path / "counts.tsv"
    doc = runner(corpus, counts, tuned=tuned)
    assert doc["exit"] == 0 and doc["seconds"] >= doc["peer_seconds"] > 0
    assert counts.read_bytes() == want


@pytest.mark.parametrize("tuned", [False, True], ids=["idiomatic", "tuned"])
def test_gnu_pipeline_table_is_the_serial_engines(small, tmp_path, tuned):
    _check(peers.gnu, small, tmp_path, tuned)


def _need(peer: str) -> None:
    version, why = peers.status(peer)
    if version is None:
        pytest.skip(f"{peer}: {why}; `make peers` installs it")


@pytest.mark.parametrize("tuned", [False, True], ids=["idiomatic", "tuned"])
def test_dask_bag_table_is_the_serial_engines(small, tmp_path, tuned):
    _need(peers.DASK)
    _check(peers.dask, small, tmp_path, tuned)


def test_pyspark_table_is_the_serial_engines(small, tmp_path):
    """The tuned form only (the DataFrame split/explode/groupBy): one JVM start in the tests;
    the idiomatic RDD form runs in E24 itself."""
    _need(peers.SPARK)
    _check(peers.spark, small, tmp_path, tuned=True)


def test_a_peer_that_fails_is_a_failed_run(tmp_path, monkeypatch):
    """A peer command that exits non-zero raises with its stderr: the runner records the
    run as failed, with that reason."""
    monkeypatch.setattr(peers, "_files", lambda corpus: [str(tmp_path / "missing.txt")])
    with pytest.raises(RuntimeError, match="bash exited 1: cat: .*missing.txt"):
        peers.gnu(tmp_path, tmp_path / "counts.tsv")
