"""Exactly-once at the edges (issue 13): each scenario reproduced as a user meets it -- real
redis-server and worker processes, the CLI -- and checked for liveness (a bounded wait: a hang
is a failure) beside exactness (the full table against the oracle), or for the documented loud
failure (its exit code, nothing printed as a result).

1 a hole in a big submission; 2 a delete cut short, --fresh racing a waiter; 3 requeue after a
duplicate commit; 4 a job re-created on the other queue kind; 5 delete --force of a waited-for
job; 6 a worker's data root; 7 an input changed mid-job; 8 a library of the same protocol with
other code; 9 backups are not deliveries; 10 several stream jobs at once; 11 a lease worker's
clock a day ahead; 12 a file name that is not UTF-8. (13, RedisRaft pauses: test_raft_*.)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from wordcount import cli, client, functions, keys
from wordcount.exceptions import EXIT_DELETED, EXIT_INPUT_ERRORS
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.clirun import wc_bg
from wordcount.lab.corpus import generate
from wordcount.protocol import Applied
from wordcount.queue import Queues
from wordcount.words import reference_counts

from .conftest import connect, oracle, save, take, tsv

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 90  # every job here ends well within this: past it, the test calls it a hang


class Workers:
    """N `wordcount worker` processes; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, server, n: int, *args: str, log: Path, env: dict | None = None) -> None:
        self.env = {**os.environ, **server.env(), **(env or {})}
        self.args, self.log = args, open(log, "ab")
        self.procs = [self.spawn() for _ in range(n)]

    def spawn(self, *extra: str, env: dict | None = None) -> subprocess.Popen:
        return wc_bg("worker", *self.args, *extra, env=env, base_env=self.env, stdout=self.log,
                     stderr=subprocess.STDOUT)

    def add(self, *extra: str, env: dict | None = None) -> subprocess.Popen:
        p = self.spawn(*extra, env=env)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wc(*args: str, env: dict, timeout: float = BOUND_S + 30, **kw) -> subprocess.CompletedProcess:
    return run_wc(*args, env=env, timeout=timeout, **kw)


