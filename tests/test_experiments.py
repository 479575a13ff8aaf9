"""The experiments (wordcount.lab.experiments): each runs in its tiny mode and writes JSON the
report reads; the report's numbers come from the JSON; an inexact run is a loud failure,
never a point."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from wordcount.lab import corpus as corpora
from wordcount.lab import experiments
from wordcount.lab.clirun import wc, wc_bg
from wordcount.lab.experiments import catalog, compose, core, faults, peers, raft, report

from .test_compose import docker_client, images  # noqa: F401 - the fixtures

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


FAULTS = [e.name for e in faults.FAULT_EXPERIMENTS]
OWN_FILES = {  # experiments whose tiny runs are in a test file of their own
    **{e.name: "test_experiments_raft.py" for e in raft.RAFT_EXPERIMENTS},
    **{e.name: "test_experiments_peers.py" for e in peers.PEER_EXPERIMENTS}}
PLAIN = [n for n in catalog.EXPERIMENTS if n not in FAULTS and n not in OWN_FILES]


def test_every_experiment_has_a_tiny_run_in_make_test():
    """The tests below run PLAIN and FAULTS; the others have files of their own."""
    assert set(PLAIN) | set(FAULTS) | set(OWN_FILES) == set(catalog.EXPERIMENTS)
    for name, file in OWN_FILES.items():
        assert name in (Path(__file__).parent / file).read_text(), (name, file)


def tiny(tmp_path: Path, *names: str, timeout: float = 300, env: dict | None = None
         ) -> dict[str, dict]:
    """``wordcount experiment NAMES --tiny`` as a user runs it, within ``timeout`` s (a hang is
    a failure): exit 0, each JSON valid, every run exact, a plot each; the JSON by name."""
    r = wc("experiment", *names, "--tiny", "-q", "--results", str(tmp_path / "r"), "--docs",
           str(tmp_path / "d"), "--workdir", str(tmp_path / "w"), timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    docs = {}
    for name in names:
        doc = report.validate(json.loads((tmp_path / "r" / f"{name}.json").read_text()))
        assert doc["runs"] and all(r["exact"] for r in doc["runs"]), name
        ran = {r["variant"] for r in doc["runs"]} | set(doc.get("skipped_variants", {}))
        assert ran == set(doc["params"]["variants"]), name
        assert (tmp_path / "d" / "experiments" / f"{name}.png").exists()
        docs[name] = doc
    assert "No exact run" not in (tmp_path / "d" / "EXPERIMENTS.md").read_text()
    return docs


def test_every_experiment_runs_tiny_and_is_exact(tmp_path):
    """The measurement ones in the tiny mode (one run a cell), as `make experiments` runs
    them: each JSON valid, every run exact against the serial engine, a plot each, the
    report; E1's real-text corpus says what it was made of. The compose-cluster variants
    (E2, E8) are left out here, saying so (the next test runs one)."""
    docs = tiny(tmp_path, *PLAIN, env={compose.SWITCH: "0"})
    for name in ("E2", "E8"):
        assert all("turned off" in why for why in docs[name]["skipped_variants"].values())
        assert docs[name]["skipped_variants"]
    assert "Not run here: compose cluster, because turned off" in (
        tmp_path / "d" / "EXPERIMENTS.md").read_text()
    assert "real text" in docs["E1"]["params"]["points"]
    assert "replicated to the size" in docs["E1"]["setup"]


@pytest.mark.docker
@pytest.mark.usefixtures("images")
def test_a_compose_variant_times_a_job_on_the_cluster(tmp_path):
    """compose.job as E2 and E8 run it: worker containers, the cpus 0.5 straggler container,
    the client's table byte for byte the serial engine's, the job's own time inside the
    whole command's."""
    assert compose.unavailable() is None
    data = tmp_path / "data"
    corpora.generate(data, 4, 256 * 1024, seed=4)
    serial = tmp_path / "serial.tsv"
    assert wc("count", str(data), "--counts-out", str(serial)).returncode == 0
    doc = compose.job(data, tmp_path / "counts.tsv", workers=1, straggler=True,
                      backups=False, timeout=240)
    assert doc["exit"] == 0, doc["stderr"]
    assert (tmp_path / "counts.tsv").read_bytes() == serial.read_bytes()
    assert 0 < doc["seconds"] < doc["wall"] and doc["check"]["ok"]


