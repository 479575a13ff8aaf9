"""The shuffle (--commit shuffle): map outputs as R partition pieces, R reduce tasks.

Every job here is compared in full with the oracle; the failure cases are the ones the two
phases add: a worker killed between the last map commit and the first reduce, Redis restarted
from a snapshot taken between the phases (and after some reduces), a damaged partition piece,
a map requeued after the reduce phase began, and the Functions' guards."""

from __future__ import annotations

import os
import shutil
import zlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wordcount import client, functions, keys, shuffle
from wordcount.embedded import LocalCluster
from wordcount.lab.corpus import generate
from wordcount.protocol import Applied, Meta
from wordcount.worker import Worker
from wordcount.workeropts import WorkerOptions

from .conftest import assert_counts_equal, connect, oracle, save, take
from .test_edges import wc

pytestmark = pytest.mark.usefixtures("queue_kind")

R = 3


# -- the pieces (no Redis) ----------------------------------------------------------------------

WORDS = st.text(st.characters(categories=("Lu", "Ll", "Lo", "Nd", "No")), min_size=1,
                max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(WORDS, st.integers(1, 10**12), max_size=60), st.integers(1, 9))
def test_pieces_round_trip_and_every_word_lands_in_one_partition(counts, reduces):
    pieces = shuffle.pieces(counts, reduces)
    assert len(pieces) == reduces
    back: Counter[str] = Counter()
    for r, piece in enumerate(pieces):
        part = shuffle.reduce([(f"{r}:0-1", piece)], r, reduces)
        assert not set(back) & set(part)  # no word in two partitions
        back.update(part)
    assert back == Counter(counts)


def test_the_partition_of_a_word_never_changes():
    """Stable across processes, machines and versions (Python's hash() is salted): these
    values are part of the protocol."""
    words = ["the", "straße", "σοφος", "漢字", "x2", "ǅ"]
    assert [shuffle.partition_of(w, 7) for w in words] == [
        zlib.crc32(w.encode()) % 7 for w in words]
    assert [shuffle.partition_of(w, 7) for w in words] == [3, 4, 0, 3, 0, 3]


def test_a_damaged_piece_or_a_word_of_another_partition_is_refused():
    piece = shuffle.encode({"alpha": 3, "beta": 4})
    flipped = piece[:-1] + bytes([piece[-1] ^ 1])
    with pytest.raises(shuffle.CorruptPiece, match="checksum"):
        shuffle.decode(flipped, 0, 1)
    with pytest.raises(shuffle.CorruptPiece, match="header"):
        shuffle.decode(b"junk", 0, 1)
    r = shuffle.partition_of("alpha", 2)
    with pytest.raises(shuffle.CorruptPiece, match="another partition"):
        shuffle.decode(shuffle.encode({"alpha": 1}), 1 - r, 2)
    with pytest.raises(shuffle.CorruptPiece, match="piece 0:0-7"):
        shuffle.reduce([("0:0-7", flipped)], 0, 1)


# -- jobs -----------------------------------------------------------------------------------------

def _job(conn, corpus, reduces=R, chunk=100_000):
    job = client.plan_job([str(corpus)], chunk)
    job.queue = os.environ["WORDCOUNT_QUEUE"]
    job.reduces = reduces
    client.submit(conn, job)
    return job


def _meta(conn, job, field):
    return conn.client.hget(keys.meta(job.name), field)


def _work_until(conn, done, limit=1000):
    """One in-process worker takes and commits tasks, one at a time, until ``done()``."""
    w = Worker(conn.settings)
    for _ in range(limit):
        if done():
            return
        w.work_once()
        w.drain()
    raise AssertionError("the condition was never reached")


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    generate(root, 5, 150_000, skew_size=400_000, seed=11, unicode=True)
    return root


