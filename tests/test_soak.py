"""The soak harness (wordcount.soak): its schedule is a pure function of the seed, its checker
tells exact from wrong and loud from silent, and a bounded soak (10 seeded runs, real
redis-server, worker and client processes on loopback) must pass while the nemesis demonstrably
did every kind of thing: Redis killed, wiped, paused and rolled back mid-job and mid-submission,
workers crashed and paused, jobs cancelled, deleted (also by a Ctrl-C'd delete), re-planned and
replaced by other clients, inputs changed, two jobs at once, mapped data roots, clocks hours
off."""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections import Counter

import pytest

from wordcount import soak

# Run i of the bounded soak: seed FIRST_SEED + i, atomic and staged in turn. Chosen (the first
# 10 consecutive seeds that do) so that the drawn plans hold every move of soak.MOVES, every
# mid-submission fault, every kind of input change, a pause of the leader and of a follower, a
# second job on either queue, a mapped data root, a clock hours off, a re-plan on both paths,
# an aimed kill, a late kill and a hidden file (asserted below, so a change of the generator
# cannot make this test quietly weaker).
FIRST_SEED = 3440
RUNS = 10


def features(plan: soak.RunPlan) -> set[str]:
    """What a plan exercises, by name (moves, and the plan's other dimensions)."""
    f = {x.kind for x in plan.faults}
    f |= {f"mid-{plan.mid_submit}"} if plan.mid_submit else set()
    if plan.job2 is not None:
        f.add("job2-other" if plan.job2_other_queue else "job2-same")
    f |= {"mapped"} if plan.mapped else set()
    f |= {"skew"} if any(plan.skews_ms) else set()
    f |= {"aimed"} if any(x.aimed for x in plan.faults) else set()
    f |= {"late"} if plan.late_kill else set()
    f |= {"hide"} if plan.hide_file is not None else set()
    f |= {f"replan-{plan.commit_path}"} if plan.replan else set()
    f |= {f"{x.kind}-{x.how}" for x in plan.faults if x.how}
    return f


EVERY_FEATURE = (set(soak.MOVES) | {f"mid-{k}" for k in soak.MID_SUBMIT}
                 | {f"change-{c}" for c in soak.CHANGES}
                 | {"pause-redis-leader", "pause-redis-follower", "fresh-same-queue",
                    "fresh-other-queue", "job2-other", "job2-same",
                    "mapped", "skew", "aimed", "late", "hide", "replan-atomic",
                    "replan-staged"})


def test_the_schedule_is_a_function_of_the_seed():
    for seed in range(50):
        for path in soak.PATHS:
            assert soak.draw_plan(seed, path) == soak.draw_plan(seed, path)
            assert soak.draw_plan(seed, path).describe() == soak.draw_plan(seed, path).describe()
        atomic, staged = soak.draw_plan(seed, "atomic"), soak.draw_plan(seed, "staged")
        # one seed is one workload and one schedule on both paths; only the commit path differs
        assert atomic.commit_pairs is None and staged.commit_pairs is not None
        assert atomic == staged.__class__(**{**staged.__dict__, "commit_path": "atomic",
                                             "commit_pairs": None})
        assert "--commit-pairs" in staged.worker_args()
        assert "--commit-pairs" not in atomic.worker_args()
    plans = {soak.draw_plan(seed, "staged") for seed in range(50)}
    assert len(plans) == 50
    with pytest.raises(ValueError):
        soak.draw_plan(1, "per-word")


