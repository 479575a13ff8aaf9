"""The soak harness (wordcount.lab.soak): its schedule is a pure function of the seed, its checker
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

from wordcount.lab import soak

# Run i of the bounded soak: seed FIRST_SEED + i, atomic and staged in turn. Chosen (the first
# 10 consecutive seeds that do) so that the drawn plans hold every move of soak.MOVES, every
# mid-submission fault, every kind of input change, a pause of the leader and of a follower, a
# second job on either queue, a mapped data root, a clock hours off, a re-plan on both paths,
# an aimed kill, a late kill and a hidden file (asserted below, so a change of the generator
# cannot make this test quietly weaker).
FIRST_SEED = 3440
RUNS = 10
ONE_PHASE = ("atomic", "staged")  # the paths of these seeds (the shuffle path has its own below)


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
    # the shuffle path's (none on the others)
    f |= {f"reduce-{x.kind}" for x in plan.reduce_faults}
    f |= {"aimed-reduce"} if any(x.aimed for x in plan.reduce_faults) else set()
    if plan.reduces:
        f.add("staged-reduces" if plan.commit_pairs else "atomic-reduces")
        if {x.kind for x in plan.faults + plan.reduce_faults} & {"client2", "fresh"} \
                or plan.mid_submit == "fresh":
            f.add("client-same-R" if plan.client_reduces == plan.reduces else
                  "client-other-R" if plan.client_reduces else "client-atomic")
        if plan.job2 is not None:
            f.add("job2-shuffle" if plan.job2_reduces else "job2-one-phase")
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
        # the shuffle path: the same workload and schedule, and its own (R, the reduce phase)
        shuffle = soak.draw_plan(seed, "shuffle")
        assert 1 <= shuffle.reduces <= soak.MAX_REDUCES
        assert shuffle.commit_pairs in (None, staged.commit_pairs)
        assert all(f.phase == "reduce" for f in shuffle.reduce_faults)
        assert [f for f in shuffle.faults if f.kind != "requeue"] \
            == [f for f in staged.faults if f.kind != "requeue"]
        same = {"commit_path", "commit_pairs", "faults", "reduces", "client_reduces",
                "job2_reduces", "reduce_faults"}
        assert {k: v for k, v in shuffle.__dict__.items() if k not in same} \
            == {k: v for k, v in staged.__dict__.items() if k not in same}
        for one_phase in (atomic, staged):
            assert (one_phase.reduces, one_phase.client_reduces, one_phase.job2_reduces,
                    one_phase.reduce_faults, one_phase.client_args()) \
                == (0, 0, 0, (), ["--commit", "atomic"])  # (the default is the shuffle)
    plans = {soak.draw_plan(seed, "staged") for seed in range(50)}
    assert len(plans) == 50
    with pytest.raises(ValueError):
        soak.draw_plan(1, "per-word")


def test_the_one_phase_plans_of_a_seed_are_what_they_were_before_the_shuffle_path():
    """The shuffle path's values are drawn after all others: an atomic or staged seed (the
    bounded seeds below, a failure's replay command) is still the plan it was (the apps move,
    from a generator of its own, may be added; nothing else changes)."""
    import dataclasses

    plan = soak.draw_plan(3441, "staged")
    plan = dataclasses.replace(plan, faults=tuple(f for f in plan.faults if f.kind != "apps"))
    lines = plan.describe().splitlines()
    assert lines[0] == "seed 3441, staged path (--commit-pairs 50)"
    assert lines[3] == (
        "snapshots: only the scheduled ones; faults: kill@0.20+0.37s down 0.41s, "
        "save@0.47+0.19s, save+aimed-kill@0.52+0.55s down 0.24s, fresh(same-queue)@0.76+0.12s, "
        "save+aimed-kill@0.77+0.54s down 0.07s")


def test_shuffle_plans_cover_the_reduce_phase_and_both_client_modes():
    kinds: Counter[str] = Counter()
    for seed in range(300):
        plan = soak.draw_plan(seed, "shuffle")
        kinds.update(f"reduce-{f.kind}" for f in plan.reduce_faults)
        kinds["aimed-reduce"] += any(f.aimed for f in plan.reduce_faults)
        kinds[f"R{plan.reduces}"] += 1
        kinds["staged-reduces" if plan.commit_pairs else "atomic-reduces"] += 1
        kinds["client-same-R" if plan.client_reduces == plan.reduces else
              "client-atomic" if not plan.client_reduces else "client-other-R"] += 1
        if plan.job2 is not None:
            kinds["job2-shuffle" if plan.job2_reduces else "job2-one-phase"] += 1
        assert plan.client_args()[:2] == (["--commit", "shuffle"] if plan.client_reduces
                                          else ["--commit", "atomic"])
        requeues = [f for f in plan.faults + plan.reduce_faults if f.kind == "requeue"]
        assert len(requeues) == (plan.hide_file is not None)
        assert "reduce phase: " in plan.describe() and f"R={plan.reduces}" in plan.describe()
    assert all(kinds[f"R{r}"] for r in range(1, soak.MAX_REDUCES + 1)), kinds
    assert all(kinds[f"reduce-{k}"] for k in (*soak._REDUCE_ODDS, "requeue")), kinds
    assert all(kinds[k] for k in ("aimed-reduce", "staged-reduces", "atomic-reduces",
                                  "client-same-R", "client-atomic", "client-other-R",
                                  "job2-shuffle", "job2-one-phase")), kinds


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
    plans = [soak.draw_plan(FIRST_SEED + i, ONE_PHASE[i % 2]) for i in range(RUNS)]
    covered = set().union(*(features(p) for p in plans))
    assert EVERY_FEATURE <= covered, EVERY_FEATURE - covered


def test_a_hidden_file_comes_with_a_requeue_fault():
    for seed in range(100):
        for path in ("staged", "shuffle"):
            plan = soak.draw_plan(seed, path)
            requeues = [f for f in plan.faults + plan.reduce_faults if f.kind == "requeue"]
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
    assert soak.main(["--runs", "4", "--seed", "7", "--workdir", str(tmp_path)]) \
        == soak.EXIT_SOAK_FAILED
    assert calls == [(7, "atomic"), (8, "staged"), (9, "shuffle"), (10, "atomic")]
    out = capsys.readouterr().out
    assert "4 runs (2 atomic, 1 staged, 1 shuffle): 3 passed, 1 failed" in out
    assert "FAILED seed 8 (staged): counts differ" in out
    assert "-m wordcount.lab.soak --runs 1 --seed 8 --path staged --keep" in out
    calls.clear()
    assert soak.main(["--runs", "2", "--seed", "1", "--path", "atomic",
                      "--workdir", str(tmp_path)]) == 0
    assert calls == [(1, "atomic"), (2, "atomic")]
    calls.clear()  # `both` (make soak's) is every path, as `all` is
    assert soak.main(["--runs", "3", "--seed", "1", "--path", "both",
                      "--workdir", str(tmp_path)]) == 0
    assert calls == [(1, "atomic"), (2, "staged"), (3, "shuffle")]
    calls.clear()
    assert soak.main(["--runs", "1", "--seed", "8", "--path", "shuffle",
                      "--workdir", str(tmp_path)]) == soak.EXIT_SOAK_FAILED
    out = capsys.readouterr().out
    assert "-m wordcount.lab.soak --runs 1 --seed 8 --path shuffle --keep" in out
    # the lead registers it as `wordcount soak`
    parser = argparse.ArgumentParser()
    soak.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["soak", "--runs", "4", "--path", "staged", "--keep"])
    assert (args.runs, args.path, args.keep, args.handler) == (4, "staged", True, soak.cmd_soak)


def test_plan_only_prints_the_schedule(capsys):
    assert soak.main(["--plan-only", "--runs", "3", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "seed 5, atomic path" in out and "seed 6, staged path (--commit-pairs" in out
    assert "seed 7, shuffle path (R=" in out and "reduce phase: " in out
    assert "faults: " in out


@pytest.mark.slow
@pytest.mark.long  # make test-long (make test stays under ~30 min)
@pytest.mark.timeout(420)
def test_bounded_soak_passes_and_the_nemesis_did_something(tmp_path):
    out = io.StringIO()
    started = time.monotonic()
    summary = soak.run_many(RUNS, FIRST_SEED, ONE_PHASE, workdir=tmp_path, timeout_s=120,
                            out=out)
    assert len(summary.reports) == RUNS
    assert summary.ok, f"{len(summary.failures)} of {RUNS} soak runs failed:\n{out.getvalue()}"
    plans = {FIRST_SEED + i: (soak.draw_plan(FIRST_SEED + i, ONE_PHASE[i % 2]),
                              ONE_PHASE[i % 2]) for i in range(RUNS)}

    def missed(reports):  # the seeds that planned a move no run has fired yet
        fired = {k for r in reports for k in r.moves}
        return [s for s, (plan, _) in plans.items()
                if {f.kind for f in plan.faults} - fired & set(soak.MOVES)]
    summary = _again(summary, missed, lambda s: plans[s][1], tmp_path, out, timeout_s=120)
    text = out.getvalue()
    print(text, f"({time.monotonic() - started:.0f} s)")
    # never vacuous: the faults really happened, in the middle of jobs
    assert summary.total("kills_mid") > 0, text
    assert summary.total("crashes") > 0, text
    assert summary.total("replan") >= 1, text
    assert summary.total("snapshots") > 0, text
    assert summary.total("requeued") >= 1, text  # dead letters requeued under faults
    assert {r.commit_path for r in summary.reports if r.kills_mid} == set(ONE_PHASE), text
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
    lease = set().union(*(features(soak.draw_plan(LEASE_SEED + i, ONE_PHASE[i % 2]))
                          for i in range(4)))
    assert {"mid-rollback", "mid-delete", "change", "delete-cut", "cancel",
            "fresh-other-queue", "skew", "job2-other", "mapped"} <= lease, lease
    raft = set().union(*(features(soak.draw_plan(RAFT_SEED + i, ONE_PHASE[i % 2]))
                         for i in range(4)))
    assert {"pause-redis-leader", "pause-redis-follower", "pause-worker", "mid-wipe", "change",
            "delete", "cancel", "fresh", "client2", "replan-atomic", "replan-staged"} <= raft


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bounded_soak_on_the_lease_queue(tmp_path):
    """The same harness with every main job on the lease queue (no streams), on one Redis."""
    out = io.StringIO()
    summary = soak.run_many(4, LEASE_SEED, ONE_PHASE, workdir=tmp_path, timeout_s=120,
                            out=out, queue="lease")
    text = out.getvalue()
    print(text)
    assert summary.ok, f"{len(summary.failures)} of 4 lease-queue soak runs failed:\n{text}"
    assert summary.total("kills_mid") > 0 and summary.total("crashes") > 0, text
    assert summary.loud_line(), text


@pytest.mark.slow
@pytest.mark.long  # make test-long (make test stays under ~30 min)
@pytest.mark.timeout(500)
def test_bounded_soak_on_redisraft(tmp_path, raft_binaries):
    """The harness on three RedisRaft nodes: node kills and pauses (the leader or another)
    instead of rollbacks, worker crashes, pauses, stalls, backups, re-plans, operators;
    nothing may roll back."""
    out = io.StringIO()
    summary = soak.run_many(4, RAFT_SEED, ONE_PHASE, workdir=tmp_path, timeout_s=150,
                            out=out, raft=True)
    text = out.getvalue()
    print(text)
    assert summary.ok, f"{len(summary.failures)} of 4 RedisRaft soak runs failed:\n{text}"
    assert summary.total("kills_mid") >= 4 and summary.total("replan") >= 1, text
    assert summary.total("snapshots") == 0  # no rollbacks on Raft: nothing to snapshot
    assert sum(r.moves.get("pause-redis", 0) for r in summary.reports) >= 2, text


# The shuffle path (--commit shuffle): a few seeds per backend, ~60 s in all here, chosen as the
# others were (asserted below): together they hold the reduce phase's own moves -- a hidden
# file's maps requeued there, so that they commit LATE (on every backend); a worker paused
# holding a reduce; kills and node kills, some aimed at a staged reduce commit; a wipe; a
# cancel and a delete -- reduces committed in one call and staged, second clients of the job's
# R, of another R and of the other mode (atomic), a second job of either mode. Two open issues
# found by the soak campaign are left out of these seeds (asserted below) until they are fixed:
# a rollback to the map phase under a LATE commit (the worker exits on WCPHASE), and a job
# re-created under the epoch it had by a client of another R after a wipe (workers keep the R
# they read for that epoch: WCPHASE, or reduces dead-lettered as damaged pieces).
SHUFFLE_SEEDS = (1847, 26530, 26528)  # stream queue
SHUFFLE_LEASE_SEEDS = (472, 6505)
SHUFFLE_RAFT_SEEDS = (1847, 4942)


def test_the_shuffle_seeds_schedule_what_they_claim():
    def covered(seeds):
        return set().union(*(features(soak.draw_plan(s, "shuffle")) for s in seeds))
    stream, lease, raft = (covered(SHUFFLE_SEEDS), covered(SHUFFLE_LEASE_SEEDS),
                           covered(SHUFFLE_RAFT_SEEDS))
    assert {"reduce-requeue", "reduce-pause-worker", "reduce-kill", "aimed-reduce",
            "reduce-snapshot", "reduce-cancel", "reduce-delete", "staged-reduces",
            "atomic-reduces", "client-atomic", "client-other-R", "job2-shuffle",
            "hide"} <= stream, stream
    assert {"reduce-requeue", "reduce-pause-worker", "aimed-reduce", "staged-reduces",
            "client-same-R", "client-atomic", "job2-one-phase"} <= lease, lease
    assert {"reduce-requeue", "reduce-wipe", "aimed-reduce", "reduce-pause-redis",
            "staged-reduces", "client-atomic", "mid-wipe"} <= raft, raft
    for seed in (*SHUFFLE_SEEDS, *SHUFFLE_LEASE_SEEDS):  # (the open issues, above)
        plan = soak.draw_plan(seed, "shuffle")
        kinds = [f.kind for f in plan.reduce_faults]
        assert "requeue" not in kinds or not {"kill", "wipe"} & set(
            kinds[kinds.index("requeue"):]), seed
        moves = [f.kind for f in plan.faults + plan.reduce_faults]
        clients = [i for i, k in enumerate(moves) if k in ("client2", "fresh")]
        if plan.client_reduces not in (0, plan.reduces) and clients:
            assert "wipe" not in moves[clients[0]:] and plan.mid_submit != "wipe", seed


def _again(summary: soak.SoakSummary, missed, path_of, tmp_path, out, tries: int = 5,
           **kwargs) -> soak.SoakSummary:
    """A move is drawn at a point of its job's progress (and a delay after the move before it):
    it fires only if the job is still running then, so a run on a machine faster or slower
    than usual can end before it. The seeds ``missed(reports)`` names (those whose planned
    moves no run has fired yet) run again, at most ``tries`` times each; every run must pass.
    (5: seed 3445's 12-task job ends before its aimed kill, and so before every later move,
    in about one run of two, here and before the last changes alike: 2 tries missed in 1 run
    of 8.)
    Returns the summary of all the runs."""
    reports = list(summary.reports)
    for _ in range(tries):
        seeds = missed(reports)
        if not seeds:
            break
        print(f"again (a planned move did not fire): seeds {seeds}", file=out)
        for seed in seeds:
            more = soak.run_many(0, 0, (path_of(seed),), workdir=tmp_path, out=out,
                                 seeds=[seed], **kwargs)
            assert more.ok, f"seed {seed} failed when run again:\n{out.getvalue()}"
            reports += more.reports
    return soak.SoakSummary(reports)


def _shuffle_soak(seeds, tmp_path, **kwargs) -> tuple[soak.SoakSummary, str]:
    out = io.StringIO()
    summary = soak.run_many(0, 0, ("shuffle",), workdir=tmp_path, out=out, seeds=seeds, **kwargs)
    assert len(summary.reports) == len(seeds)
    assert summary.ok, (f"{len(summary.failures)} of {len(seeds)} shuffle soak runs "
                        f"failed:\n{out.getvalue()}")
    # never vacuous: moves landed in every seed's reduce phase (those that missed it, run again)
    summary = _again(summary, lambda reports: [s for s in seeds if not any(
        r.seed == s and r.reduce_moves for r in reports)], lambda s: "shuffle", tmp_path, out,
        **kwargs)
    text = out.getvalue()
    print(text)
    assert all(r.reduces for r in summary.reports), text
    assert summary.total("kills_mid") > 0 and summary.total("crashes") > 0, text
    assert {r.seed for r in summary.reports if r.reduce_moves} == set(seeds), text
    assert summary.total("late_maps") > 0, text  # maps committed after the reduce phase began
    return summary, text


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("queue", ["stream", "lease"])
def test_bounded_shuffle_soak(tmp_path, queue):
    """Shuffle jobs under the whole nemesis, on one Redis: rollbacks into and out of the reduce
    phase, reduces backed up and committed twice, late maps, clients of other modes."""
    seeds = SHUFFLE_SEEDS if queue == "stream" else SHUFFLE_LEASE_SEEDS
    summary, text = _shuffle_soak(seeds, tmp_path, timeout_s=120, queue=queue)
    assert summary.total("clients") >= 1, text
    if queue == "stream":  # (a cancel and a delete in the reduce phase)
        assert summary.loud_line(), text
    assert not list(tmp_path.iterdir()), "a run left its directory behind"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bounded_shuffle_soak_on_redisraft(tmp_path, raft_binaries):
    """Shuffle jobs on three RedisRaft nodes: node kills and pauses in the reduce phase, late
    maps; nothing rolls back."""
    summary, text = _shuffle_soak(SHUFFLE_RAFT_SEEDS, tmp_path, timeout_s=150, raft=True)
    assert summary.total("snapshots") == 0, text


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