def test_a_shuffle_job_reads_what_the_one_phase_job_reads(redis_server, corpus):
    """The same table, byte for byte, and a self-check that covers both phases."""
    conn = connect(redis_server)
    job = _job(conn, corpus)
    _work_until(conn, lambda: _meta(conn, job, Meta.STATE) == "done")
    result, progress = client.result(conn, job, 0)
    assert_counts_equal(result.counts, oracle(corpus))
    assert progress.check["ok"] and progress.check["reduces"] == R
    assert progress.done == len(job.tasks) + R
    assert progress.reduced == progress.shuffled_words == progress.words
    # every partition was freed by its reduce: nothing is left of the shuffle
    assert conn.client.exists(keys.shuffle(job.name)) == 0


def test_a_worker_killed_right_after_each_commit_even_the_last_maps(redis_server, corpus):
    """--crash-at after-commit with probability 1: every worker dies right after its commit,
    the last map's too -- between the maps being done and the first reduce."""
    conn = connect(redis_server)
    job = _job(conn, corpus)
    with LocalCluster(2, redis_server, options=WorkerOptions.parse(
            ["--crash-at", "after-commit", "--crash-prob", "1", "--claim-timeout", "500"]),
            log_path=os.path.join(redis_server.directory, "workers.log")) as cluster:
        waited = cluster.wait(conn, job, timeout_s=180)
    result, progress = client.result(conn, job, 0, waited)
    # every commit was followed by its worker's crash (the pool may stop before it has seen
    # the last ones: count them in the log)
    log = open(os.path.join(redis_server.directory, "workers.log"), encoding="utf-8").read()
    assert log.count("injected crash at after-commit") >= len(job.tasks) + R, cluster.crashes
    assert_counts_equal(result.counts, oracle(corpus))
    assert progress.check["ok"]


@pytest.mark.parametrize("reduced_before", [0, 1], ids=["between-phases", "after-a-reduce"])
def test_redis_restarted_from_a_snapshot_between_or_during_the_reduces(redis_server, corpus,
                                                                      reduced_before):
    """The snapshot holds the maps done and the reduces queued (none or one committed); more
    reduces commit after it and are lost with Redis. The job still ends exact."""
    conn = connect(redis_server)
    conn.client.config_set("save", "")  # only our SAVE below
    job = _job(conn, corpus)
    _work_until(conn, lambda: _meta(conn, job, Meta.PHASE) == "reduce")
    total = len(job.tasks)
    _work_until(conn, lambda: int(_meta(conn, job, Meta.DONE)) == total + reduced_before)
    save(conn.client)
    _work_until(conn, lambda: int(_meta(conn, job, Meta.DONE)) == total + reduced_before + 1)
    redis_server.kill()
    redis_server.start()
    assert int(_meta(conn, job, Meta.DONE)) == total + reduced_before  # rolled back
    with LocalCluster(2, redis_server,
                      log_path=os.path.join(redis_server.directory, "workers.log")) as cluster:
        waited = cluster.wait(conn, job, timeout_s=120)
    result, progress = client.result(conn, job, 0, waited)
    assert_counts_equal(result.counts, oracle(corpus))
    assert progress.check["ok"] and progress.done == total + R


def test_a_damaged_piece_fails_its_reduce_by_name_and_never_a_silent_table(redis_server,
                                                                          corpus):
    conn = connect(redis_server)
    job = _job(conn, corpus)
    _work_until(conn, lambda: _meta(conn, job, Meta.PHASE) == "reduce")
    field = "1:0-2"
    piece = conn.client.hget(keys.shuffle(job.name), field).encode("utf-8", "surrogateescape")
    conn.client.hset(keys.shuffle(job.name), field, piece[:-1] + bytes([piece[-1] ^ 0x55]))
    _work_until(conn, lambda: _meta(conn, job, Meta.STATE) == "done")
    # as a user sees it: exit 3, the reduce task named, and its partition's words missing
    out = os.path.join(redis_server.directory, "counts.tsv")
    waited = wc("wait", job.name, "--counts-out", out, env=redis_server.env())
    assert waited.returncode == 3, waited.stderr
    assert "partition 1 set aside" in waited.stderr and "checksum" in waited.stderr
    result, progress = client.result(conn, job, 0)
    assert progress.check["ok"] and progress.dead == 1
    expected = Counter({w: n for w, n in oracle(corpus).items()
                        if shuffle.partition_of(w, R) != 1})
    assert_counts_equal(result.counts, expected)


