"""The distributed engine against real redis-server processes on loopback.

Every test compares the full count table with the oracle (every word, every count)."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

from wordcount import client, functions, keys
from wordcount.embedded import LocalCluster
from wordcount.exceptions import (
    EXIT_INPUT_ERRORS,
    EXIT_REDIS,
    EXIT_USAGE,
    InputChangedError,
)
from wordcount.lab.clirun import wc
from wordcount.planner import Task
from wordcount.protocol import Applied
from wordcount.workeropts import WorkerOptions

from .conftest import assert_counts_equal, connect, oracle, take, tsv

# every test runs on both task queues (stream and lease): see conftest.queue_kind
pytestmark = pytest.mark.usefixtures("queue_kind")

CHUNK = 200_000  # bytes per task: the skew file and the big nasty files are split into ranges
# the commit modes: one phase (atomic), and the shuffle with 3 reduce tasks
COMMIT_MODES = pytest.mark.parametrize("reduces", [0, 3], ids=["atomic", "shuffle"])


def run_job(server, corpus, n_workers=2, worker_args=(), chunk=CHUNK, timeout=240,
            job_name=None, during=None, reduces=0):
    """Plan + submit in-process, N worker processes (respawned after injected crashes),
    wait, read the result. ``during(elapsed)`` is called on every poll; ``reduces`` > 0: a
    shuffle job of that many reduce tasks. Returns the cluster too (its ``crashes``)."""
    conn = connect(server)
    job = client.plan_job([str(corpus)], chunk, job_name)
    job.queue = os.environ.get("WORDCOUNT_QUEUE", "stream")
    job.reduces = reduces
    client.submit(conn, job)
    started = time.monotonic()
    with LocalCluster(n_workers, server, options=WorkerOptions.parse(worker_args),
                      log_path=os.path.join(server.directory, "workers.log")) as cluster:
        waited = cluster.wait(conn, job, timeout_s=timeout, on_poll=during and (
            lambda: during(time.monotonic() - started)))
        result, progress = client.result(conn, job, time.monotonic() - started, waited)
    return result, progress, cluster, conn, job


@COMMIT_MODES
@pytest.mark.parametrize("workers", [1, 3])
def test_exact_with_ranges(redis_server, small_corpus, small_oracle, workers, reduces):
    result, progress, _, conn, job = run_job(redis_server, small_corpus, workers,
                                             reduces=reduces)
    assert result.errors == []
    assert_counts_equal(result.counts, small_oracle)
    assert len(job.tasks) > len({t.path for t in job.tasks})  # some files were split
    assert progress.done == len(job.tasks) + reduces and progress.duplicates == 0
    assert progress.pending == 0 and progress.queue == os.environ["WORDCOUNT_QUEUE"]
    assert not conn.client.hexists(keys.active(), job.name)


@COMMIT_MODES
@pytest.mark.parametrize("point", ["after-claim", "after-count", "before-commit", "after-commit"])
def test_crash_points(redis_server, small_corpus, point, reduces):
    """~12 tasks (6 files, one split into 6 ranges; and 3 reduces); half the attempts
    crash."""
    corpus = small_corpus / "gen"
    result, progress, cluster, _, _ = run_job(
        redis_server, corpus, 2,
        ["--crash-at", point, "--crash-prob", "0.5", "--max-attempts", "1000",
         "--claim-timeout", "400"], reduces=reduces)
    assert cluster.crashes > 0, "no crash was injected: the test proved nothing"
    assert result.errors == []
    assert_counts_equal(result.counts, oracle(corpus))
    if point in ("after-claim", "after-count", "before-commit"):
        assert progress.stolen > 0  # crashed workers' tasks were taken over


@COMMIT_MODES
def test_random_crashes_and_stalls_6_5840_style(redis_server, small_corpus, reduces):
    corpus = small_corpus / "gen"
    result, _, cluster, _, _ = run_job(
        redis_server, corpus, 3,
        ["--crash-at", "any", "--crash-prob", "0.33", "--stall-prob", "0.33", "--stall-max", "2",
         "--max-attempts", "1000", "--claim-timeout", "500"], reduces=reduces)
    assert cluster.crashes > 0
    assert_counts_equal(result.counts, oracle(corpus))


def test_straggler_is_backed_up_and_applied_once(redis_server, tmp_path):
    from wordcount.lab.corpus import generate

    corpus = tmp_path / "even"
    generate(corpus, 8, 1_500_000, seed=5)
    conn = connect(redis_server)
    job = client.plan_job([str(corpus)], 64 << 20)
    job.queue = os.environ["WORDCOUNT_QUEUE"]
    client.submit(conn, job)
    env = {**redis_server.env(), "WORDCOUNT_SPECULATE_MIN_MS": "300"}
    log = str(tmp_path / "workers.log")
    with LocalCluster(1, env=env, options=WorkerOptions.parse(["--slowdown", "100", "-v"]),
                      log_path=log) as straggler:
        time.sleep(1.5)  # let the straggler take the first task
        with LocalCluster(1, env=env, log_path=log) as normal:
            normal.wait(conn, job, timeout_s=120)
        straggler.pool.procs[0].wait(120)  # its late commit arrives after the job finished
    result, progress = client.result(conn, job, 0)
    assert progress.backups >= 1, "nobody backed up the straggler's task"
    assert progress.duplicates >= 1, "the straggler's own commit never arrived"
    assert_counts_equal(result.counts, oracle(corpus))


def test_heartbeat_keeps_a_slow_task(redis_server, tmp_path):
    """One task that takes many claim timeouts on a live (heartbeating) worker, while two idle
    workers watch it: nobody steals it, nobody backs it up, it is counted once."""
    from wordcount.lab.corpus import generate

    corpus = tmp_path / "one"
    generate(corpus, 1, 3_000_000, seed=9)
    args = ["--claim-timeout", "300", "--speculate-factor", "0"]
    conn = connect(redis_server)
    job = client.plan_job([str(corpus)], 64 << 20)
    job.queue = os.environ["WORDCOUNT_QUEUE"]
    client.submit(conn, job)
    log = str(tmp_path / "workers.log")
    with LocalCluster(1, redis_server, options=WorkerOptions.parse(args + ["--slowdown", "150"]),
                      log_path=log) as slow:
        time.sleep(1.0)
        with LocalCluster(2, redis_server, options=WorkerOptions.parse(args), log_path=log):
            slow.wait(conn, job, timeout_s=120)
    result, progress = client.result(conn, job, 0)
    busy_ms = int(conn.client.hget(keys.meta(job.name), "busy_ms"))
    assert busy_ms > 5 * 300, f"the task took {busy_ms} ms: not longer than the claim timeout"
    assert progress.stolen == 0 and progress.duplicates == 0 and progress.backups == 0
    assert_counts_equal(result.counts, oracle(corpus))


def test_poison_missing_and_escaping_tasks_are_dead_lettered(redis_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("good words good\n")
    (data / "gone.txt").write_text("vanishing words\n")
    conn = connect(redis_server)
    # one task per file (pack size 0): each file's own dead letter (a pack is set aside whole:
    # test_packed_task_with_a_vanished_file_is_set_aside_whole_and_requeued_exactly)
    job = client.plan_job([str(data)], 64 << 20, "poison", pack_size=0)
    job.queue = os.environ["WORDCOUNT_QUEUE"]
    (data / "gone.txt").unlink()
    # a forged task escaping the data root; the client never plans one, a hostile submitter might
    (tmp_path / "secret.txt").write_text("top secret\n")
    job.tasks.append(Task("../secret.txt", 0, 11))
    client.submit(conn, job)
    with LocalCluster(2, redis_server, log_path=str(tmp_path / "w.log")) as cluster:
        cluster.wait(conn, job, timeout_s=60)
    result, progress = client.result(conn, job, 0)
    assert progress.dead == 2 and progress.done == 1
    assert dict(result.counts) == {"good": 2, "words": 1}
    reasons = {os.path.basename(e.path): e.error for e in result.errors}
    assert "No such file" in reasons["gone.txt"]
    assert "escapes the data root" in reasons["secret.txt"]


def test_task_that_keeps_crashing_is_set_aside(redis_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("crashy text\n")
    result, progress, cluster, _, _ = run_job(
        redis_server, data, 1,
        ["--crash-at", "after-claim", "--crash-prob", "1", "--max-attempts", "2",
         "--claim-timeout", "200"])
    assert cluster.crashes == 2
    assert progress.dead == 1 and not result.counts
    assert "2 attempts failed (--max-attempts 2" in result.errors[0].error


def test_commit_is_idempotent_and_handles_more_than_8000_values(redis_server, queue_kind):
    conn = connect(redis_server)
    job = client.Job("idem", "plan1", "/nonexistent", [Task("a", 0, 10), Task("b", 0, 10)],
                     queue=queue_kind)
    client.submit(conn, job)
    client.submit(conn, job)  # replayed submission: no duplicate task
    assert client.progress(conn, "idem").submitted == 2
    claims = [take(conn, "idem"), take(conn, "idem")]
    assert {c.id for c in claims} == {"0-1", "0-2"}
    assert claims[0].epoch == job.epoch and claims[0].kind == queue_kind
    pairs = []
    for i in range(12_000):  # 24,000 ARGV values: unpack() would fail
        pairs += [f"w{i}", i + 1]
    assert functions.commit(conn, claims[0], pairs, 10, 5, 1) is Applied.APPLIED
    assert functions.commit(conn, claims[0], pairs, 10, 5, 1) is Applied.DUPLICATE
    other = dataclasses.replace(claims[1], epoch="an-older-incarnation")
    assert functions.commit(conn, other, pairs, 10, 5, 1) is Applied.STALE
    gone = dataclasses.replace(claims[1], job="no-such-job")
    assert functions.commit(conn, gone, pairs, 10, 5, 1) is Applied.GONE
    assert conn.client.zscore(keys.counts("idem"), "w11999") == 12_000
    assert conn.client.zcard(keys.counts("idem")) == 12_000
    meta = conn.client.hgetall(keys.meta("idem"))
    assert meta["done"] == "1" and meta["duplicates"] == "1" and meta["state"] == "running"
    assert conn.client.hgetall(keys.done("idem")) == {claims[0].id: "5"}
    assert client.progress(conn, "idem").pending == 1  # the settled task left the queue
    assert not conn.client.exists(keys.meta("no-such-job"))  # a refused call creates nothing


def test_staged_commit_merges_in_pieces_exactly_once(redis_server, small_corpus, small_oracle):
    result, progress, _, conn, job = run_job(redis_server, small_corpus, 2,
                                             ["--commit-pairs", "500"])
    assert_counts_equal(result.counts, small_oracle)
    assert conn.client.scard(keys.merges(job.name)) == 0
    assert progress.check["ok"] and progress.check["words_in_table"] == progress.words


def test_staged_commit_finished_by_another_worker_after_a_crash(redis_server, queue_kind):
    from wordcount.queue import Queues

    conn = connect(redis_server, commit_pairs=3)
    job = client.Job("staged", "p", "/x", [Task("a", 0, 1)], queue=queue_kind)
    client.submit(conn, job)
    c = take(conn, "staged")
    pairs = [x for i in range(10) for x in (f"w{i}", i + 1)]
    pieces = functions.stage_keys(c, "att1", 4)
    for key, k in zip(pieces, range(0, 20, 6), strict=True):
        assert functions.stage(conn, c, key, pairs[k:k + 6]) is Applied.APPLIED
    # the committing worker dies right after its staged commit, before merging anything
    assert functions.commit_staged(conn, c, pieces, 10, 1, 55, 1) is Applied.APPLIED
    assert client.progress(conn, "staged").state == "running"  # not done until merged
    # its reply was lost and the call replayed: a no-op that keeps the accepted pieces
    assert functions.commit_staged(conn, c, pieces, 10, 1, 55, 1) is Applied.DUPLICATE
    assert all(conn.client.exists(k) for k in pieces)
    assert functions.commit_staged(conn, c, functions.stage_keys(c, "att2", 1), 10, 1, 55,
                                   1) is Applied.DUPLICATE
    assert Queues(conn, "w2", conn.settings).finish_merges(["staged"]) == 4
    assert client.fetch_counts(conn, "staged") == {f"w{i}": i + 1 for i in range(10)}
    assert client.progress(conn, "staged").finished
    assert not any(conn.client.exists(k) for k in pieces)


def test_per_word_mode_counts_exactly_without_faults(redis_server, small_corpus, small_oracle):
    result, _, _, _, _ = run_job(redis_server, small_corpus / "nasty", 2,
                                 ["--commit", "per-word"])
    assert_counts_equal(result.counts, oracle(small_corpus / "nasty"))


@COMMIT_MODES
@pytest.mark.parametrize("wipe", [False, True], ids=["from-rdb", "from-nothing"])
def test_redis_killed_mid_job_and_restarted(redis_server, small_corpus, small_oracle, wipe,
                                            reduces):
    kills = []

    dump = os.path.join(redis_server.directory, "dump.rdb")

    def chaos(elapsed):
        if len(kills) < 2 and elapsed > 1.5 + 1.5 * len(kills):
            if not wipe and not os.path.exists(dump):
                return  # no snapshot yet: kill once there is one, or the RDB path is untested
            redis_server.kill()
            if wipe:
                redis_server.wipe()
            time.sleep(0.5)
            redis_server.start()
            kills.append(elapsed)

    result, progress, _, _, _ = run_job(redis_server, small_corpus, 2,
                                        ["--slowdown", "40", "--claim-timeout", "1000"],
                                        chunk=100_000, during=chaos, reduces=reduces)
    assert len(kills) == 2, "the job finished before Redis was killed: nothing tested"
    assert_counts_equal(result.counts, small_oracle)
    if wipe:
        assert progress.resubmits >= 1


def test_wrong_or_missing_password_is_a_clear_error(redis_server, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    base = ["submit", str(tmp_path), "--redis-url", redis_server.url]
    env = {k: v for k, v in os.environ.items() if "REDIS" not in k}
    wrong = wc(*base, base_env={**env, "REDIS_PASSWORD": "nope"}, timeout=60)
    assert wrong.returncode == EXIT_REDIS
    assert "refused our credentials" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "nope" not in wrong.stderr
    missing = wc(*base, base_env=env, timeout=60)
    assert missing.returncode == EXIT_USAGE
    assert "password is required" in missing.stderr and "Traceback" not in missing.stderr


def test_run_command_end_to_end(small_corpus, small_oracle, tmp_path):
    out = tmp_path / "counts.tsv"
    proc = wc("run", str(small_corpus), "--workers", "2", "--chunk-size", "150K", "--json",
              "--counts-out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total"] == sum(small_oracle.values()) and doc["workers"] == 2
    assert out.read_text(encoding="utf-8") == tsv(small_oracle)


def test_submit_reports_dead_letters_with_exit_3(redis_server, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "ok.txt").write_text("fine\n")
    os.symlink("/etc/hostname", data / "escape.txt")
    env = {**os.environ, **redis_server.env()}
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        # a symbolic link out of the root is never planned (a worker would refuse it), with a
        # task per file or both files packed: named, and the other file counted
        proc = wc("submit", str(data / "ok.txt"), str(data / "escape.txt"), "--json",
                  "--pack-size", "0", env=env)
        packed = wc("submit", str(data / "ok.txt"), str(data / "escape.txt"), "--json", env=env)
    for run in (proc, packed):
        assert run.returncode == EXIT_INPUT_ERRORS, run.stderr
        doc = json.loads(run.stdout)
        assert doc["total"] == 1 and doc["dead"] == 0 and doc["top"] == [["fine", 1]]
        (err,) = doc["errors"]
        assert err == {"path": str(data / "escape.txt"), "error": "path escapes the data root"}
    # (a forged task escaping the root is refused by the worker:
    # test_poison_missing_and_escaping_tasks_are_dead_lettered)


def test_interrupted_submission_is_completed_without_duplicates(redis_server, small_corpus,
                                                                small_oracle):
    """A client that died after the first batches; a new client submits the same inputs."""
    conn = connect(redis_server, submit_batch=7)
    kind = os.environ["WORDCOUNT_QUEUE"]
    job = client.plan_job([str(small_corpus)], CHUNK)
    functions.submit(conn, job.name, plan_id=job.plan_id, epoch=job.epoch,
                     total=len(job.tasks), total_bytes=job.total_bytes, root=job.root,
                     mount=job.mount, kind=kind, first_seq=1, tasks=job.tasks[:20])
    again = client.plan_job([str(small_corpus)], CHUNK)
    again.queue = kind
    assert again.name == job.name  # same inputs, same job
    assert client.submit(conn, again) == len(job.tasks) - 20
    assert client.submit(conn, again) == 0
    assert client.progress(conn, job.name).submitted == len(job.tasks)
    tasks_key = keys.tasks(job.name) if kind == "stream" else keys.queue(job.name)
    assert conn.client.type(tasks_key) == ("stream" if kind == "stream" else "list")
    assert (conn.client.xlen(tasks_key) if kind == "stream" else conn.client.llen(tasks_key)) \
        == len(job.tasks)
    with LocalCluster(2, redis_server, log_path=redis_server.directory + "/w.log") as cluster:
        waited = cluster.wait(conn, job, timeout_s=120)
    result, _ = client.result(conn, job, 0, waited)
    assert_counts_equal(result.counts, small_oracle)


def test_submit_no_wait_status_and_resume(redis_server, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "a.txt").write_text("alpha beta alpha\n")
    env = redis_server.env()
    first = wc("submit", str(data), "--no-wait", env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    name = first.stdout.strip()
    status = wc("status", "--json", env=env, timeout=60)
    (doc,) = json.loads(status.stdout)
    assert doc["job"] == name and doc["state"] == "running" and doc["total"] == 1 + doc["reduces"]
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        resumed = wc("submit", str(data), "--json", env=env, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    # the worker may finish the job before the second submit reads it: then it is reused
    assert ("(0 new)" in resumed.stderr) != out["reused"], resumed.stderr
    assert out["job"] == name and out["top"] == [["alpha", 2], ["beta", 1]]


def _small_files(data, n: int) -> None:
    """``n`` small files whose words tell them apart (their own word, shared words, a Greek
    final sigma at the end of some: a file boundary must behave as the end of a file)."""
    data.mkdir(parents=True)
    for i in range(n):
        tail = "ΟΔΥΣΣΕΥΣ" if i % 3 == 0 else "Ἀθηνᾶ"
        (data / f"f{i:03d}.txt").write_text(f"file{i} common Words ünïcode {tail}" * (i % 4 + 1))


def test_packed_task_with_a_vanished_file_is_set_aside_whole_and_requeued_exactly(
        redis_server, tmp_path):
    """As a user would: 51 small files are one packed task; one of them vanishes between
    `submit --no-wait` and the worker. The pack is the unit of failure, as a one-range task
    is: it is set aside whole, naming the missing file, and `wait` names every file of the
    pack as not counted (exit 3, nothing silently lost). The file comes back, `requeue` gives
    the pack a new attempt, and `wait` prints the whole table, equal to the serial engine's
    over all 51 files (the soak found the old way: a pack that counted its other files could
    never count the missing one, whatever the operator did)."""
    data = tmp_path / "data"
    _small_files(data, 51)
    env = redis_server.env()
    sub = wc("submit", str(data), "--no-wait", "--job", "packed", env=env, timeout=60)
    assert sub.returncode == 0, sub.stderr
    assert "packed: 1 tasks" in sub.stderr, sub.stderr  # 51 files, one task
    gone = data / "f007.txt"
    gone.rename(tmp_path / "aside.txt")
    worker = wc("worker", "--exit-when-idle", env=env)
    assert worker.returncode == 0, worker.stderr
    assert "cannot read 51 packed ranges (f000.txt .. f050.txt" in worker.stderr \
        and "f007.txt [0:" in worker.stderr, worker.stderr
    waited = wc("wait", "packed", "--counts-out", str(tmp_path / "got.tsv"), env=env, timeout=60)
    assert waited.returncode == EXIT_INPUT_ERRORS, waited.stderr
    for i in (0, 7, 50):  # every file of the pack: none of them was counted
        assert f"{data / f'f{i:03d}.txt'}: task 0-1 (packed, [0:" in waited.stderr, waited.stderr
    assert "f007.txt [0:" in waited.stderr and "No such file or directory" in waited.stderr
    assert "0 files" in waited.stdout, waited.stdout
    early = wc("requeue", "packed", env=env, timeout=60)  # the cause not fixed: said so
    assert early.returncode == 0 and str(gone) in early.stderr, early.stderr
    wc("worker", "--exit-when-idle", env=env)  # (set aside again)
    (tmp_path / "aside.txt").rename(gone)  # the cause fixed (the same file: same identity)
    again = wc("requeue", "packed", env=env, timeout=60)
    assert again.returncode == 0 and "1 dead-lettered tasks requeued" in again.stdout, again.stdout
    worker = wc("worker", "--exit-when-idle", env=env)
    assert worker.returncode == 0, worker.stderr
    waited = wc("wait", "packed", "--counts-out", str(tmp_path / "got.tsv"), env=env, timeout=60)
    assert waited.returncode == 0, waited.stderr
    assert "51 files" in waited.stdout, waited.stdout
    serial = wc("count", str(data), "--counts-out", str(tmp_path / "serial.tsv"), timeout=60)
    assert serial.returncode == 0, serial.stderr
    assert (tmp_path / "got.tsv").read_text() == (tmp_path / "serial.tsv").read_text() \
        == tsv(oracle(data))  # every word of the 51


def test_packed_task_with_a_changed_file_names_that_file_and_prints_no_table(redis_server,
                                                                            tmp_path):
    """A packed file rewritten after planning: the whole pack is set aside as changed (no
    table mixes two versions of a file), and the message names that file, not its 19
    neighbours."""
    data = tmp_path / "data"
    _small_files(data, 20)
    conn = connect(redis_server)
    job = client.plan_job([str(data)], 64 << 20, "changed-pack")
    job.queue = os.environ["WORDCOUNT_QUEUE"]
    assert len(job.tasks) == 1 and len(job.tasks[0].parts) == 20
    client.submit(conn, job)
    victim = data / "f011.txt"
    victim.write_text(victim.read_text() + " appended")
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")) as cluster:
        cluster.wait(conn, job, timeout_s=60)
    with pytest.raises(InputChangedError) as caught:
        client.result(conn, job, 0)
    text = str(caught.value)
    assert "1 input file(s) changed" in text and str(victim) in text, text
    assert "f010.txt" not in text.split("changed while the job ran")[1].split("set aside")[0]


def test_packed_tasks_survive_worker_crashes_exactly(redis_server, tmp_path):
    """Packs of small files and ranges of big ones in one job, workers crashing at a random
    point of half their attempts: the full table equals the oracle's, each pack applied once
    (the soak harness adds packs to 2 runs in 5, with every other fault)."""
    data = tmp_path / "data"
    _small_files(data / "small", 300)
    (data / "big.txt").write_text(" ".join(f"w{i % 997} Ωmega{i % 13}" for i in range(40_000)))
    result, progress, cluster, conn, job = run_job(
        redis_server, data, 3, ["--crash-at", "any", "--crash-prob", "0.5"], chunk=60_000,
        job_name="packs")
    packs = [t for t in job.tasks if t.parts]
    assert packs and sum(len(t.parts) for t in packs) >= 300  # (the small files, packed)
    assert cluster.crashes > 0
    assert result.errors == []
    assert_counts_equal(result.counts, oracle(data))
    assert progress.done == len(job.tasks)