def test_drawn_plans_are_valid_and_cover_every_fault():
    kinds: Counter[str] = Counter()
    for seed in range(200):
        plan = soak.draw_plan(seed, "staged")
        kinds.update(f.kind for f in plan.faults)
        kinds.update(["aimed"] * sum(f.aimed for f in plan.faults))
        kinds["late"] += plan.late_kill
        assert any(f.kind in ("kill", "wipe") for f in plan.faults)
        assert all(0 <= f.at_fraction < 1 and f.delay_s >= 0 for f in plan.faults)
        assert plan.chunk_size >= 20_000 and 2 <= plan.workers <= 4
        assert (plan.replan is None) == (not any(f.kind == "replan" for f in plan.faults))
        if plan.replan == "rechunk":
            assert plan.chunk_size2 != plan.chunk_size
        if plan.replan == "corpus":
            assert plan.corpus2 is not None
    assert all(kinds[k] > 0 for k in ("snapshot", "kill", "wipe", "replan", "aimed", "late"))
    assert all(kinds[k] > 0 for k in soak.MOVES)


def test_a_replans_snapshot_replan_and_kill_stay_together():
    """The moves drawn later are inserted in fraction order, never between a re-plan's
    snapshot, the re-plan and the kill right after it (which brings the old plan back)."""
    for seed in range(300):
        faults = soak.draw_plan(seed, "atomic").faults
        for i, f in enumerate(faults):
            if f.kind == "replan" and i and faults[i - 1].kind == "snapshot" \
                    and faults[i - 1].at_fraction == f.at_fraction and faults[i - 1].delay_s == 0:
                assert faults[i + 1].kind == "kill" and faults[i + 1].at_fraction == 0.0, seed


def test_the_bounded_seeds_schedule_every_kind_of_fault():
    plans = [soak.draw_plan(FIRST_SEED + i, soak.PATHS[i % 2]) for i in range(RUNS)]
    covered = set().union(*(features(p) for p in plans))
    assert EVERY_FEATURE <= covered, EVERY_FEATURE - covered


def test_a_hidden_file_comes_with_a_requeue_fault():
    for seed in range(100):
        plan = soak.draw_plan(seed, "staged")
        requeues = [f for f in plan.faults if f.kind == "requeue"]
        assert len(requeues) == (plan.hide_file is not None)
        if requeues:
            assert "restored and requeued" in plan.describe()


def test_a_second_clients_table_must_be_one_state_of_the_inputs(tmp_path):
    """The checker's rule for a second client: its table is the oracle of one state of the
    inputs that existed while it ran, never a mix of two versions of a file."""
    files = soak.Files()
    a, b = tmp_path / "in" / "a.txt", tmp_path / "in" / "b.txt"
    a.parent.mkdir()
    a.write_bytes(b"one two\n")
    b.write_bytes(b"three\n")
    files.record([a, b])
    t1 = time.monotonic()
    a.write_bytes(b"ONE TWO TWO\n")
    files.record([a])
    t2 = time.monotonic()
    states = files.between(t1 - 1, t2, tmp_path / "in")
    assert len(states) == 2
    tables = {soak.tsv(soak.oracle_of(s)) for s in states}
    assert soak.tsv(Counter({"one": 1, "two": 1, "three": 1})) in tables
    assert soak.tsv(Counter({"one": 1, "two": 2, "three": 1})) in tables
    mixed = Counter({"one": 2, "two": 3, "three": 1})  # both versions of a.txt counted
    assert soak.tsv(mixed) not in tables
    assert len(files.between(t2 + 1, t2 + 2, tmp_path / "in")) == 1  # only the last one


def test_checker_reports_differences():
    expected = Counter({"a": 3, "b": 2, "c": 1})
    assert soak.tsv(expected) == "a\t3\nb\t2\nc\t1\n"
    got = Counter({"a": 3, "b": 1, "d": 4})
    text = soak.diff_summary(got, expected)
    assert text.startswith("3 of 3 words differ (2 undercounted of which 1 missing, "
                           "1 overcounted of which 1 unexpected)")
    assert "total 8 vs 6 expected (+2)" in text