def wait_until(predicate, timeout: float = 60.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def counts_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def tiny_corpus(root: Path, n: int, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"f{i:04}.txt").write_text(f"word{i % 7} common w{(i * seed) % 11} Tail\n")
    return root


def in_process_submit(argv: list[str]) -> tuple[int, str, str]:
    """`wordcount submit ...` in this process (so a test can act between its batches)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


# -- 1. a hole in a big submission --------------------------------------------------------------

@pytest.mark.parametrize("fault", ["wipe", "rollback", "delete-force", "fresh"])
def test_a_submission_of_many_batches_has_no_hole(redis_server, queue_kind, tmp_path,
                                                   monkeypatch, fault):
    """23 tasks in batches of 5: between two batches Redis loses the job (restarted with no
    data, or from a snapshot taken after the first batch), or another client deletes it
    (--force) or replaces it (--fresh, same inputs). The job must end exact (or, deleted, stay
    deleted: exit 9), never wait forever for tasks that were never queued."""
    corpus = tiny_corpus(tmp_path / "corpus", 23, seed=3)
    env = redis_server.env()
    monkeypatch.setenv("WORDCOUNT_SUBMIT_BATCH", "5")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    conn = connect(redis_server)
    conn.call(lambda r: r.config_set("save", ""))
    name = "big"
    real = functions.submit
    calls = []

    def submit_then_fault(*args, **kwargs):
        calls.append(kwargs["first_seq"])
        reply = real(*args, **kwargs)
        if len(calls) == 1 and fault == "rollback":
            conn.call(save)  # a snapshot with one batch in it
        if len(calls) == 3:
            if fault in ("wipe", "rollback"):
                redis_server.kill()
                if fault == "wipe":
                    redis_server.wipe()
                redis_server.start()
            elif fault == "delete-force":
                assert wc("delete", "--force", name, env=env).returncode == 0
            else:
                other = wc("submit", str(corpus), "--job", name, "--fresh", "--no-wait",
                           "--pack-size", "0", env=env)
                assert other.returncode == 0, other.stderr
        return reply

    monkeypatch.setattr(functions, "submit", submit_then_fault)
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 2, log=tmp_path / "w.log"):
        code, stdout, stderr = in_process_submit(
            ["submit", str(corpus), "--job", name, "--timeout", str(BOUND_S), "--quiet",
             "--counts-out", str(out), "--pack-size", "0"])  # (a task per file: 23 tasks)
    assert len(calls) >= 4, "the fault did not fall between two batches"
    if fault == "delete-force":
        assert code == EXIT_DELETED, (code, stderr)
        assert "deleted" in stderr and not stdout
        left = conn.call(lambda r: list(r.scan_iter(match=keys.job_pattern(name))))
        assert left == [], left
        return
    assert code == 0, (code, stderr)
    assert counts_of(out) == tsv(oracle(corpus))


# -- 2. a delete cut short; --fresh racing a waiting client ---------------------------------------

def test_a_job_after_a_delete_cut_short_is_counted_again(redis_server, queue_kind, tmp_path):
    """A finished job whose delete was cut short after its meta hash went (what Ctrl-C during
    the old `wordcount delete` left: done, counts, merges still there): submitting the same
    inputs again must count them again, exactly, not answer every task 'duplicate'."""
    corpus = tiny_corpus(tmp_path / "corpus", 4)
    env = redis_server.env()
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 2, log=tmp_path / "w.log"):
        first = wc("submit", str(corpus), "--job", "cut", "--quiet", env=env)
        assert first.returncode == 0, first.stderr
        conn = connect(redis_server)
        conn.call(lambda r: r.delete(keys.meta("cut")))  # the rest of the keys stay behind
        again = wc("submit", str(corpus), "--job", "cut", "--quiet", "--timeout", str(BOUND_S),
                   "--counts-out", str(out), env=env)
    assert again.returncode == 0, again.stderr
    assert counts_of(out) == tsv(oracle(corpus))


def test_an_interrupted_delete_leaves_the_job_whole_or_gone(redis_server, queue_kind,
                                                             tmp_path):
    """SIGINT to `wordcount delete` at many moments: each time the job is either still whole
    (its result readable, exact) or gone (no key left but unreferenced stage pieces), and a new
    submission of the same inputs is exact."""
    corpus = tiny_corpus(tmp_path / "corpus", 6)
    env = redis_server.env()
    conn = connect(redis_server)
    expected = tsv(oracle(corpus))
    with Workers(redis_server, 2, log=tmp_path / "w.log"):
        for i in range(6):
            out = tmp_path / f"c{i}.tsv"
            done = wc("submit", str(corpus), "--job", "cutme", "--quiet", "--counts-out",
                      str(out), "--timeout", str(BOUND_S), env=env)
            assert done.returncode == 0, done.stderr
            assert counts_of(out) == expected
            p = wc_bg("delete", "cutme", env=env)
            time.sleep(0.05 * i)
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=30)
            meta = conn.call(lambda r: r.exists(keys.meta("cutme")))
            left = conn.call(lambda r: [k for k in r.scan_iter(match=keys.job_pattern("cutme"))
                                        if ":stage:" not in k])
            assert meta or not left, f"a delete cut short left {left}"


def test_fresh_while_another_client_waits_finishes_both(redis_server, queue_kind, tmp_path):
    """`submit --fresh` of the same inputs while another client waits for the job: both end
    with the exact table (the waiter follows the new incarnation); neither hangs."""
    corpus = tiny_corpus(tmp_path / "corpus", 12)
    generate(corpus / "gen", 3, 60_000, seed=4)
    env = redis_server.env()
    expected = tsv(oracle(corpus))
    with Workers(redis_server, 2, "--slowdown", "20", log=tmp_path / "w.log"):
        for i in range(3):
            a_out, b_out = tmp_path / f"a{i}.tsv", tmp_path / f"b{i}.tsv"
            waiter = wc_bg("submit", str(corpus), "--job", "racy", "--chunk-size", "20000",
                           "--quiet", "--counts-out", str(a_out), "--timeout", str(BOUND_S),
                           env=env)
            time.sleep(0.3 + 0.2 * i)
            fresh = wc("submit", str(corpus), "--job", "racy", "--chunk-size", "20000",
                       "--fresh", "--quiet", "--counts-out", str(b_out), "--timeout",
                       str(BOUND_S), env=env)
            _, err = waiter.communicate(timeout=BOUND_S + 30)
            assert fresh.returncode == 0, fresh.stderr
            assert waiter.returncode == 0, err
            assert counts_of(a_out) == expected and counts_of(b_out) == expected



def test_fresh_after_a_delete_replaces_what_a_rollback_brings_back(redis_server, queue_kind,
                                                                  tmp_path):
    """Job j of inputs A is submitted and Redis snapshots it; an operator deletes j (--force)
    and someone submits j --fresh with inputs B; Redis then restarts from the snapshot, which
    holds A's incarnation and no tombstone. The --fresh client replaces it again (it was
    created before the --fresh began) and ends exact on B. Before, it exited 2 "replaced by
    another plan while we waited": it replaced only incarnations its first call had seen, and
    j was deleted then (found by the soak harness, seed 7058)."""
    a, b = tiny_corpus(tmp_path / "a", 6, seed=1), tiny_corpus(tmp_path / "b", 9, seed=2)
    env = redis_server.env()
    conn = connect(redis_server)
    conn.call(lambda r: r.config_set("save", ""))
    assert wc("submit", str(a), "--job", "j", "--no-wait", env=env).returncode == 0
    a_epoch = conn.call(lambda r: r.hget(keys.meta("j"), "epoch"))
    conn.call(save)  # the snapshot: A's incarnation
    assert wc("delete", "--force", "j", env=env).returncode == 0
    out = tmp_path / "counts.tsv"
    fresh = wc_bg("submit", str(b), "--job", "j", "--fresh", "--quiet", "--counts-out",
                  str(out), "--timeout", str(BOUND_S), env=env)
    try:
        wait_until(lambda: conn.call(lambda r: r.hget(keys.meta("j"), "epoch")) not in
                   (None, a_epoch), what="the --fresh incarnation")
        redis_server.kill()
        redis_server.start()  # from the snapshot: A's incarnation is back, no tombstone
        with Workers(redis_server, 2, log=tmp_path / "w.log"):
            _, err = fresh.communicate(timeout=BOUND_S + 30)
    finally:
        if fresh.poll() is None:
            fresh.kill()
    assert fresh.returncode == 0, err
    assert counts_of(out) == tsv(oracle(b))

# -- 3. requeue after a duplicate commit --------------------------------------------------------

def test_requeue_after_a_frozen_holder_commits_a_dead_letter(redis_server, queue_kind,
                                                             tmp_path):
    """A task reaches --max-attempts while its frozen holder still has it; the holder wakes
    up and commits (a duplicate); `wordcount requeue`, then `wordcount wait`: it must be
    delivered and settled again, not wait forever."""
    corpus = tmp_path / "corpus"
    generate(corpus, 1, 200_000, seed=5)
    env = redis_server.env()
    conn = connect(redis_server)
    sub = wc("submit", str(corpus), "--job", "frozen", "--no-wait", env=env)
    assert sub.returncode == 0, sub.stderr
    with Workers(redis_server, 0, "--claim-timeout", "400", log=tmp_path / "w.log") as ws:
        holder = ws.add("--slowdown", "30")
        wait_until(lambda: client.progress(conn, "frozen").pending == 1, what="a holder")
        holder.send_signal(signal.SIGSTOP)
        thief = ws.add("--max-attempts", "1")
        wait_until(lambda: client.progress(conn, "frozen").dead == 1, what="a dead letter")
        thief.send_signal(signal.SIGTERM)
        thief.wait(20)
        holder.send_signal(signal.SIGCONT)
        wait_until(lambda: client.progress(conn, "frozen").duplicates == 1, what="its commit")
        requeued = wc("requeue", "frozen", env=env)
        assert requeued.returncode == 0 and "1" in requeued.stdout, requeued
        out = tmp_path / "counts.tsv"
        waited = wc("wait", "frozen", "--timeout", "30", "--counts-out", str(out), env=env)
    assert waited.returncode == 0, waited.stderr
    assert counts_of(out) == tsv(oracle(corpus))


# -- 4. a job re-created on the other queue kind ------------------------------------------------

@pytest.mark.parametrize("first,second", [("stream", "lease"), ("lease", "stream")])
def test_a_job_recreated_on_the_other_queue_is_served(redis_server, tmp_path, first, second):
    corpus = tiny_corpus(tmp_path / "corpus", 5)
    env = redis_server.env()
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 2, log=tmp_path / "w.log"):
        one = wc("submit", str(corpus), "--job", "flip", "--queue", first, "--quiet", env=env)
        assert one.returncode == 0, one.stderr
        two = wc("submit", str(corpus), "--job", "flip", "--queue", second, "--fresh",
                 "--quiet", "--timeout", "30", "--counts-out", str(out), env=env)
    assert two.returncode == 0, two.stderr
    assert counts_of(out) == tsv(oracle(corpus))
    log = (tmp_path / "w.log").read_text()
    assert log.count("vanished") < 50, "workers busy-looped on a job they could not read"


# -- 5. delete --force of a running job that a client waits for -----------------------------

def test_delete_force_stays_a_delete(redis_server, queue_kind, tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus", 5)
    env = redis_server.env()
    conn = connect(redis_server)
    waiter = wc_bg("submit", str(corpus), "--job", "doomed", "--timeout", "60",
                   "--pack-size", "0", env=env)  # (a task per file)
    wait_until(lambda: client.progress(conn, "doomed").submitted == 5, what="the submission")
    deleted = wc("delete", "--force", "doomed", env=env)
    assert deleted.returncode == 0, deleted.stderr
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == EXIT_DELETED, err
    assert "deleted" in err and out == ""
    assert conn.call(lambda r: list(r.scan_iter(match=keys.job_pattern("doomed")))) == []
    listed = json.loads(wc("jobs", "--json", env=env).stdout)
    assert "doomed" not in [d["job"] for d in listed]


# -- 6. a worker's data root maps the job's root ------------------------------------------------

def _two_trees(tmp_path: Path) -> tuple[Path, Path]:
    """data/ with a.txt and books/a.txt (other contents, same names); mnt/, the same tree as
    the workers see it (a copy keeping sizes and mtimes, as a bind mount or rsync -a does)."""
    data = tmp_path / "data"
    (data / "books").mkdir(parents=True)
    (data / "a.txt").write_text("outside outside outside\n")
    (data / "books" / "a.txt").write_text("inside the books\n")
    (data / "books" / "b.txt").write_text("more books here\n")
    mnt = tmp_path / "mnt"
    shutil.copytree(data, mnt, copy_function=shutil.copy2)
    return data, mnt


def test_a_workers_data_root_maps_the_jobs_root(redis_server, queue_kind, tmp_path):
    data, mnt = _two_trees(tmp_path)
    env = {**redis_server.env(), "WORDCOUNT_DATA_ROOT": str(data)}
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 2, "--data-root", str(mnt), log=tmp_path / "w.log"):
        run = wc("submit", str(data / "books"), "--quiet", "--timeout", str(BOUND_S),
                 "--counts-out", str(out), env=env)
    assert run.returncode == 0, run.stderr
    assert counts_of(out) == tsv(oracle(data / "books"))


def test_a_wrong_mapping_is_a_loud_failure_never_another_table(redis_server, queue_kind,
                                                                tmp_path):
    """The client names no data root (so the job's root is its own /…/data/books) and the
    workers map theirs onto it: they find other files of the same names. That must never be
    exit 0 with their table."""
    data, mnt = _two_trees(tmp_path)
    env = redis_server.env()
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 2, "--data-root", str(mnt), log=tmp_path / "w.log"):
        run = wc("submit", str(data / "books"), "--quiet", "--timeout", str(BOUND_S),
                 "--counts-out", str(out), env=env)
    assert run.returncode == EXIT_INPUT_ERRORS, run.stderr
    assert "changed since planning" in run.stderr or "differs from the plan" in run.stderr
    assert not out.exists() and run.stdout == ""


# -- 7. an input changed mid-job ----------------------------------------------------------------

@pytest.mark.parametrize("change", ["rewrite", "truncate", "replace"])
def test_an_input_changed_mid_job_is_a_loud_failure(redis_server, queue_kind, tmp_path,
                                                     change):
    corpus = tmp_path / "corpus"
    generate(corpus, 1, 400_000, seed=8)
    (victim,) = corpus.iterdir()
    env = redis_server.env()
    conn = connect(redis_server)
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 1, "--slowdown", "40", log=tmp_path / "w.log"):
        job = wc_bg("submit", str(corpus), "--job", "moving", "--chunk-size", "50000",
                    "--quiet", "--timeout", str(BOUND_S), "--counts-out", str(out), env=env)
        wait_until(lambda: client.progress(conn, "moving").done >= 1, what="a first commit")
        data = victim.read_bytes()
        if change == "rewrite":  # in place, same size
            with open(victim, "r+b") as f:
                f.write(data.upper())
        elif change == "truncate":
            with open(victim, "r+b") as f:
                f.truncate(len(data) // 2)
        else:  # a new file renamed over it, same size
            fresh = tmp_path / "new"
            fresh.write_bytes(data.upper())
            os.replace(fresh, victim)
        stdout, stderr = job.communicate(timeout=BOUND_S + 30)
    assert job.returncode == EXIT_INPUT_ERRORS, stderr
    assert "changed since planning" in stderr
    assert stdout == "" and not out.exists()


# -- 8. a library of the same protocol with other code --------------------------------------------

def test_a_library_of_the_same_protocol_with_other_code_is_replaced(redis_server, queue_kind,
                                                                    tmp_path):
    """Another build of the same protocol number -- here one that applies every commit twice
    (a hot fix gone wrong, a build that forgot to bump, an old snapshot's library) -- loaded as
    its own program would load it: the client and workers replace it with theirs at start."""
    import hashlib

    from wordcount.connection import PROTOCOL, library_text

    corpus = tiny_corpus(tmp_path / "corpus", 5)
    env = redis_server.env()
    conn = connect(redis_server)
    call = "apply_pairs(k.meta, keys[next_key], args, 13, args[12] ~= '')"
    text = library_text().replace(call, f"{call} {call}")
    assert text != library_text()
    build = hashlib.sha256(text.encode()).hexdigest()[:12]
    doubled = text.replace("local BUILD = '@BUILD@'", f"local BUILD = '{build}'")
    conn.call(lambda r: r.function_load(doubled, replace=True))
    assert conn.call(lambda r: r.fcall_ro("wc_version", 0)) == f"{PROTOCOL}/{build}"
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 2, log=tmp_path / "w.log"):
        # (one phase: its commits increment, where a reduce's ZADD would hide the doubling)
        run = wc("submit", str(corpus), "--quiet", "--commit", "atomic", "--timeout",
                 str(BOUND_S), "--counts-out", str(out), env=env)
    assert run.returncode == 0, run.stderr
    assert counts_of(out) == tsv(oracle(corpus))


# -- 9. backups are not deliveries ----------------------------------------------------------------

def test_backups_never_dead_letter_a_healthy_task(redis_server, queue_kind, tmp_path):
    """Six workers, one task much longer than the others: idle workers back it up again and
    again, but only failed or expired attempts are evidence of a poison task."""
    corpus = tmp_path / "corpus"
    generate(corpus / "small", 20, 5_000, seed=2)
    generate(corpus / "big", 1, 1_500_000, seed=3)
    env = {**redis_server.env(), "WORDCOUNT_SPECULATE_MIN_MS": "100"}
    out = tmp_path / "counts.tsv"
    with Workers(redis_server, 6, "--slowdown", "100", "--max-attempts", "2",
                 log=tmp_path / "w.log", env=env):
        run = wc("submit", str(corpus), "--quiet", "--timeout", str(BOUND_S), "--counts-out",
                 str(out), "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["backups"] >= 2  # the scenario happened
    assert counts_of(out) == tsv(oracle(corpus))


# -- 10. several stream jobs at once -----------------------------------------------------------

def test_two_jobs_at_once_lose_no_task(redis_server, queue_kind, tmp_path):
    one, two = tiny_corpus(tmp_path / "one", 8, 1), tiny_corpus(tmp_path / "two", 8, 2)
    env = redis_server.env()
    for corpus, name in ((one, "j1"), (two, "j2")):
        assert wc("submit", str(corpus), "--job", name, "--no-wait", env=env).returncode == 0
    with Workers(redis_server, 2, "--max-attempts", "1", "--claim-timeout", "1500",
                 log=tmp_path / "w.log"):
        results = [wc("wait", name, "--json", "--timeout", "60", env=env)
                   for name in ("j1", "j2")]
    for run, corpus in zip(results, (one, two), strict=True):
        assert run.returncode == 0, run.stderr
        doc = json.loads(run.stdout)
        assert doc["dead"] == 0 and doc["stolen"] == 0, doc
        assert doc["total"] == sum(oracle(corpus).values())


# -- 11. a lease worker whose clock is a day ahead -----------------------------------------------

def test_a_worker_a_day_ahead_that_dies_does_not_stall_the_job(redis_server, tmp_path):
    corpus = tmp_path / "corpus"
    generate(corpus, 4, 100_000, seed=6)
    env = {**redis_server.env(), "WORDCOUNT_QUEUE": "lease"}
    conn = connect(redis_server)
    out = tmp_path / "counts.tsv"
    sub = wc("submit", str(corpus), "--job", "skewed", "--chunk-size", "50000", "--no-wait",
             env=env)
    assert sub.returncode == 0, sub.stderr
    with Workers(redis_server, 0, "--claim-timeout", "1000", log=tmp_path / "w.log",
                 env=env) as ws:
        ahead = ws.add("--slowdown", "50", env={"WORDCOUNT_CLOCK_SKEW_MS": str(86_400_000)})
        wait_until(lambda: client.progress(conn, "skewed").pending == 1, what="a lease")
        ahead.kill()
        ahead.wait()
        ws.add()
        waited = wc("wait", "skewed", "--timeout", "40", "--counts-out", str(out), env=env)
    assert waited.returncode == 0, waited.stderr
    assert counts_of(out) == tsv(oracle(corpus))


# -- 12. a file name that is not UTF-8 ---------------------------------------------------------

def test_a_file_name_that_is_not_utf8(redis_server, queue_kind, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    odd = os.path.join(os.fsencode(corpus), b"caf\xe9 \xff.txt")
    with open(odd, "wb") as f:
        f.write(b"Caf\xc3\xa9 au lait, caf\xe9 noir\n" * 50)
    (corpus / "plain.txt").write_text("plain words here\n")
    env = redis_server.env()
    out, local = tmp_path / "counts.tsv", tmp_path / "local.tsv"
    with Workers(redis_server, 2, log=tmp_path / "w.log"):
        run = wc("submit", str(corpus), "--timeout", str(BOUND_S), "--counts-out", str(out),
                 env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    counted = wc("count", str(corpus), "--counts-out", str(local), env=env)
    assert counted.returncode == 0, counted.stderr
    expected: Counter[str] = Counter()
    for name in os.listdir(os.fsencode(corpus)):
        with open(os.path.join(os.fsencode(corpus), name), "rb") as f:
            expected.update(reference_counts(f.read()))
    assert counts_of(out) == counts_of(local) == tsv(expected)


# -- 13. a dead letter settled by its holder after a rollback --------------------------------------

def test_a_task_settled_after_a_rollback_is_never_delivered_again(redis_server, queue_kind,
                                                                  tmp_path):
    """A worker takes a task after the last snapshot; Redis restarts from it (the task is not
    delivered there); the worker then sets the task aside (wc_dead: unreadable, an earlier
    PageRank round gone). A dead letter's stream entry is kept for `requeue`, so it was still
    waiting to be delivered: the next take delivered the settled task, and a client that
    polled while it was held saw its job done with a task pending and exited 5 "protocol
    violation" (found by experiment E25: PageRank rounds under Redis kills). A take now
    acknowledges settled entries instead of delivering them (wc_lease_claim always skipped
    them)."""
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.txt").write_text("set aside\n" * 50)
    (data / "b.txt").write_text("counted words counted\n" * 50)
    conn = connect(redis_server)
    conn.call(lambda r: r.config_set("save", ""))
    job = client.plan_job([str(data)], 1 << 20, "j", pack_size=0)
    job.queue = queue_kind
    client.submit(conn, job)
    conn.call(save)  # both tasks waiting to be delivered
    held = take(conn, "j", "w1")
    redis_server.kill()
    redis_server.start()  # the rollback: `held` was never delivered
    assert Queues(conn, "w1", conn.settings).fail(held, "unreadable (the test)") \
        is Applied.APPLIED  # its holder sets it aside after the restart
    other = take(conn, "j", "w2")
    assert other.id != held.id, f"task {held.id}, settled (dead), was delivered again"
    path = data / other.task.path
    counts = reference_counts(path.read_bytes()[other.task.start:other.task.end])
    assert Queues(conn, "w2", conn.settings).complete(
        other, counts, other.task.end - other.task.start, 1) is Applied.APPLIED
    assert Queues(conn, "w3", conn.settings).take(["j"]) is None
    done = client.wait(conn, job, quiet=True, timeout_s=10)
    assert (done.state, done.done, done.dead, done.pending) == ("done", 1, 1, 0)
    assert client.read_finished(conn, job).counts == counts


# -- an operator's day: a job nobody works on --------------------------------------------------

def test_submit_with_no_worker_says_so_and_its_timeout_points_to_wait(redis_server, tmp_path):
    """As a newcomer typed it: `submit` with no worker running showed `0/1 tasks settled` until
    its timeout. It now says, once, that no worker is registered and how to start one; the
    timeout names `wordcount wait JOB`; and once a worker runs, that command gets the result."""
    corpus = tiny_corpus(tmp_path / "corpus", 3)
    env = redis_server.env()
    alone = wc("submit", str(corpus), "--job", "lonely", "--timeout", "6", env=env)
    assert alone.returncode == 6, alone.stderr
    assert alone.stderr.count("no worker is registered") == 1, alone.stderr
    assert "`wordcount worker`" in alone.stderr and "`wordcount wait lonely`" in alone.stderr
    with Workers(redis_server, 1, log=tmp_path / "w.log"):
        later = wc("wait", "lonely", "--timeout", str(BOUND_S), "--counts-out",
                   str(tmp_path / "c.tsv"), env=env)
    assert later.returncode == 0, later.stderr
    assert "no worker is registered" not in later.stderr
    assert counts_of(tmp_path / "c.tsv") == tsv(oracle(corpus))


def test_jobs_and_workers_watch_until_interrupted(redis_server, tmp_path):
    """`wordcount jobs --watch` and `workers --watch` list again every S seconds, until Ctrl-C
    (exit 0); not on a terminal, one listing after another (JSON: one line each)."""
    corpus = tiny_corpus(tmp_path / "corpus", 3)
    env = redis_server.env()
    with Workers(redis_server, 1, log=tmp_path / "w.log"):
        done = wc("submit", str(corpus), "--job", "watched", "--quiet", env=env)
        assert done.returncode == 0, done.stderr
        for command in (["jobs"], ["workers"]):
            proc = wc_bg(*command, "--watch", "0.2", "--json", env=env)
            time.sleep(2.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            listings = [json.loads(line) for line in out.splitlines()]
            assert len(listings) >= 3, out
            if command == ["jobs"]:
                assert all([d["job"] for d in docs] == ["watched"] for docs in listings)
            else:
                assert all(len(docs) == 1 and not docs[0]["lost"] for docs in listings)
        text = wc_bg("jobs", "--watch", "0.2", env=env)
        time.sleep(1.5)
        text.send_signal(signal.SIGINT)
        out, err = text.communicate(timeout=30)
        assert text.returncode == 0, err
        assert out.count("watched") >= 2, out