def test_a_map_requeued_after_the_reduce_phase_is_counted_once(redis_server, corpus, tmp_path):
    """A dead map (its file missing) does not stop the reduces; once the file is back,
    `requeue` counts it, after the reduce phase: its counts go straight to the table."""
    from wordcount import jobs

    conn = connect(redis_server)
    job = _job(conn, corpus)
    victim = sorted(corpus.iterdir())[0]
    shutil.move(victim, tmp_path / "hidden")
    _work_until(conn, lambda: _meta(conn, job, Meta.STATE) == "done")
    result, progress = client.result(conn, job, 0)
    assert progress.dead >= 1 and result.errors
    shutil.move(tmp_path / "hidden", victim)
    assert jobs.requeue(conn, job.name) == progress.dead
    _work_until(conn, lambda: _meta(conn, job, Meta.STATE) == "done")
    result, progress = client.result(conn, job, 0)
    assert result.errors == [] and progress.check["ok"]
    assert progress.shuffled_words < progress.words  # the late map was applied directly
    assert_counts_equal(result.counts, oracle(corpus))


@pytest.mark.parametrize("commit_pairs", [50_000, 7], ids=["direct", "staged"])
def test_a_late_map_settled_before_a_reduce_is_not_overwritten(redis_server, corpus, tmp_path,
                                                               commit_pairs):
    """A reduce writes its partition's totals with ZADD, which would overwrite what a late map
    (requeued during the reduce phase) had added: a late map marks the job, and later reduces
    increment. Order forced here: the requeued map settles before any reduce ("staged": every
    commit and merge in pieces of 7 pairs)."""
    from wordcount import jobs
    from wordcount.queue import Queues
    from wordcount.words import reference_counts

    conn = connect(redis_server, commit_pairs=commit_pairs)
    job = _job(conn, corpus)
    qs = Queues(conn, "w1", conn.settings)
    victim = sorted(corpus.iterdir())[0]
    shutil.move(victim, tmp_path / "hidden")
    _work_until(conn, lambda: _meta(conn, job, Meta.PHASE) == "reduce")
    shutil.move(tmp_path / "hidden", victim)
    dead = int(_meta(conn, job, Meta.DEAD))
    assert dead and jobs.requeue(conn, job.name) == dead
    held, lates = [], []
    for _ in range(dead + R):
        c = take(conn, job.name)
        (held if c.reduce is not None else lates).append(c)
    assert len(lates) == dead and len(held) == R
    for c in lates:  # counted as a worker would, its file back
        counts = Counter()
        for t in c.task.ranges():
            with open(os.path.join(job.root, t.path), "rb") as f:
                f.seek(t.start)
                counts += reference_counts(f.read(t.end - t.start))
        assert qs.complete_map(c, counts, c.task.nbytes, 1, R) is Applied.APPLIED
    assert _meta(conn, job, Meta.LATE) == "1"
    for c in held:
        counts, maps = qs.read_partition(c, len(job.tasks), R)
        assert qs.complete(c, counts, 0, 1, consumed=maps) is Applied.APPLIED
    qs.finish_merges([job.name])
    result, progress = client.result(conn, job, 0)
    assert result.errors == [] and progress.check["ok"]
    assert_counts_equal(result.counts, oracle(corpus))