def test_cli_exit_status_and_replay_command(monkeypatch, capsys, tmp_path):
    calls = []

    def fake_run_one(seed, commit_path, workdir, timeout_s=0.0, keep=False, **_):
        calls.append((seed, commit_path))
        ok = seed != 8
        return soak.RunReport(seed=seed, commit_path=commit_path, ok=ok,
                              reason="" if ok else "counts differ from the oracle")

    monkeypatch.setattr(soak, "run_one", fake_run_one)
    assert soak.main(["--runs", "3", "--seed", "7", "--workdir", str(tmp_path)]) \
        == soak.EXIT_SOAK_FAILED
    assert calls == [(7, "atomic"), (8, "staged"), (9, "atomic")]
    out = capsys.readouterr().out
    assert "3 runs (2 atomic, 1 staged): 2 passed, 1 failed" in out
    assert "FAILED seed 8 (staged): counts differ" in out
    assert "-m wordcount.soak --runs 1 --seed 8 --path staged --keep" in out
    calls.clear()
    assert soak.main(["--runs", "2", "--seed", "1", "--path", "atomic",
                      "--workdir", str(tmp_path)]) == 0
    assert calls == [(1, "atomic"), (2, "atomic")]
    # the lead registers it as `wordcount soak`
    parser = argparse.ArgumentParser()
    soak.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["soak", "--runs", "4", "--path", "staged", "--keep"])
    assert (args.runs, args.path, args.keep, args.handler) == (4, "staged", True, soak.cmd_soak)


