"""Operating jobs and workers (wordcount.jobs, wordcount.registry): list, read back, wait,
cancel, delete, requeue, expire; the worker registry. Real redis-server processes and real
worker processes (`python -m wordcount worker`); every result is compared in full with the
oracle, on both task queues."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from wordcount import client, jobs, keys, registry, report
from wordcount.exceptions import JobCancelledError, JobRunningError, NoSuchJobError
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.clirun import wc_bg
from wordcount.protocol import Meta

from .conftest import assert_counts_equal, connect, oracle

pytestmark = pytest.mark.usefixtures("queue_kind")  # every test on both queues

ROOT = Path(__file__).resolve().parents[1]


class Workers:
    """N `wordcount worker` processes on the server, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, server, n: int, *args: str, log: Path) -> None:
        env = {**os.environ, **server.env()}
        self.log = open(log, "ab")
        self.procs = [wc_bg("worker", *args, base_env=env, stdout=self.log,
                            stderr=subprocess.STDOUT)
                      for _ in range(n)]

    def stop(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(20))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        self.log.close()
        return codes


@pytest.fixture
def corpus(tmp_path):
    from wordcount.lab.corpus import generate

    root = tmp_path / "corpus"
    generate(root, 4, 120_000, seed=9, unicode=True)
    return root


def submit(conn, corpus, chunk=60_000, name=None):
    job = client.plan_job([str(corpus)], chunk, name)
    job.queue = os.environ["WORDCOUNT_QUEUE"]
    client.submit(conn, job)
    return job