def test_the_fault_experiments_kill_redis_where_they_say_and_stay_exact(tmp_path):
    """E13-E19 tiny, as a CLI run with a deadline: each faulty run killed Redis (mid-job,
    mid-submission, after the end), lost = doubled = 0, and its timeline says so. E15 kills
    Redis after the job's end, once the workers have exited for want of work: the client
    must start them again to finish the rolled-back job (without that it waited forever)."""
    docs = tiny(tmp_path, *FAULTS, timeout=400)
    def faulty(name: str, variant: str) -> list[dict]:
        runs = [r for r in docs[name]["runs"] if r["variant"] == variant]
        assert runs and all(r["lost"] == r["doubled"] == 0 and r["kills"] >= 1
                            and r["timeline"][-1][1] == r["timeline"][-1][2] for r in runs)
        return runs

    killed = faulty("E13", "killed once")
    assert all(0 < r["events"][0][0] < r["seconds"] for r in killed)  # mid-job
    for r in faulty("E14", "killed submitting"):  # before the last batch was sent
        sent, _, total = re.search(r"\((\d+) of (\d+) tasks submitted\)",
                                   r["events"][0][1]).group(1, 1, 2)
        assert 0 < int(sent) < int(total) == r["tasks"], r["events"]
    for r in faulty("E15", "killed when done"):  # killed after every task had settled
        kill = r["events"][0][0]
        assert [p for p in r["timeline"] if p[0] <= kill][-1][1] == r["tasks"], r
        assert r["seconds"] > faults.LINGER
    assert faulty("E18", "killed once")
    assert (tmp_path / "d" / "experiments" / "E13-timeline.png").exists()
    text = (tmp_path / "d" / "EXPERIMENTS.md").read_text()
    assert "lost = 0, doubled = 0" in text and "E15-timeline.png" in text


def test_the_apps_match_their_oracles_also_with_redis_killed_between_rounds(tmp_path):
    """E25 tiny: the index and PageRank by `run` (and with workers crashing) equal their
    sequential oracles byte for byte; PageRank's rounds with Redis killed every 2 s too."""
    docs = tiny(tmp_path, "E25", timeout=300)
    killed = [r for r in docs["E25"]["runs"] if r["variant"].startswith("Redis killed")]
    assert killed and all(r["x"] == "pagerank" and r["lost"] == r["doubled"] == 0
                          for r in killed)
    assert sum(r["kills"] for r in killed) >= 1, "the rounds outran the nemesis: no kill"


def test_a_worker_crash_is_marked_on_the_timeline(tmp_path):
    """faults.job with workers crashing: each crash is an event, the table still exact."""
    d = tmp_path / "c"
    corpora.generate(d, 8, 64 * 1024, seed=2)
    doc = faults.job(d, tmp_path / "counts.tsv", crash_prob=0.3)
    crashed = [e for e in doc["events"] if e[1] == "worker crashed"]
    assert doc["crashes"] == len(crashed) > 0 and doc["check"]["ok"]
    assert report.event_kind(crashed[0][1]) == ("worker crashed", "black")
    assert report.event_kind("node 2 paused")[0] == "paused (SIGSTOP)"
    assert report.event_kind("leader elected: node 3")[0] == "leader elected"