def test_plan_only_prints_the_schedule(capsys):
    assert soak.main(["--plan-only", "--runs", "2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "seed 5, atomic path" in out and "seed 6, staged path (--commit-pairs" in out
    assert "faults: " in out


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bounded_soak_passes_and_the_nemesis_did_something(tmp_path):
    out = io.StringIO()
    started = time.monotonic()
    summary = soak.run_many(RUNS, FIRST_SEED, soak.PATHS, workdir=tmp_path, timeout_s=120,
                            out=out)
    text = out.getvalue()
    print(text, f"({time.monotonic() - started:.0f} s)")
    assert len(summary.reports) == RUNS
    assert summary.ok, f"{len(summary.failures)} of {RUNS} soak runs failed:\n{text}"
    # never vacuous: the faults really happened, in the middle of jobs
    assert summary.total("kills_mid") > 0, text
    assert summary.total("crashes") > 0, text
    assert summary.total("replan") >= 1, text
    assert summary.total("snapshots") > 0, text
    assert summary.total("requeued") >= 1, text  # dead letters requeued under faults
    assert {r.commit_path for r in summary.reports if r.kills_mid} == set(soak.PATHS), text
    fired = {k for r in summary.reports for k in r.moves}
    assert set(soak.MOVES) <= fired, set(soak.MOVES) - fired  # every move, at least once
    assert summary.total("clients") >= 1 and any(r.jobs > 1 for r in summary.reports), text
    assert summary.loud_line(), text  # some move ended a client's wait loudly, and it recovered
    assert not list(tmp_path.iterdir()), "a run left its directory behind"


# Seeds of the lease-queue and RedisRaft runs (4 each), chosen as FIRST_SEED was: the lease
# runs hold a mid-submission rollback and delete, a change, a Ctrl-C'd delete, a cancel,
# another client's --fresh on the other queue, a clock hours off, a second job (on the stream
# queue: both queues at once), a mapped data root; the RedisRaft runs a paused leader and a
# paused follower, a paused worker, a mid-submission node kill, a change, a delete, a cancel,
# other clients, re-plans on both paths.
LEASE_SEED = 443
RAFT_SEED = 13664


def test_the_lease_and_raft_seeds_schedule_what_they_claim():
    lease = set().union(*(features(soak.draw_plan(LEASE_SEED + i, soak.PATHS[i % 2]))
                          for i in range(4)))
    assert {"mid-rollback", "mid-delete", "change", "delete-cut", "cancel",
            "fresh-other-queue", "skew", "job2-other", "mapped"} <= lease, lease
    raft = set().union(*(features(soak.draw_plan(RAFT_SEED + i, soak.PATHS[i % 2]))
                         for i in range(4)))
    assert {"pause-redis-leader", "pause-redis-follower", "pause-worker", "mid-wipe", "change",
            "delete", "cancel", "fresh", "client2", "replan-atomic", "replan-staged"} <= raft


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bounded_soak_on_the_lease_queue(tmp_path):
    """The same harness with every main job on the lease queue (no streams), on one Redis."""
    out = io.StringIO()
    summary = soak.run_many(4, LEASE_SEED, soak.PATHS, workdir=tmp_path, timeout_s=120,
                            out=out, queue="lease")
    text = out.getvalue()
    print(text)
    assert summary.ok, f"{len(summary.failures)} of 4 lease-queue soak runs failed:\n{text}"
    assert summary.total("kills_mid") > 0 and summary.total("crashes") > 0, text
    assert summary.loud_line(), text


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_bounded_soak_on_redisraft(tmp_path, raft_binaries):
    """The harness on three RedisRaft nodes: node kills and pauses (the leader or another)
    instead of rollbacks, worker crashes, pauses, stalls, backups, re-plans, operators;
    nothing may roll back."""
    out = io.StringIO()
    summary = soak.run_many(4, RAFT_SEED, soak.PATHS, workdir=tmp_path, timeout_s=150,
                            out=out, raft=True)
    text = out.getvalue()
    print(text)
    assert summary.ok, f"{len(summary.failures)} of 4 RedisRaft soak runs failed:\n{text}"
    assert summary.total("kills_mid") >= 4 and summary.total("replan") >= 1, text
    assert summary.total("snapshots") == 0  # no rollbacks on Raft: nothing to snapshot
    assert sum(r.moves.get("pause-redis", 0) for r in summary.reports) >= 2, text


def test_a_loud_failure_needs_a_move_that_causes_it(tmp_path):
    """The checker never takes a loud failure for granted: exit 8/9/3/2 of the main client is
    allowed only after a cancel, a delete, an input change, another client's plan; a second
    client's failure only after such a move while it ran."""
    plan = soak.draw_plan(1, "atomic")
    report = soak.RunReport(seed=1, commit_path="atomic")
    run = soak._Run(plan, tmp_path, report, 10, None, False)

    class Pool:
        procs: list = []

        def tend(self) -> None:
            pass
    run.nemesis = soak.Nemesis(plan, type("S", (), {"port": 1, "password": "x"})(), None,
                               Pool(), report, time.monotonic(), raft=True)
    with pytest.raises(soak.RunFailed, match="no move that causes it"):
        run.allow(soak.JobDeletedError("deleted"), ("delete", "delete-cut", "mid-delete"))
    run.nemesis.moved("cancel")
    with pytest.raises(soak.RunFailed, match="no move that causes it"):
        run.allow(soak.JobDeletedError("deleted"), ("delete", "delete-cut", "mid-delete"))
    run.allow(soak.JobCancelledError("cancelled"), ("cancel",))  # explained: recovered
    assert report.loud == {"JobCancelledError": 1}
    for _ in range(soak.MAX_RECOVERIES):
        with contextlib.suppress(soak.RunFailed):
            run.allow(soak.JobCancelledError("again"), ("cancel",))
    with pytest.raises(soak.RunFailed, match="livelock"):
        run.allow(soak.JobCancelledError("again"), ("cancel",))


def test_a_rewrite_changes_the_table_and_keeps_the_size():
    """The change move's rewrite must change what is counted (a case change would not: the word
    rule lowercases) and keep the size and the whitespace (a same-size rewrite in place)."""
    from wordcount.words import reference_counts

    data = "Hello wörld, the quick brown fox\n".encode()
    rewritten = data.translate(soak._ROT13)
    assert len(rewritten) == len(data)
    assert [i for i, b in enumerate(data) if b in b" \n"] == \
        [i for i, b in enumerate(rewritten) if b in b" \n"]
    assert reference_counts(rewritten) != reference_counts(data)
