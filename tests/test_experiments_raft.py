"""E20-E23 (RedisRaft against one Redis, and RedisRaft's failures) in their tiny mode, through
``wordcount experiment``: every run's table exact, every fault run with its kills or pauses
marked and lost = doubled = 0, the timeline plots written. Needs the host binaries from ``make
raft-bin``: without them the tests are skipped, with the reason, and the experiments say so."""

from __future__ import annotations

import json

import pytest

from wordcount.lab import experiments

pytestmark = [pytest.mark.timeout(300)]

NAMES = ("E20", "E21", "E22", "E23")


@pytest.fixture(scope="module")
def results(raft_binaries, tmp_path_factory):
    """The four experiments run once, tiny: {name: its JSON}, and the docs directory."""
    res, docs = tmp_path_factory.mktemp("raftres"), tmp_path_factory.mktemp("raftdocs")
    rc = experiments.main([*NAMES, "--tiny", "-q", "--results", str(res), "--docs", str(docs)])
    found = {n: json.loads((res / f"{n}.json").read_text(encoding="utf-8")) for n in NAMES}
    assert rc == 0, {n: [r.get("error") for r in d["runs"] if not r["exact"]]
                     for n, d in found.items()}
    return found, docs


def events(run: dict) -> list[str]:
    return [what for _, what in run.get("events", [])]


@pytest.mark.parametrize("name", NAMES)
def test_every_run_exact(results, name):
    doc = results[0][name]
    assert not doc.get("skipped"), doc.get("skipped")
    assert doc["runs"] and all(r["exact"] for r in doc["runs"]), doc["runs"]
    assert all(r["lost"] == 0 and r["doubled"] == 0 for r in doc["runs"])
    assert "loopback" in doc["setup"]
    assert experiments._catalog()[name].answer(doc)  # a sentence from the JSON


def test_e20_both_stores_at_both_points(results):
    doc = results[0]["E20"]
    cells = {(r["variant"], r["x"]) for r in doc["summary"] if r["n"]}
    assert cells == {(v, x) for v in ("single Redis", "RedisRaft ×3")
                     for x in ("large files", "small files")}


@pytest.mark.parametrize("name", ["E21", "E22"])
def test_kill_runs_mark_their_kills_and_restarts(results, name):
    faulty = [r for r in results[0][name]["runs"] if r["variant"] != "no faults"]
    assert faulty
    for r in faulty:  # (a tiny job may end before a killed node is back)
        assert r["kills"] == sum("killed" in e for e in events(r)) >= 1, r["events"]
        assert [t for t, _ in r["events"]] == sorted(t for t, _ in r["events"])
        assert r["timeline"] and r["timeline"][-1][1] == r["timeline"][-1][2]


def test_two_nodes_down_stall_until_both_are_back(results):
    """Without a majority no task settles: the job can only end after both restarts."""
    run = next(r for r in results[0]["E21"]["runs"] if r["x"] == "two nodes down")
    kinds = events(run)
    assert sum("killed" in e for e in kinds) == 2 and sum("restarted" in e for e in kinds) == 2
    back = max(t for t, e in run["events"] if "restarted" in e)
    assert run["seconds"] > back


def test_e23_pauses_and_resumes_the_leader(results):
    paused = [r for r in results[0]["E23"]["runs"] if r["variant"] == "leader paused N s"]
    assert paused
    for r in paused:
        kinds = events(r)
        assert any("paused" in e for e in kinds) and any("resumed" in e for e in kinds), kinds
        elected = [e for e in kinds if "leader elected" in e]
        assert all(e.startswith("leader elected: node ") for e in elected)


@pytest.mark.parametrize("name", ["E21", "E22", "E23"])
def test_timeline_plots(results, name):
    docs = results[1]
    assert (docs / "experiments" / f"{name}-timeline.png").stat().st_size > 0
    assert (docs / "experiments" / f"{name}.png").stat().st_size > 0
    assert f"{name}-timeline.png" in (docs / "EXPERIMENTS.md").read_text(encoding="utf-8")


def test_skipped_with_the_reason_without_binaries(tmp_path, monkeypatch):
    from wordcount.lab.experiments.core import Context, run

    monkeypatch.setenv("WORDCOUNT_RAFT_BIN", str(tmp_path / "nothing"))
    doc = run(experiments._catalog()["E20"], Context(workdir=tmp_path, tiny=True, repeat=1,
                                                     say=lambda s: None))
    assert "RedisRaft binaries missing" in doc["skipped"] and not doc["runs"]
