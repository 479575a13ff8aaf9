"""The experiments (wordcount.lab.experiments): each runs in its tiny mode and writes JSON the
report reads; the report's numbers come from the JSON; an inexact run is a loud failure,
never a point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wordcount.lab import experiments
from wordcount.lab.experiments import catalog, core, report

# A fixed E2 result: two worker counts, the serial engine once, one failed run.
FIXTURE = {
    "schema": core.SCHEMA, "name": "E2", "title": "workers", "question": "q?",
    "x_label": "worker processes", "metric": "mb_s", "setup": "16 files",
    "params": {"scale": 1.0, "repeat": 3, "tiny": False, "points": [1, 2],
               "variants": ["run", "processes", "serial"]},
    "cache": "warm", "corpora": {"1": {"path": "c", "bytes": 64_000_000, "checksum": "ab"},
                                 "2": {"path": "c", "bytes": 64_000_000, "checksum": "ab"}},
    "machine": {"cores": 2, "memory_bytes": 24 << 30, "python": "3.11.7", "redis": "7.0.15",
                "wordcount": "0.1.0", "commit": "abc1234", "platform": "Linux"},
    "runs": [
        *({"x": x, "variant": "run", "rep": i, "seconds": s, "bytes": 64_000_000, "exit": 0,
           "exact": True} for x, times in ((1, (4.0, 4.2, 4.4)), (2, (2.5, 2.6, 2.9)))
          for i, s in enumerate(times)),
        *({"x": 1, "variant": "serial", "rep": i, "seconds": s, "bytes": 64_000_000,
           "exit": 0, "exact": True} for i, s in enumerate((3.1, 3.0, 3.3))),
        {"x": 2, "variant": "serial", "rep": 0, "seconds": 0.1, "bytes": 64_000_000,
         "exit": 0, "exact": False, "error": "its table differs from the serial engine's"},
    ],
}
FIXTURE["summary"] = core.summarize(FIXTURE["runs"])


def test_summary_takes_medians_of_exact_runs_only():
    rows = {(r["variant"], r["x"]): r for r in FIXTURE["summary"]}
    assert rows[("run", 1)]["median"] == 4.2 and rows[("run", 1)]["min"] == 4.0
    assert rows[("run", 2)]["max"] == 2.9 and rows[("serial", 1)]["median"] == 3.1
    inexact = rows[("serial", 2)]
    assert inexact["n"] == 0 and inexact["failed"] == 1 and "median" not in inexact


def test_the_report_says_what_the_json_says(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "E2.json").write_text(json.dumps(FIXTURE))
    out = experiments.write_report(tmp_path / "results", tmp_path / "docs")
    text = out.read_text()
    assert (tmp_path / "docs" / "experiments" / "E2.png").stat().st_size > 10_000
    # COST: 2 workers (2.6 s) beat the serial engine (3.1 s); one worker (4.2 s) did not
    assert "COST = 2 worker processes" in text
    assert "One worker took 4.20 s, the serial engine 3.10 s" in text
    assert "fastest was 2 workers at 2.60 s (1.62× one worker's speed" in text
    assert "| 1 | 15.2 MB/s (4.20 s, 4.00–4.40) |" in text
    assert "FAILED (1)" in text and "**1 runs FAILED** (not plotted)" in text
    assert "commit `abc1234`" in text
    assert "10 runs, 1 inexact" in text
    # a changed number in the JSON changes the sentence: nothing is typed by hand
    slower = json.loads(json.dumps(FIXTURE))
    for r in slower["runs"]:
        if r["variant"] == "run" and r["x"] == 2:
            r["seconds"] += 1.0
    slower["summary"] = core.summarize(slower["runs"])
    (tmp_path / "results" / "E2.json").write_text(json.dumps(slower))
    text = experiments.write_report(tmp_path / "results", tmp_path / "docs").read_text()
    assert "COST > 2 (no worker count tried beat one serial thread)" in text


def test_validate_names_what_is_missing():
    bad = {k: v for k, v in FIXTURE.items() if k != "machine"}
    with pytest.raises(report.InvalidResult, match="'machine' missing"):
        report.validate(bad)
    bad = json.loads(json.dumps(FIXTURE))
    del bad["runs"][0]["exact"]
    with pytest.raises(report.InvalidResult, match="a run lacks"):
        report.validate(bad)


def test_list_shows_every_question(capsys):
    assert experiments.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name, exp in catalog.EXPERIMENTS.items():
        assert re.search(rf"^{name}\s+{re.escape(exp.title)}\s+", out, re.M), name


def test_every_experiment_runs_tiny_and_is_exact(tmp_path):
    """All of them in the tiny mode (one run a cell), as `make experiments` runs them: each
    JSON valid, every run exact against the serial engine, a plot each, the report."""
    rc = experiments.main(["--tiny", "-q", "--results", str(tmp_path / "r"), "--docs",
                           str(tmp_path / "d"), "--workdir", str(tmp_path / "w")])
    assert rc == 0
    for name in catalog.EXPERIMENTS:
        doc = report.validate(json.loads((tmp_path / "r" / f"{name}.json").read_text()))
        assert doc["runs"] and all(r["exact"] for r in doc["runs"]), name
        assert {r["variant"] for r in doc["runs"]} == set(doc["params"]["variants"]), name
        assert (tmp_path / "d" / "experiments" / f"{name}.png").exists()
    assert "No exact run" not in (tmp_path / "d" / "EXPERIMENTS.md").read_text()
    # the fault experiment killed Redis mid-job in every faulty run, and says so on a timeline
    e13 = json.loads((tmp_path / "r" / "E13.json").read_text())
    killed = [r for r in e13["runs"] if r["variant"] == "killed once"]
    assert killed and all(r["kills"] == 1 and r["lost"] == r["doubled"] == 0
                          and r["timeline"][-1][1] == r["timeline"][-1][2] for r in killed)
    assert all(0 < r["events"][0][0] < r["seconds"] for r in killed)  # mid-job
    assert (tmp_path / "d" / "experiments" / "E13-timeline.png").exists()
    assert "lost = 0, doubled = 0" in (tmp_path / "d" / "EXPERIMENTS.md").read_text()


def test_an_inexact_run_fails_the_experiment_loudly(tmp_path, monkeypatch):
    """A variant whose table is not the serial engine's (here: a different input) is a
    failed run, reported and left out of the summary, and the command exits non-zero."""
    def other_corpus(c: Path, x):
        (tmp_path / "other.txt").write_text("not the same words\n")
        return ["count", str(tmp_path / "other.txt")]

    wrong = core.Experiment(
        "E1", "engines", "q", "engine", lambda ctx: [1],
        lambda ctx, x: ctx.corpus("tiny", lambda d: (d / "a.txt").write_text("a b a\n")),
        [core.Variant("serial", lambda c, x: ["count", str(c)]),
         core.Variant("wrong", other_corpus)], lambda doc: "")
    monkeypatch.setitem(catalog.EXPERIMENTS, "E1", wrong)
    said = []
    ctx = core.Context(tmp_path, repeat=2, tiny=True, say=said.append)
    doc = core.run(wrong, ctx)
    assert [r["exact"] for r in doc["runs"] if r["variant"] == "wrong"] == [False, False]
    assert all(r["exact"] for r in doc["runs"] if r["variant"] == "serial")
    assert core.find(doc["summary"], "wrong") is None
    assert len(ctx.failures) == 2 and "differs from the serial engine's" in ctx.failures[0]
    assert any("FAILED" in s for s in said)
    rc = experiments.main(["E1", "--tiny", "-q", "--results", str(tmp_path / "r"),
                           "--docs", str(tmp_path / "d"), "--workdir", str(tmp_path / "w")])
    assert rc == experiments.EXIT_EXPERIMENT_FAILED
