"""Exactly-once under the faults that used to break it, reproduced as a user meets them (real
redis-server and worker processes, the CLI) and at the level of single Function calls.

- staged commits + Redis rolled back to an older snapshot (pieces lost, or partly lost);
- a job re-planned under the same name while a worker still counts a task of the old plan;
- resubmitting changed inputs (another directory, a file edited in place, chmod);
- --fresh while idle workers block on the job's stream;
- two versions of the Function library; the end-to-end self-check.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from wordcount import client, functions, jobs, keys
from wordcount.connection import IDENTITY, PROTOCOL, library_code
from wordcount.embedded import LocalCluster
from wordcount.exceptions import (
    EXIT_INCONSISTENT,
    EXIT_REDIS,
    JobInconsistentError,
    ProtocolMismatchError,
)
from wordcount.lab.clirun import wc as run_wc
from wordcount.planner import Task
from wordcount.protocol import Applied, now_ms
from wordcount.queue import Queues
from wordcount.workeropts import WorkerOptions

from .conftest import assert_counts_equal, connect, oracle, save, take

# every test runs on both task queues (stream and lease): see conftest.queue_kind
pytestmark = pytest.mark.usefixtures("queue_kind")

LUA = Path(__file__).resolve().parents[1] / "redis" / "wordcount.lua"


def cli(env, *args, timeout=120):
    return run_wc(*args, env=env, timeout=timeout)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- staged commits ---------------------------------------------------------------------------

def test_a_partial_stage_is_never_accepted(redis_server, queue_kind):
    """A Redis rollback that dropped one piece (or all of them) must not settle the task: the
    commit answers RESTAGE and changes nothing; once staged again it is accepted whole."""
    conn = connect(redis_server)
    job = client.Job("partial", "p", "/x", [Task("a", 0, 1)], queue=queue_kind)
    client.submit(conn, job)
    c = take(conn, "partial")
    pairs = [x for i in range(9) for x in (f"w{i}", 1)]
    pieces = functions.stage_keys(c, "att", 3)
    for key, k in zip(pieces, range(0, 18, 6), strict=True):
        functions.stage(conn, c, key, pairs[k:k + 6])
    conn.client.delete(pieces[1])  # a piece written after the snapshot Redis restarted from
    assert functions.commit_staged(conn, c, pieces, 9, 1, 9, 1) is Applied.RESTAGE
    conn.client.delete(*pieces)  # ... or all of them (the old bug settled the task empty)
    assert functions.commit_staged(conn, c, pieces, 9, 1, 9, 1) is Applied.RESTAGE
    assert conn.client.hlen(keys.done("partial")) == 0
    assert client.progress(conn, "partial").pending == 1  # still held, not settled
    # a stage whose pieces all exist but hold fewer pairs than the task has is refused too
    functions.stage(conn, c, pieces[0], pairs[:6])
    assert functions.commit_staged(conn, c, pieces[:1], 9, 1, 9, 1) is Applied.RESTAGE
    for key, k in zip(pieces, range(0, 18, 6), strict=True):
        functions.stage(conn, c, key, pairs[k:k + 6])
    assert functions.commit_staged(conn, c, pieces, 9, 1, 9, 1) is Applied.APPLIED
    for key in pieces:
        assert functions.merge(conn, "partial", c.epoch, key) is Applied.APPLIED
        assert functions.merge(conn, "partial", c.epoch, key) is Applied.DUPLICATE
    assert client.fetch_counts(conn, "partial") == {f"w{i}": 1 for i in range(9)}
    assert client.progress(conn, "partial").finished


@pytest.mark.parametrize("commit_pairs", [None, "300"], ids=["atomic", "staged"])
def test_redis_restarted_from_older_snapshots_during_big_commits(redis_server, tmp_path,
                                                                  commit_pairs):
    """The issue's reproduction, scaled down: tasks with thousands of distinct words, every
    commit staged in 300-pair pieces, Redis SIGKILLed three times and restarted from an RDB
    snapshot taken earlier by the test (so the restart really rolls back)."""
    from wordcount.lab.corpus import generate

    from .test_distributed import run_job

    corpus = tmp_path / "big"
    generate(corpus, 6, 600_000, seed=11, unicode=True)
    kills: list[float] = []
    saves: list[float] = []
    admin = connect(redis_server).client
    admin.config_set("save", "")  # only our SAVEs: no background save in their way

    def chaos(elapsed):
        if len(saves) <= len(kills) and elapsed > 0.8 + 1.6 * len(kills):
            save(admin)  # the snapshot we will roll back to
            saves.append(elapsed)
        elif len(kills) < 3 and elapsed > 1.6 + 1.6 * len(kills):
            redis_server.kill()
            redis_server.start()
            kills.append(elapsed)

    # (1/100 speed: at 1/60 a lease-queue job once ended after 2 of the 3 kills)
    args = ["--slowdown", "100", "--claim-timeout", "1000"]
    if commit_pairs:
        args += ["--commit-pairs", commit_pairs]
    result, progress, _, conn, job = run_job(redis_server, corpus, 2, args, chunk=300_000,
                                             during=chaos)
    assert len(kills) == 3, "the job finished before Redis was killed: nothing tested"
    assert_counts_equal(result.counts, oracle(corpus))
    assert progress.check["ok"]
    if commit_pairs:
        assert "Traceback" not in Path(redis_server.directory, "workers.log").read_text()
        assert conn.client.scard(keys.merges(job.name)) == 0


# -- re-planning ------------------------------------------------------------------------------

def test_replanned_job_never_takes_a_stale_tasks_counts(redis_server, tmp_path):
    """submit A --job X; a slow worker takes A's task; submit B --job X --fresh; another
    worker takes B's task of the same id; the first worker's late commit must be dropped, and
    `submit B --job X` must return B's counts exactly."""
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    (a / "t.txt").write_text("alpha1\n" * 200_000)
    (b / "t.txt").write_text("beta1\n" * 200_000)
    env = redis_server.env()
    conn = connect(redis_server)
    log = str(tmp_path / "workers.log")
    first = cli(env, "submit", str(a), "--job", "X", "--no-wait")
    assert first.returncode == 0, first.stderr
    with LocalCluster(1, redis_server, log_path=log, options=WorkerOptions(
            slowdown=300, speculate_factor=0, verbose=True)) as slow:
        wait_until(lambda: client.progress(conn, "X").pending == 1,
                   30, "the slow worker to take A's task")
        second = cli(env, "submit", str(b), "--job", "X", "--fresh", "--no-wait")
        assert second.returncode == 0, second.stderr
        with LocalCluster(1, redis_server, log_path=log,
                          options=WorkerOptions(slowdown=100, speculate_factor=0)):
            done = cli(env, "submit", str(b), "--job", "X", "--json", timeout=240)
            slow.pool.procs[0].wait(120)  # its stale commit has been sent and refused
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["top"] == [["beta1", 200_000]] and doc["total"] == 200_000
    assert doc["check"]["ok"] is True
    assert "older plan of the job (re-planned): dropped" in Path(log).read_text()