def test_a_real_text_corpus_is_the_text_files_given_replicated(tmp_path):
    """--text: E1's real-text corpus is made of the files given (whole copies, the last cut
    after a line), and the setup says so; none given and none installed: the synthetic
    corpus, with a note."""
    src = tmp_path / "in.txt"
    src.write_text("In the beginning was the Word,\nand the Word was with God.\n")
    ctx = core.Context(tmp_path / "w", tiny=True, texts=[str(src)])
    path = ctx.real_text(2, 1000)
    files = sorted(path.iterdir())
    assert len(files) == 2 and "in.txt" in ctx.real_what
    body = files[0].read_bytes()
    assert body.startswith(src.read_bytes() * 10) and body.endswith(b"\n")
    assert 1000 - len(src.read_bytes()) < len(body) <= 1000
    ctx = core.Context(tmp_path / "w2", tiny=True)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(corpora, "public_domain_text", lambda into: None)
        ctx.real_text(2, 1000)
    assert ctx.real_what.startswith("the synthetic corpus")


def test_replicate_never_splits_a_word_and_refuses_empty_text(tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(b"alpha beta gamma")  # no final newline: one is added
    paths = corpora.replicate([src], tmp_path / "o", 1, 40)
    assert paths[0].read_bytes() == b"alpha beta gamma\nalpha beta gamma\n"
    (tmp_path / "empty.txt").write_bytes(b" \n")
    with pytest.raises(ValueError, match="no text"):
        corpora.replicate([tmp_path / "empty.txt"], tmp_path / "o2", 1, 40)
    r = wc("corpus", str(tmp_path / "o3"), "--from", str(tmp_path / "nope.txt"), "--files",
           "1", "--size", "1KiB")
    assert r.returncode == 2 and "--from" in r.stderr and "not a readable file" in r.stderr


def test_scale_for_multiplies_one_experiments_sizes(tmp_path):
    r = wc("experiment", "E6", "--tiny", "-q", "--scale-for", "E9=3", "--no-report",
           "--results", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"), "--repeat", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r" / "E6.json").read_text())["params"]["scale"] == 1.0
    bad = wc("experiment", "E6", "--scale-for", "E99=2")
    assert bad.returncode == 2 and "E99=2" in bad.stderr
    ctx = core.Context(tmp_path, scale=2.0, scales={"E6": 4.0})
    exp = core.Experiment("E6", "t", "q", "x", lambda c: [], lambda c, x: tmp_path, [],
                          lambda d: "", setup=lambda c: f"{c.size(100, 1)} bytes")
    assert core.run(exp, ctx)["setup"] == "800 bytes" and ctx.scale == 2.0


def test_an_experiment_that_cannot_run_here_is_skipped_with_its_reason(tmp_path):
    exp = core.Experiment("E20", "t", "q?", "x", lambda c: [1], lambda c, x: tmp_path, [],
                          lambda d: "", requires=lambda c: "RedisRaft is not built")
    doc = report.validate(core.run(exp, core.Context(tmp_path, say=lambda s: None)))
    assert doc["skipped"] == "RedisRaft is not built" and doc["runs"] == []
    assert "**Skipped** on this machine: RedisRaft is not built." in report.markdown(
        [doc], {}, "experiments")


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


def _redis_servers() -> set[int]:
    """The redis-server processes on this machine now."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "redis-server":
                    out.append(int(d.name))
            except OSError:
                continue
    return set(out)


def test_sigterm_mid_experiment_stops_its_redis_and_commands(tmp_path):
    """`wordcount experiment` stopped by SIGTERM (a supervisor, `timeout`) mid-run: it exits
    saying so, and leaves no redis-server of its own behind (the fault experiments start
    theirs in-process, the runs theirs in child commands)."""
    before = _redis_servers()
    proc = wc_bg("experiment", "E13", "E2", "--tiny", "-q", "--no-report", "--results",
                 str(tmp_path / "r"), "--workdir", str(tmp_path / "w"))
    deadline = time.monotonic() + 60
    while not (_redis_servers() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _redis_servers() - before, "no run started a Redis within 60 s"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "stopped by SIGTERM" in err, err[-2000:]
    deadline = time.monotonic() + 10  # (a stopped server may take a moment to be reaped)
    while (_redis_servers() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (_redis_servers() - before), "redis-server left running after SIGTERM"