def wait_until(predicate, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_meta_field_names_agree_with_the_lua_library():
    """protocol.Meta is the one Python spelling of the meta hash's fields: create_job in the
    .lua file writes exactly those (finished_ms is written when the job ends, late by a map
    settled in the reduce phase)."""
    lua = (ROOT / "redis" / "wordcount.lua").read_text()
    body = lua[lua.index("local function create_job"):lua.index("local function may_replace")]
    written = set(re.findall(r"'([a-z_]+)', (?:args|0|kind|lineage|phase|'running')", body))
    names = {v for k, v in vars(Meta).items() if k.isupper() and isinstance(v, str)}
    assert written | {"finished_ms", "late"} == names


def test_job_keys_agree_with_the_lua_library():
    """The fixed keys a job is created and deleted with: keys.JOB_KEYS and JOB_KEYS in the .lua
    file, in the same order (the Functions take them by position); every fixed key of the key
    layout is one of them."""
    lua = (ROOT / "redis" / "wordcount.lua").read_text()
    block = lua[lua.index("local JOB_KEYS = {"):]
    block = block[:block.index("}")]
    assert tuple(re.findall(r"'([a-z]+)'", block)) == keys.JOB_KEYS
    fixed = {name for name in dir(keys) if getattr(keys, name) is not None
             and callable(getattr(keys, name)) and name in keys.JOB_KEYS}
    assert fixed == set(keys.JOB_KEYS)
    assert keys.job_keys("j")[:len(keys.JOB_KEYS)] == [getattr(keys, n)("j")
                                                       for n in keys.JOB_KEYS]
    # the stream queue's consumer group: the settling Functions name it themselves (GROUP),
    # the others are passed keys.GROUP; the two must be one name
    (group,) = re.findall(r"^local GROUP = '([^']+)'", lua, re.M)
    assert group == keys.GROUP


def test_a_no_wait_job_is_read_back_waited_for_and_checked(redis_server, corpus, tmp_path):
    conn = connect(redis_server)
    submitted = submit(conn, corpus)
    assert client.progress(conn, submitted.name).state == "running"  # no worker yet
    loaded = jobs.load(conn, submitted.name)
    assert (loaded.plan_id, loaded.root, loaded.tasks, loaded.epoch) == (
        submitted.plan_id, submitted.root, submitted.tasks, submitted.epoch)
    workers = Workers(redis_server, 2, log=tmp_path / "w.log")
    try:
        waited = client.wait(conn, loaded, quiet=True, timeout_s=120)
    finally:
        workers.stop()
    result, progress = client.result(conn, loaded, 0, waited)
    assert_counts_equal(result.counts, oracle(corpus))
    assert progress.check["ok"] and progress.job_seconds > 0
    listed = {r.name: r.as_dict() for r in jobs.rows(conn)}
    assert listed[submitted.name]["state"] == "done"
    assert listed[submitted.name]["done"] == len(submitted.tasks)
    assert listed[submitted.name]["distinct"] == len(oracle(corpus))


def test_an_unknown_job_is_a_clear_error(redis_server):
    conn = connect(redis_server)
    with pytest.raises(NoSuchJobError, match="no job 'nope'"):
        jobs.load(conn, "nope")
    with pytest.raises(NoSuchJobError):
        jobs.cancel(conn, "nope")


def test_cancel_stops_a_running_job_and_its_table_stays_as_it_was(redis_server, corpus,
                                                                   tmp_path):
    conn = connect(redis_server)
    job = submit(conn, corpus, chunk=20_000)
    workers = Workers(redis_server, 2, "--slowdown", "40", log=tmp_path / "w.log")
    try:
        wait_until(lambda: client.progress(conn, job.name).done >= 2, what="two commits")
        assert jobs.cancel(conn, job.name) is True
        assert jobs.cancel(conn, job.name) is False  # not running any more: nothing changes
        before = client.fetch_counts(conn, job.name)
        p = client.progress(conn, job.name)
        assert p.state == "cancelled" and p.done < p.total
        assert not conn.call(lambda r: r.hexists(keys.active(), job.name))
        with pytest.raises(JobCancelledError):
            client.wait(conn, job, quiet=True, timeout_s=10)
        time.sleep(3)  # the tasks in flight finish counting: their commits must be refused
    finally:
        workers.stop()
    assert client.fetch_counts(conn, job.name) == before
    assert client.progress(conn, job.name).done == p.done
    # `jobs` shows nothing HELD by a cancelled job (its leases are left to lapse)
    (row,) = [r.as_dict() for r in jobs.rows(conn, job.name)]
    assert row["state"] == "cancelled" and row["pending"] == 0, row
    with pytest.raises(JobCancelledError, match="--fresh"):  # the same inputs again
        client.submit(conn, job)
    again = client.plan_job([str(corpus)], 20_000)  # --fresh: counted again, exactly
    again.queue = job.queue
    client.submit(conn, again, fresh=True)
    workers = Workers(redis_server, 2, log=tmp_path / "w.log")
    try:
        waited = client.wait(conn, again, quiet=True, timeout_s=120)
    finally:
        workers.stop()
    result, _ = client.result(conn, again, 0, waited)
    assert_counts_equal(result.counts, oracle(corpus))


def test_delete_refuses_a_running_job_and_leaves_no_key_of_a_finished_one(redis_server,
                                                                        corpus, tmp_path):
    conn = connect(redis_server)
    job = submit(conn, corpus)
    with pytest.raises(JobRunningError, match="cancel it first"):
        jobs.delete(conn, job.name)
    workers = Workers(redis_server, 2, log=tmp_path / "w.log")
    try:
        client.wait(conn, job, quiet=True, timeout_s=120)
    finally:
        workers.stop()
    jobs.delete(conn, job.name)
    left = conn.call(lambda r: list(r.scan_iter(match=keys.job_pattern(job.name))))
    assert left == []
    assert job.name not in jobs.names(conn)
    with pytest.raises(NoSuchJobError):
        jobs.delete(conn, job.name)
    other = submit(conn, corpus, name="forced")
    jobs.delete(conn, other.name, force=True)
    assert "forced" not in jobs.names(conn)
    assert conn.call(lambda r: list(r.scan_iter(match=keys.job_pattern("forced")))) == []


def test_requeue_counts_dead_letters_again_once_their_cause_is_fixed(redis_server, corpus,
                                                                    tmp_path):
    conn = connect(redis_server)
    job = submit(conn, corpus)
    victim = sorted(corpus.iterdir())[1]
    hidden = tmp_path / "hidden"
    shutil.move(victim, hidden)  # its tasks can't be read: dead letters
    workers = Workers(redis_server, 2, log=tmp_path / "w.log")
    try:
        waited = client.wait(conn, job, quiet=True, timeout_s=120)
        dead = waited.dead
        assert dead >= 1 and waited.finished
        result, _ = client.result(conn, job, 0, waited)
        assert len(result.errors) == dead  # reported, not silently lost
        # not fixed yet: a requeue now would only set them aside again, and says so
        assert jobs.still_unreadable(conn, job.name) == [str(victim)]
        shutil.move(hidden, victim)  # the cause is fixed
        assert jobs.still_unreadable(conn, job.name) == []
        assert jobs.requeue(conn, job.name) == dead
        assert jobs.requeue(conn, job.name) == 0  # nothing dead any more
        waited = client.wait(conn, job, quiet=True, timeout_s=120)
    finally:
        workers.stop()
    result, progress = client.result(conn, job, 0, waited)
    assert progress.dead == 0 and result.errors == []
    assert progress.check["ok"]
    assert_counts_equal(result.counts, oracle(corpus))


def test_finished_jobs_expire_after_keep_jobs_s_and_running_ones_stay(redis_server, corpus,
                                                                      tmp_path):
    conn = connect(redis_server)
    done_job = submit(conn, corpus, name="old")
    workers = Workers(redis_server, 1, "--exit-when-idle", log=tmp_path / "w.log")
    try:
        waited = client.wait(conn, done_job, quiet=True, timeout_s=120)
    finally:
        workers.stop()
    running = submit(conn, corpus, name="young")
    assert jobs.expire(conn, keep_s=3600) == []  # finished just now: kept
    later = waited.finished_ms + 3601 * 1000
    assert jobs.expire(conn, keep_s=3600, now_ms=later) == ["old"]
    assert jobs.names(conn) == ["young"]
    assert client.progress(conn, "old").state == "missing"
    assert client.progress(conn, running.name).state == "running"


def test_the_worker_registry_shows_live_busy_and_lost_workers(redis_server, corpus, tmp_path):
    conn = connect(redis_server)
    workers = Workers(redis_server, 2, "--slowdown", "30", log=tmp_path / "w.log")
    try:
        wait_until(lambda: len(registry.reports(conn)) == 2, what="two workers registered")
        assert {r.state for r in registry.reports(conn)} == {"idle"}
        job = submit(conn, corpus, chunk=30_000)
        wait_until(lambda: {r.state for r in registry.reports(conn)} == {"busy"},
                   what="both workers busy")
        now = registry._now_ms()
        for r in registry.reports(conn):
            assert r.job == job.name and r.task.startswith("0-") and not r.lost(now)
            assert r.pid in {p.pid for p in workers.procs}
        wait_until(lambda: sum(r.applied for r in registry.reports(conn)) >= 2,
                   what="tasks done in the reports")
        killed = workers.procs[0]
        killed.kill()  # no clean stop: its entry stays, and shows as lost later
        killed.wait()
        (dead,) = [r for r in registry.reports(conn) if r.pid == killed.pid]
        soon = dead.beat_ms + int((2 * dead.every_s + 1.5) * 1000)  # 2 reports missed
        assert dead.silent(soon) and not dead.lost(soon)  # shown `busy?`
        later = registry._now_ms() + 60_000
        lost = [r for r in registry.reports(conn, later) if r.lost(later)]
        assert killed.pid in {r.pid for r in lost}
    finally:
        codes = workers.stop()
    assert codes[1] == 0
    left = registry.reports(conn)
    assert [r.pid for r in left] == [killed.pid]  # the clean stop removed its own entry
    # shown LOST, its task and the time it held it blank, UP frozen at its last report
    later = registry._now_ms() + 60_000
    (doc,) = [{**dataclasses.asdict(r), "age_s": r.age_s(later), "lost": r.lost(later)}
              for r in left]
    out = io.StringIO()
    report.print_workers([doc], later, out)
    row = out.getvalue().splitlines()[1].split()
    assert row[1:4] == ["LOST", "-", "-"], row
    assert row[-1] == report._age((doc["beat_ms"] - doc["started_ms"]) / 1000), row
    assert registry.prune_lost(conn) == []  # not lost yet (now): kept
    assert registry.prune_lost(conn, later) == [doc["name"]]  # `workers --prune`
    assert registry.reports(conn) == []


def wc(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return run_wc(*args, env=env, timeout=timeout)


def test_the_operator_commands_as_a_user_types_them(redis_server, corpus, tmp_path):
    """submit --no-wait; result (exit 7 while it runs); workers; wait; jobs/status; requeue;
    cancel; delete -- the CLI, real processes; the waited result in full against the oracle."""
    import json

    from wordcount.exceptions import EXIT_CANCELLED, EXIT_NOT_FINISHED, EXIT_USAGE

    env = redis_server.env()
    sub = wc("submit", str(corpus), "--no-wait", "--chunk-size", "60000", env=env)
    assert sub.returncode == 0, sub.stderr
    name = sub.stdout.strip()
    assert f"wordcount wait {name}" in sub.stderr
    early = wc("result", name, env=env)
    assert early.returncode == EXIT_NOT_FINISHED and "is running" in early.stderr
    refused = wc("delete", name, env=env)
    assert refused.returncode == EXIT_USAGE and "cancel it first" in refused.stderr
    workers = Workers(redis_server, 2, log=tmp_path / "w.log")
    try:
        wait_until(lambda: len(json.loads(wc("workers", "--json", env=env).stdout)) == 2,
                   what="two workers listed")
        out = tmp_path / "counts.tsv"
        waited = wc("wait", name, "--json", "--counts-out", str(out), env=env)
        assert waited.returncode == 0, waited.stderr
    finally:
        workers.stop()
    doc = json.loads(waited.stdout)
    assert doc["check"]["ok"] and doc["seconds"] > 0 and doc["wait_seconds"] >= 0
    from .conftest import tsv

    assert out.read_text(encoding="utf-8") == tsv(oracle(corpus))
    again = wc("result", name, "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["total"] == doc["total"]
    (listed,) = json.loads(wc("jobs", "--json", env=env).stdout)
    (status,) = json.loads(wc("status", "--job", name, "--json", env=env).stdout)
    assert listed == {**status, "seconds": listed["seconds"]}  # one listing, two commands
    assert listed["state"] == "done" and listed["done"] == listed["total"]
    assert listed["words"] == doc["total"] and listed["distinct"] == doc["distinct"]
    text = wc("jobs", env=env).stdout
    assert name in text and "done" in text
    assert "no dead-lettered task" in wc("requeue", name, env=env).stdout
    assert "not running" in wc("cancel", name, env=env).stdout
    other = wc("submit", str(corpus), "--no-wait", "--job", "other", env=env)
    assert other.returncode == 0
    assert "cancelled" in wc("cancel", "other", env=env).stdout
    gone = wc("wait", "other", env=env)
    assert gone.returncode == EXIT_CANCELLED and "cancelled" in gone.stderr
    assert wc("delete", "other", env=env).returncode == 0
    assert wc("result", "other", env=env).returncode == EXIT_USAGE
    assert [d["job"] for d in json.loads(wc("jobs", "--json", env=env).stdout)] == [name]


def test_the_rate_after_a_requeue_is_what_was_counted_while_watching():
    """`wait` after `requeue`: the rate was the job's bytes over its whole age (an hour of
    dead letters waiting made it ~0 MB/s); now it is what was counted while it watched."""
    job = client.Job("j", "p", "/x", [])
    follower = client.Follower(job, quiet=True)
    hour_ago = int(time.time() * 1000) - 3600_000
    before = client.Progress(total=4, done=3, dead=1, done_bytes=3_000_000, state="running",
                             created_ms=hour_ago)
    assert follower.detail(before, 0.01).endswith(", 0.0 MB/s")  # nothing counted yet
    after = client.Progress(total=4, done=4, done_bytes=4_000_000, state="done",
                            created_ms=hour_ago, finished_ms=hour_ago + 3600_000)
    assert follower.detail(after, 0.2).endswith(", 5.0 MB/s"), follower.detail(after, 0.2)
    # a result that was finished before we watched at all: the job's own average
    reused = client.Follower(job, quiet=True)
    assert reused.detail(after, 0.01).endswith(", 0.0 MB/s")  # 4 MB over an hour


def test_a_result_table_is_read_whole_in_chunks_by_rank(redis_server, monkeypatch):
    """The client reads the table with ZRANGE by rank, READ_CHUNK words per call: every word
    once, with its count, whatever the chunk boundaries (equal counts span them)."""
    from collections import Counter

    conn = connect(redis_server)
    table = {f"w{i}": i % 5 + 1 for i in range(1000)} | {"big": 2**40}
    conn.client.zadd(keys.counts("chunks"), table)
    monkeypatch.setattr(client, "READ_CHUNK", 7)
    assert client.fetch_counts(conn, "chunks") == Counter(table)
    monkeypatch.setattr(client, "READ_CHUNK", 1001)
    assert client.fetch_counts(conn, "chunks") == Counter(table)