# -- job identity -----------------------------------------------------------------------------

def test_changed_inputs_are_a_new_job_and_unchanged_ones_are_reused(redis_server, tmp_path):
    env = redis_server.env()
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.txt").write_text("one two\n")
    (two / "a.txt").write_text("uno dos\n")  # same name, same size, other directory
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        def top(path):
            proc = cli(env, "submit", str(path), "--json")
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout), proc.stderr

        first, _ = top(one)
        assert first["top"] == [["one", 1], ["two", 1]] and not first["reused"]
        second, _ = top(two)
        assert second["top"] == [["dos", 1], ["uno", 1]] and second["job"] != first["job"]
        again, err = top(one)
        assert again["reused"] and again["job"] == first["job"] and "reusing its result" in err
        st = os.stat(one / "a.txt")
        (one / "a.txt").write_text("six ten\n")  # edited in place, same size ...
        os.utime(one / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and same mtime
        edited, _ = top(one)
        assert edited["top"] == [["six", 1], ["ten", 1]] and not edited["reused"]


def test_plan_identity_follows_file_identity(tmp_path):
    f = tmp_path / "d" / "a.txt"
    f.parent.mkdir()
    f.write_text("words here\n")
    base = client.plan_job([str(f.parent)], 1 << 20)
    assert client.plan_job([str(f.parent)], 1 << 20).plan_id == base.plan_id  # unchanged
    os.chmod(f, 0o600)  # e.g. made readable after a failed run: ctime changes
    chmodded = client.plan_job([str(f.parent)], 1 << 20)
    assert chmodded.plan_id != base.plan_id and chmodded.name != base.name
    content = client.plan_job([str(f.parent)], 1 << 20, fingerprint="content")
    os.utime(f)  # touched: the content fingerprint ignores times
    assert client.plan_job([str(f.parent)], 1 << 20, fingerprint="content").plan_id \
        == content.plan_id
    f.write_text("words HERE\n")
    assert client.plan_job([str(f.parent)], 1 << 20, fingerprint="content").plan_id \
        != content.plan_id


# -- --fresh and idle workers -----------------------------------------------------------------

def test_fresh_does_not_kill_workers_blocked_on_the_job(redis_server, tmp_path):
    """Idle workers block in XREADGROUP on the job's stream; --fresh deletes it under them
    ("UNBLOCKED the stream key no longer exists" used to end them)."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "a.txt").write_text("slow words\n" * 100_000)
    env = redis_server.env()
    log = str(tmp_path / "w.log")
    conn = connect(redis_server)
    first = cli(env, "submit", str(data), "--job", "F", "--no-wait")
    assert first.returncode == 0, first.stderr
    with LocalCluster(1, redis_server, log_path=log,
                      options=WorkerOptions(slowdown=200, speculate_factor=0)) as slow:
        wait_until(lambda: client.progress(conn, "F").pending == 1,
                   30, "the slow worker to take the task")
        # started now, the idle workers find the job active with nothing left to take
        with LocalCluster(2, redis_server, log_path=log,
                          options=WorkerOptions(speculate_factor=0)) as idle:
            time.sleep(1.0)  # ... and block on its stream (or its notify list)
            again = cli(env, "submit", str(data), "--job", "F", "--fresh", "--json",
                        timeout=240)
            for p in [*slow.pool.procs, *idle.pool.procs]:
                assert p.poll() in (None, 0), open(log).read()[-3000:]
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["top"] == [["slow", 100_000], ["words", 100_000]]
    assert "Traceback" not in Path(log).read_text()


def test_a_vanished_job_is_harmless_to_every_function(redis_server, queue_kind):
    conn = connect(redis_server)
    job = client.Job("gone", "p", "/x", [Task("a", 0, 1)], queue=queue_kind)
    client.submit(conn, job)
    c = take(conn, "gone")
    jobs.delete(conn, "gone", force=True)
    q = Queues(conn, "w2", conn.settings)
    assert q.keep(c) is False
    backend = q.backends[queue_kind]
    assert backend._claim_stale(["gone"]) is None if queue_kind == "stream" \
        else backend._claim(["gone"]) is None
    assert backend._speculate(["gone"]) is None
    assert functions.commit(conn, c, ["x", 1], 1, 1, 1) is Applied.GONE
    assert functions.dead(conn, c, "r") is Applied.GONE
    assert functions.stage(conn, c, keys.stage("gone", c.epoch, c.id, "a", 0), ["x", 1]) \
        is Applied.GONE
    assert conn.client.keys("wc:{gone}:*") == []


# -- backups ------------------------------------------------------------------------------------

def test_speculate_backs_up_the_oldest_attempt_beyond_the_first_hundred(redis_server,
                                                                         queue_kind):
    conn = connect(redis_server, speculate_min_ms=30_000, speculate_factor=1.0)
    tasks = [Task(f"f{i}", 0, 1) for i in range(150)]
    client.submit(conn, client.Job("spec", "p", "/x", tasks, queue=queue_kind))
    for _ in range(150):
        take(conn, "spec", "w1")
    now = now_ms()
    # every attempt started recently, except task 0-140, which started long ago
    conn.client.zadd(keys.leases("spec"), {f"0-{s}": now - 1000 for s in range(1, 151)})
    conn.client.zadd(keys.leases("spec"), {"0-140": now - 60_000})
    backup = Queues(conn, "w2", conn.settings).backends[queue_kind]._speculate(["spec"])
    assert backup is not None and backup.id == "0-140" and backup.how == "backup"
    assert Queues(conn, "w2", conn.settings).backends[queue_kind]._speculate(["spec"]) is None
    assert client.progress(conn, "spec").backups == 1


def test_an_attempt_that_began_its_staged_commit_is_not_backed_up(redis_server, queue_kind):
    """A backup of a committing attempt could only commit after it, through the same Redis
    (high cardinality: reduces were backed up while their commit was Redis-bound, 3 of 4 in
    one run); a frozen committer still loses its task to a thief."""
    conn = connect(redis_server, speculate_min_ms=0, speculate_factor=1.0)
    client.submit(conn, client.Job("spec", "p", "/x", [Task("f", 0, 1), Task("g", 0, 1)],
                                   queue=queue_kind))
    c = take(conn, "spec", "w1")
    slow = take(conn, "spec", "w1")
    pieces = functions.stage_keys(c, "a1", 1)
    assert functions.stage(conn, c, pieces[0], ["w", 1]) is Applied.APPLIED
    backups = Queues(conn, "w2", conn.settings).backends[queue_kind]
    backup = backups._speculate(["spec"])
    assert backup is not None and backup.id == slow.id  # the attempt still counting
    assert backups._speculate(["spec"]) is None  # not the committing one
    assert functions.commit_staged(conn, c, pieces, 1, 1, 1, 1) is Applied.APPLIED


# -- protocol versions ----------------------------------------------------------------------------

def _library_with_protocol(version: str) -> str:
    return re.sub(r"^local PROTOCOL = '\d+'", f"local PROTOCOL = '{version}'", library_code(),
                  flags=re.M)


def test_an_older_library_is_upgraded_and_a_newer_one_refused(redis_server, tmp_path):
    conn = connect(redis_server)
    older = str(int(PROTOCOL) - 1)
    conn.client.function_load(_library_with_protocol(older), replace=True)
    conn.ensure_functions()
    assert str(conn.client.fcall("wc_version", 0)) == IDENTITY
    conn.client.function_load(_library_with_protocol("99"), replace=True)
    with pytest.raises(ProtocolMismatchError, match="protocol 99"):
        conn.ensure_functions()
    (tmp_path / "a.txt").write_text("x\n")
    proc = cli(redis_server.env(), "submit", str(tmp_path), "--no-wait")
    assert proc.returncode == EXIT_REDIS and "upgrade this client" in proc.stderr
    assert "Traceback" not in proc.stderr
    # a caller of another version is refused by every Function (it never writes)
    with pytest.raises(ProtocolMismatchError, match="WCVERSION"):
        functions.submit(conn, "v", plan_id="p", epoch="e", total=1, total_bytes=1, root="/x",
                         mount="/x", kind="stream", first_seq=1, tasks=[Task("a", 0, 1)])
    assert not conn.client.exists(keys.meta("v"))


def test_another_build_of_the_same_protocol_is_replaced_and_its_callers_refused(redis_server):
    """The identity is the protocol AND a hash of the code: a hot fix, a build that forgot to
    bump the protocol, an old snapshot's library -- same number, other code -- is replaced at
    start, and a caller of another build is refused (WCVERSION), never served by it."""
    conn = connect(redis_server)
    other = library_code().replace("local BUILD = '", "local BUILD = 'x", 1) + "\n-- a hot fix\n"
    conn.client.function_load(other, replace=True)
    assert str(conn.client.fcall("wc_version", 0)) != IDENTITY
    assert str(conn.client.fcall("wc_version", 0)).startswith(PROTOCOL + "/")
    with pytest.raises(ProtocolMismatchError, match="WCVERSION"):
        functions.cancel(conn, "any")
    conn.ensure_functions()
    assert str(conn.client.fcall("wc_version", 0)) == IDENTITY
    assert functions.cancel(conn, "any") is Applied.GONE


def test_every_function_is_deterministic_and_ttl_free():
    """RedisRaft re-executes each call on every node: no clock, no random or scan order, no
    expiry. A static look at the library is enough to keep it so."""
    code = re.sub(r"--\[\[.*?\]\]|--[^\n]*", "", LUA.read_text(), flags=re.S)
    calls = {c.upper() for c in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", code)}
    assert {"ZINCRBY", "XACK", "HSET"} <= calls  # the scan sees the library's calls
    forbidden = {"TIME", "SCAN", "HSCAN", "SSCAN", "ZSCAN", "SPOP", "SRANDMEMBER",
                 "HRANDFIELD", "ZRANDMEMBER", "RANDOMKEY", "EXPIRE", "PEXPIRE", "EXPIREAT",
                 "PEXPIREAT", "SETEX", "PSETEX", "KEYS"}
    assert calls and not calls & forbidden, calls & forbidden
    assert "math.random" not in code and "os.time" not in code


# -- the end-to-end self-check ------------------------------------------------------------

# a task per file, one phase (the figures of a shuffle job's check: tests/test_shuffle.py)
ONE_TASK_PER_FILE = ("--json", "--pack-size", "0", "--commit", "atomic")


def test_self_check_fails_loudly_on_a_tampered_result(redis_server, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    for i in range(3):
        (data / f"{i}.txt").write_text(f"word{i} common\n" * 50)
    env = redis_server.env()
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        ok = cli(env, "submit", str(data), *ONE_TASK_PER_FILE)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    size = sum(f.stat().st_size for f in data.iterdir())
    assert doc["check"] == {"words_in_table": 300, "words_committed": 300, "words_meta": 300,
                            "tasks": 3, "tasks_done": 3, "tasks_dead": 0, "bytes_done": size,
                            "bytes_meta": size, "ok": True}
    conn = connect(redis_server)
    conn.client.zincrby(keys.counts(doc["job"]), 1, "common")  # a task applied 1 word too much
    bad = cli(env, "submit", str(data), *ONE_TASK_PER_FILE)
    assert bad.returncode == EXIT_INCONSISTENT, bad.stderr
    assert "failed the self-check" in bad.stderr and "301 words" in bad.stderr
    assert bad.stdout == "" and "Traceback" not in bad.stderr
    conn.client.zincrby(keys.counts(doc["job"]), -1, "common")
    conn.client.hdel(keys.done(doc["job"]), "0-2")  # a task whose settlement was lost
    bad = cli(env, "submit", str(data), *ONE_TASK_PER_FILE)
    assert bad.returncode == EXIT_INCONSISTENT and "never settled ['0-2']" in bad.stderr


def test_self_check_catches_a_commit_for_other_task_contents(redis_server, queue_kind):
    conn = connect(redis_server)
    job = client.Job("bytes", "p", "/x", [Task("a", 0, 10)], queue=queue_kind)
    client.submit(conn, job)
    c = take(conn, "bytes")
    functions.commit(conn, c, ["w", 2], 99, 2, 1)  # counted 99 bytes for a 10-byte task
    with pytest.raises(JobInconsistentError, match="span 10 bytes"):
        client.result(conn, job, 0)


def test_per_word_mode_double_count_is_caught(redis_server, queue_kind):
    """per-word commits are not crash-safe: a task applied twice must fail the job loudly."""
    conn = connect(redis_server)
    job = client.Job("perword", "p", "/x", [Task("a", 0, 3)], queue=queue_kind)
    client.submit(conn, job)
    c = take(conn, "perword")
    conn.client.zincrby(keys.counts("perword"), 2, "ab")  # a crashed earlier attempt's ZINCRBYs
    conn.client.zincrby(keys.counts("perword"), 2, "ab")  # this attempt's, one per occurrence
    assert Queues(conn, "w1", conn.settings).complete(c, Counter(), 3, 1, nwords=2) \
        is Applied.APPLIED
    with pytest.raises(JobInconsistentError, match="4 words but the accepted commits "
                                                   "reported 2"):
        client.result(conn, job, 0)


def test_a_worker_drops_tasks_of_an_incarnation_it_cannot_find(redis_server, tmp_path,
                                                              queue_kind):
    """The worker's data root comes from the incarnation the task was claimed under."""
    conn = connect(redis_server)
    job = client.Job("inc", "p", str(tmp_path), [Task("a", 0, 1)], queue=queue_kind)
    client.submit(conn, job)
    c = take(conn, "inc")
    q = Queues(conn, "w1", conn.settings)
    assert q.info(c).root == str(tmp_path)
    jobs.delete(conn, "inc", force=True)
    client.submit(conn, client.Job("inc", "p", "/elsewhere", [Task("a", 0, 1)], queue=queue_kind))
    # the root is the one of the incarnation the task was claimed under, never the new one's
    assert q.info(c).root == str(tmp_path)
    assert Queues(conn, "w2", conn.settings).info(c) is None  # not cached: not counted
    assert functions.commit(conn, c, ["a", 1], 1, 1, 1) is Applied.STALE
