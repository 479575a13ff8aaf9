"""A RedisRaft node paused (SIGSTOP: a GC pause, a VM freeze, a stalled disk) while a job runs:
real processes only -- three redis-server + RedisRaft nodes on 127.0.0.1, ``wordcount worker``
processes and the ``wordcount submit`` client, all given the three nodes in REDIS_URL.

- The leader paused for 4 s, then resumed, three times during one job; the same with a
  follower. The client must exit 0 with the full table equal to the oracle's, within a bounded
  time (a hang fails the test), and no worker may die or drop a heartbeat. Before the fix the
  client exited 4 (``TIMEOUT no quorum for read``) a few seconds after the first resume.
- Safety: a write that an isolated old leader accepted but could not commit never counts. See
  ``test_an_isolated_old_leader_never_makes_a_write_count``.

Needs the host binaries from ``make raft-bin`` (after ``make raft-sources``); without them every
test here is skipped, naming what is missing.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import redis
from wordcount import keys
from wordcount.connection import Connection, _no_leader_reply, block_seconds
from wordcount.embedded import LocalCluster
from wordcount.functions import commit
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.clirun import wc_bg
from wordcount.lab.raft import RaftCluster
from wordcount.protocol import Applied
from wordcount.queue import Queues
from wordcount.settings import Settings
from wordcount.workeropts import WorkerOptions

from .conftest import assert_counts_equal, oracle

pytestmark = [pytest.mark.timeout(300)]

JOB_TIMEOUT = 150  # seconds a job may take here before it counts as a hang
PAUSE_S = 4.0
CHUNK = "150000"
# 2 workers at 1/250 speed: 14-30 s of counting (more with the leader paused)
WORKER_ARGS = ["--slowdown", "250", "--claim-timeout", "3000"]
# at 1/600 for the three pauses (~15 s of them): a follower pause hardly slows a job down, and
# a follower-paused job ended before the third pause did at 1/250 (14 s) and again at 1/400
# once idle workers took a new job within 50 ms and small tails were packed (~14 s). The
# slowdown scales with the machine's speed: on a much faster machine the job is shorter.
THREE_PAUSES_ARGS = ["--slowdown", "600", "--claim-timeout", "3000"]
BOGUS = "zzrogue"  # a word no corpus file has: only a rogue commit could put it in a table


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from wordcount.lab.corpus import generate

    root = tmp_path_factory.mktemp("raftpause")
    generate(root, 6, 250_000, skew_size=600_000, seed=23, unicode=True)
    return root


@pytest.fixture(scope="module")
def corpus_oracle(corpus) -> Counter[str]:
    return oracle(corpus)


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n{text}")


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_wc(*args, env=env, timeout=timeout)


def read_tsv(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        word, _, n = line.rpartition("\t")
        counts[word] = int(n)
    return counts


def run_job(cluster: RaftCluster, corpus: Path, tmp_path: Path, nemesis, *wait_args: str,
            submit: bool = True, worker_args: list[str] = WORKER_ARGS
            ) -> tuple[subprocess.CompletedProcess, float, str]:
    """``wordcount submit`` (or ``wordcount wait JOB`` with ``submit=False``) as a process,
    with two ``wordcount worker`` processes, while ``nemesis(elapsed, running)`` runs on this
    thread every 0.1 s. Returns the client's completed process, its seconds and the workers'
    log. The client gets JOB_TIMEOUT s: past it, the test fails as a hang."""
    out = tmp_path / "counts.tsv"
    env = cluster.env()
    argv = (["submit", str(corpus), "--chunk-size", CHUNK] if submit else ["wait", *wait_args])
    argv += ["--json", "--counts-out", str(out), "--timeout", str(JOB_TIMEOUT)]
    log = tmp_path / "workers.log"
    with LocalCluster(2, cluster, options=WorkerOptions.parse(worker_args),
                      log_path=str(log)) as workers:
        started = time.monotonic()
        proc = wc_bg(*argv, env=env)
        try:
            # (the pipes are small: the client writes its progress and result only at the end
            # with --json and a non-terminal stderr, a few lines)
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > JOB_TIMEOUT + 30:
                    proc.kill()
                    raise AssertionError(f"the client hung: still running after {elapsed:.0f} s")
                nemesis(elapsed, True)
                workers.tend()  # a worker that exited (not an injected crash) fails the test
                time.sleep(0.1)
            seconds = time.monotonic() - started
            nemesis(seconds, False)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            for node in cluster.nodes:  # never leave a node stopped (the workers' stop waits)
                cluster.resume(node.index)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return done, seconds, log.read_text(errors="replace") if log.exists() else ""


class Pauses:
    """The nemesis: pause the leader (or a follower) for PAUSE_S, resume it, wait ``gap`` s,
    ``times`` times; records (node, paused at, resumed at, job still running at resume)."""

    def __init__(self, cluster: RaftCluster, target: str, times: int = 3, first: float = 1.0,
                 gap: float = 1.0) -> None:
        self.cluster, self.target, self.times, self.gap = cluster, target, times, gap
        self.next_at = first
        self.current: tuple[int, float] | None = None
        self.done: list[tuple[int, float, float, bool]] = []

    def __call__(self, elapsed: float, running: bool) -> None:
        if self.current is not None and (elapsed >= self.current[1] + PAUSE_S or not running):
            node, at = self.current
            self.cluster.resume(node)
            self.done.append((node, at, elapsed, running))
            self.current, self.next_at = None, elapsed + self.gap
        elif (self.current is None and running and len(self.done) < self.times
              and elapsed >= self.next_at):
            leader = self.cluster.leader(timeout=20)
            victim = leader if self.target == "leader" else (leader + 1) % len(
                self.cluster.nodes)
            self.cluster.pause(victim)
            self.current = (victim, elapsed)

    @property
    def mid_job(self) -> list[tuple[int, float, float, bool]]:
        return [p for p in self.done if p[3]]


# -- the connection layer's view ------------------------------------------------------------

@pytest.mark.parametrize("reply", [
    "CLUSTERDOWN No raft leader", "TRYAGAIN", "TIMEOUT not committed yet",
    "TIMEOUT no quorum for read", "TIMEOUT no reply from leader", "NOTLEADER Failed to proxy "
    "command", "NOCLUSTER No Raft Cluster", "ERR not leader",
    "ERR leader transfer is in progress"])
def test_replies_of_a_cluster_without_leader_are_transient(reply):
    assert _no_leader_reply(redis.exceptions.ResponseError(reply))
    # as redis-py raises them out of a pipeline
    annotated = f"Command # 2 (HGET wc:{{j}}:meta done) of pipeline caused error: {reply}"
    assert _no_leader_reply(redis.exceptions.ResponseError(annotated))


@pytest.mark.parametrize("reply", ["ERR unknown command 'X'", "WCVERSION library 6/abc",
                                   "NOPERM no permissions", "ERR Error running script: TIMEOUT",
                                   "WRONGTYPE Operation against a key"])
def test_other_replies_are_not(reply):
    assert not _no_leader_reply(redis.exceptions.ResponseError(reply))


def test_noauth_after_our_credentials_worked_is_a_node_to_reconnect_to():
    """A RedisRaft node restarted after a leader kill answered BLPOP with NOAUTH on a
    connection made while it loaded its log (workers exited 4, "refused our credentials":
    soak seeds 9014, 13664 and the shuffle's leader-kill test, ~2 runs in 3). Once a call has
    succeeded, NOAUTH drops that node's connections and is retried; before any success it is
    a refusal of our credentials, at once."""
    conn = Connection(Settings.from_env({}, redis_url="redis://127.0.0.1:1,127.0.0.1:2/0",
                                        redis_password="pw", retry_seconds=5))
    replies = iter([redis.exceptions.AuthenticationError("Authentication required."), "ok"])

    def fn(_r):
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply
    from wordcount.exceptions import RedisUnavailableError

    with pytest.raises(RedisUnavailableError, match="refused our credentials"):
        conn.call(fn)  # first contact: our credentials are refused
    conn._authenticated = True  # (as after any successful call)
    replies = iter([redis.exceptions.AuthenticationError("Authentication required."), "ok"])
    assert conn.call(fn) == "ok"
    wrong = redis.exceptions.AuthenticationError("WRONGPASS invalid username-password pair")
    replies = iter([wrong, "ok"])
    with pytest.raises(RedisUnavailableError):
        conn.call(fn)  # a password refused is never retried


def test_a_blocking_read_woken_by_a_push_returns_at_once(raft_cluster):
    """RedisRaft answers a BLPOP that a push wakes up with NOAUTH (a plain client with no
    retries sees it every time). Through Connection the wait just ends, at once, and the
    next call works: before, a worker exited 4 ("refused our credentials"), then, with the
    NOAUTH retried as a failed node, every wake-up cost ~2 s (the shuffle's reduces waited
    2 s for their workers)."""
    cluster = raft_cluster
    conn = Connection(Settings.from_env({}, redis_url=cluster.url,
                                        redis_password=cluster.password))
    try:
        conn.call(lambda r: r.delete("wc:wake"))
        for _ in range(3):
            timer = threading.Timer(0.3, lambda: conn.call(lambda r: r.rpush("wc:wake", 1)))
            timer.start()
            started = time.monotonic()
            conn.call(lambda r: r.blpop(["wc:wake"], 20))
            waited = time.monotonic() - started
            timer.join()
            assert waited < 10, f"a woken BLPOP returned after {waited:.1f} s (blocks 20 s)"
            assert conn.call(lambda r: r.set("wc:after", "1"))  # the connection works on
    finally:
        conn.close() if hasattr(conn, "close") else None


def test_block_seconds():
    assert block_seconds(("BLPOP", "a", "b", 0.5)) == 0.5
    assert block_seconds(("BLMOVE", "a", "b", "LEFT", "RIGHT", "2")) == 2.0
    assert block_seconds(("XREAD", "COUNT", 1, "BLOCK", 1000, "STREAMS", "s", "$")) == 1.0
    assert block_seconds(("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", "s", ">")
                         ) is None
    assert block_seconds(("BLPOP", "a", 0)) == float("inf")
    assert block_seconds(("GET", "k")) is None
    assert block_seconds(("FCALL", "wc_commit", 1, "k", "BLPOP")) is None


def test_a_write_goes_through_while_the_leader_is_paused(raft_cluster, capsys):
    """One call through Connection while the leader is stopped: the connection it had open to
    the leader times out (2 s, not 11), and the call lands on the new leader."""
    cluster = raft_cluster
    conn = Connection(Settings.from_env({}, redis_url=cluster.url,
                                        redis_password=cluster.password))
    try:
        conn.call(lambda r: r.set("wc:pause", "0"))  # (now talking to the leader)
        old = cluster.leader()
        cluster.pause(old)
        started = time.monotonic()
        conn.call(lambda r: r.set("wc:pause", "1"))
        seconds = time.monotonic() - started
    finally:
        conn.close()
        for node in cluster.nodes:
            cluster.resume(node.index)
    cluster.resume(old)  # twice: harmless
    new = cluster.wait_ready(30)
    report(capsys, f"RedisRaft, leader (node {old}) paused: a write went through on node {new} "
                   f"after {seconds:.2f} s")
    assert new != old
    for i in range(3):
        cluster.wait_caught_up(i)
        assert cluster.local_get(i, "wc:pause") == b"1", f"node {i}"


@pytest.mark.parametrize("target", ["leader", pytest.param("follower", marks=pytest.mark.long)])
def test_node_paused_three_times_mid_job(raft_cluster, corpus, corpus_oracle, tmp_path, capsys,
                                         target):
    pauses = Pauses(raft_cluster, target)
    done, seconds, workers_log = run_job(raft_cluster, corpus, tmp_path, pauses,
                                         worker_args=THREE_PAUSES_ARGS)

    report(capsys, f"RedisRaft, {target} paused {PAUSE_S:g} s x{len(pauses.mid_job)} mid-job: "
                   f"client exit {done.returncode} after {seconds:.1f} s; pauses (node, from, "
                   f"to) {[(n, round(a, 1), round(b, 1)) for n, a, b, _ in pauses.done]}; "
                   f"{workers_log.count('waiting for a Raft leader')} retry warnings in the "
                   "workers' log")
    assert done.returncode == 0, f"client exit {done.returncode}:\n{done.stderr[-3000:]}"
    assert len(pauses.mid_job) == 3, f"pauses that ended mid-job: {pauses.done}"
    assert_counts_equal(read_tsv(tmp_path / "counts.tsv"), corpus_oracle)
    doc = json.loads(done.stdout)
    assert doc["check"]["ok"] and doc["dead"] == 0, doc
    assert "heartbeat failed" not in workers_log, workers_log[-3000:]
    assert "Traceback" not in workers_log + done.stderr, (workers_log + done.stderr)[-3000:]


# -- safety ---------------------------------------------------------------------------------

class Recorder:
    """Stands for a Connection: records the FCALL a Function wrapper would send."""

    def __init__(self) -> None:
        self.command: list[object] = []

    def fcall(self, name: str, keys_: list[str], args: list[object]) -> int:
        self.command = ["FCALL", name, len(keys_), *keys_, *args]
        return int(Applied.APPLIED)


def rogue_commit(c) -> list[object]:
    """The FCALL that settles task ``c`` with a wrong table (1,000,000 times BOGUS)."""
    recorder = Recorder()
    commit(recorder, c, [BOGUS, 1_000_000], c.task.nbytes, 1_000_000, 1)  # type: ignore[arg-type]
    return recorder.command


def send_raw(cluster: RaftCluster, node: int, command: list[object],
             into: dict) -> threading.Thread:
    """Send ``command`` to node ``node`` only, on a plain connection (no retry, no MOVED
    followed: a retry would be a new write, which the majority would log), on a thread;
    ``into["reply"]`` gets its reply or exception."""
    client = cluster.client(node, timeout=120)

    def run() -> None:
        try:
            into["reply"] = client.execute_command(*command)
        except redis.exceptions.RedisError as e:
            into["reply"] = e
        finally:
            client.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def local_score(cluster: RaftCluster, i: int, key: str, member: str) -> str | None:
    """ZSCORE on node i's own data set (RAFT.DEBUG EXEC: no Raft, a follower's own copy)."""
    client = cluster.client(i)
    try:
        reply = client.execute_command("RAFT.DEBUG", "EXEC", "ZSCORE", key, member)
    finally:
        client.close()
    reply = reply[0] if isinstance(reply, list) else reply
    return reply.decode() if isinstance(reply, bytes) else reply


def test_an_isolated_old_leader_never_makes_a_write_count(raft_cluster, corpus, corpus_oracle,
                                                          tmp_path, capsys):
    """The leader is cut off from the others (they are SIGKILLed: nothing it sends reaches
    them), and a rogue worker's commit -- a task settled with a wrong table -- is sent to it
    alone: the leader appends it to its Raft log but cannot commit it. It is then paused
    (SIGSTOP) and a second rogue commit is sent to it while it is stopped. The two other nodes
    come back (from their own logs, which never held the rogue write), elect a leader of their
    own and run the job with real workers; the old leader is resumed mid-job. Neither rogue
    commit may ever count: the old leader answers them with an error (never a result), the
    word they carry is in no node's table, and the job's table equals the oracle's."""
    cluster = raft_cluster
    env = cluster.env()
    submitted = cli(env, "submit", str(corpus), "--chunk-size", CHUNK, "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.split()[-1]
    settings = Settings.from_env({}, redis_url=cluster.url, redis_password=cluster.password,
                                 claim_timeout_ms=2000)
    conn = Connection(settings, name="rogue")
    try:
        rogue = Queues(conn, "rogue", settings)
        tasks = [rogue.take([job]), rogue.take([job])]  # leases of 2 s: stolen later
    finally:
        conn.close()
    assert all(tasks), f"no task of {job} to take"
    writes = [rogue_commit(c) for c in tasks]  # type: ignore[arg-type]

    old = cluster.leader()
    others = [i for i in range(3) if i != old]
    for i in others:
        cluster.kill(i)
    last = int(cluster.info(old)["raft_current_index"])
    replies: list[dict] = [{}, {}]
    threads = [send_raw(cluster, old, writes[0], replies[0])]
    deadline = time.monotonic() + 1.0  # (it steps down after 2 s without a quorum)
    while True:  # until its log holds one more entry than it could commit
        info = cluster.info(old)
        appended = int(info["raft_current_index"]) > max(last, int(info["raft_commit_index"]))
        if appended or time.monotonic() > deadline or replies[0]:
            break
        time.sleep(0.02)
    cluster.pause(old)
    assert appended and not replies[0], (
        f"the isolated leader did not hold the rogue write uncommitted: {info}, {replies[0]}")
    threads.append(send_raw(cluster, old, writes[1], replies[1]))  # into its socket, stopped

    for i in others:
        cluster.start(i)
    new = cluster.leader(timeout=30)  # (the paused node is not asked)
    assert new in others

    class ResumeMidJob:
        at: float | None = None

        def __call__(self, elapsed: float, running: bool) -> None:
            if self.at is None and (elapsed > 6 or not running):
                cluster.resume(old)
                self.at = elapsed if running else None

    resume = ResumeMidJob()
    done, seconds, workers_log = run_job(cluster, corpus, tmp_path, resume, job, submit=False)
    for t in threads:
        t.join(30)

    answers = [f"{type(r.get('reply')).__name__}: {r.get('reply')}" for r in replies]
    report(capsys, f"RedisRaft, isolated old leader (node {old}): rogue commits answered "
                   f"{answers}; new leader node {new}; old leader resumed at {resume.at} s; "
                   f"job {seconds:.1f} s, client exit {done.returncode}")
    assert resume.at is not None, "the job finished before the old leader was resumed"
    assert done.returncode == 0, f"client exit {done.returncode}:\n{done.stderr[-3000:]}"
    for r in replies:
        assert isinstance(r.get("reply"), redis.exceptions.RedisError), (
            f"a rogue commit sent to the isolated leader was answered {r.get('reply')!r}")
    assert_counts_equal(read_tsv(tmp_path / "counts.tsv"), corpus_oracle)
    for i in range(3):
        cluster.wait_caught_up(i)
        assert local_score(cluster, i, keys.counts(job), BOGUS) is None, f"node {i}"
    assert "Traceback" not in workers_log + done.stderr, (workers_log + done.stderr)[-3000:]