def test_the_functions_guard_both_phases(redis_server, corpus):
    """A plain commit of a map in the map phase is refused (its words would miss the
    reduces); a reduce held across a rollback to the map phase is stale; a reduce whose
    partition is not what it read is told to read it again; a map after the map phase is
    late."""
    from wordcount.exceptions import PhaseError

    conn = connect(redis_server)
    job = _job(conn, corpus)
    c = take(conn, job.name)
    with pytest.raises(PhaseError, match="map of a shuffle job in its map phase"):
        functions.commit(conn, c, ["w", 1], c.task.nbytes, 1, 0)
    reduce_ = c.__class__(**{**c.__dict__, "id": f"0-{len(job.tasks) + 1}", "reduce": 0})
    assert functions.commit(conn, reduce_, ["w", 1], 0, 1, 0,
                            consumed=[c.id]) is Applied.STALE
    _work_until(conn, lambda: _meta(conn, job, Meta.PHASE) == "reduce")
    r = take(conn, job.name)
    assert r.reduce is not None
    counts, maps = conn_queue(conn).read_partition(r, len(job.tasks), R)
    assert functions.commit(conn, r, [], 0, 0, 0, consumed=maps[1:]) is Applied.RESTAGE
    late = c.__class__(**{**c.__dict__, "id": "0-1"})
    assert functions.map_commit(conn, late, [b""] * R, 0, 0, 0) is Applied.DUPLICATE
    pairs = [x for kv in counts.items() for x in kv]
    assert functions.commit(conn, r, pairs, 0, sum(counts.values()), 0,
                            consumed=maps) is Applied.APPLIED


def conn_queue(conn):
    from wordcount.queue import Queues

    return Queues(conn, "test", conn.settings)


def test_a_late_map_whose_job_rolls_back_to_the_map_phase_commits_as_a_map(redis_server,
                                                                           monkeypatch):
    """A requeued map is LATE (reduce phase); before its direct commit lands, Redis rolls
    back to a snapshot of the map phase: the direct commit is refused (WCPHASE) and the map
    commits its partitions instead. Before, the worker exited 4 on the refusal (soak seed
    8105, lease queue)."""
    from wordcount import jobs
    from wordcount.queue import Queues

    corpus = redis_server.directory + "/../in"
    generate(corpus, 2, 30_000, seed=3)
    conn = connect(redis_server)
    conn.client.config_set("save", "")
    job = _job(conn, corpus, reduces=2, chunk=30_000)
    qs = Queues(conn, "w1", conn.settings)
    counts = Counter({"alpha": 2, "beta": 3})
    first = take(conn, job.name)
    assert qs.complete_map(first, counts, 10, 1, 2) is Applied.APPLIED
    save(conn.client)  # the map phase, one map settled
    for _ in range(len(job.tasks) - 1):
        assert qs.fail(take(conn, job.name), "unreadable") is Applied.APPLIED
    assert _meta(conn, job, Meta.PHASE) == "reduce"
    assert jobs.requeue(conn, job.name) == len(job.tasks) - 1
    late = next(c for c in iter(lambda: take(conn, job.name), None) if c.reduce is None)
    commit = functions.map_commit

    def then_roll_back(*args, **kwargs):
        out = commit(*args, **kwargs)
        if out is Applied.LATE:
            redis_server.kill()
            redis_server.start()
        return out
    monkeypatch.setattr(functions, "map_commit", then_roll_back)
    assert qs.complete_map(late, counts, 10, 1, 2) is Applied.APPLIED
    # it went to the partitions of the restored map phase (whose last map it was)
    assert int(_meta(conn, job, Meta.SHUFFLED)) == 2


def test_a_client_that_follows_another_incarnation_takes_its_reduces(redis_server):
    """Re-created after a loss under the epoch it adopted, a job keeps that incarnation's R
    (workers know an epoch's partitions): soak seed 930."""
    import tempfile

    corpus = tempfile.mkdtemp(dir=redis_server.directory)
    generate(corpus, 2, 30_000, seed=3)
    conn = connect(redis_server)
    a = _job(conn, corpus, reduces=2)
    b = client.plan_job([str(corpus)], 100_000)
    b.queue, b.reduces = os.environ["WORDCOUNT_QUEUE"], 5
    client.submit(conn, b)
    assert b.epoch == a.epoch and b.reduces == 2
    redis_server.kill()
    redis_server.wipe()
    redis_server.start()
    conn.ensure_functions()
    client.submit(conn, b)
    assert client.progress(conn, b.name).reduces == 2
