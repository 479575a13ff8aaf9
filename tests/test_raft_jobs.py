"""Whole jobs on a three-node RedisRaft cluster (real processes on 127.0.0.1), on the lease
queue, while nodes are SIGKILLed: every result is compared in full with the oracle, and every
test checks that its kills happened while the job ran.

Needs the host binaries from ``make raft-bin`` (after ``make raft-sources``); without them every
test here is skipped, naming what is missing. Binaries that are there but broken fail.
"""

from __future__ import annotations

import json
import logging
import random
import threading

import pytest

from wordcount import client
from wordcount.connection import Connection
from wordcount.embedded import LocalCluster
from wordcount.exceptions import EXIT_REDIS, EXIT_USAGE
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.raft import RaftCluster
from wordcount.settings import Settings
from wordcount.workeropts import WorkerOptions

from .conftest import assert_counts_equal, oracle

pytestmark = [pytest.mark.timeout(400)]


@pytest.fixture
def cluster(raft_cluster):
    return raft_cluster


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from wordcount.lab.corpus import generate

    root = tmp_path_factory.mktemp("raftcorpus")
    generate(root, 6, 250_000, skew_size=600_000, seed=21, unicode=True)
    return root


@pytest.fixture(scope="module")
def corpus_oracle(corpus):
    return oracle(corpus)


def connect(cluster: RaftCluster, **overrides) -> Connection:
    settings = Settings.from_env({}, redis_url=cluster.url, redis_password=cluster.password,
                                 **overrides)
    conn = Connection(settings, name="wordcount-test-client")
    conn.ensure_functions()
    return conn


class Job:
    """A job on the cluster with N worker processes. The nemesis ``during(elapsed)`` runs on
    its own thread every 0.1 s (``LocalCluster.wait``: a client waiting through a lost quorum
    must not stop it from bringing nodes back); a kill counts as mid-job if the job had not
    finished yet."""

    def __init__(self, cluster, corpus, tmp_path, workers=2, args=(), chunk=150_000,
                 reduces=0):
        self.cluster, self.tmp_path = cluster, tmp_path
        self.conn = connect(cluster)
        self.job = client.plan_job([str(corpus)], chunk)
        self.job.queue = "lease"
        self.job.reduces = reduces  # > 0: a shuffle job
        self.workers = LocalCluster(workers, cluster, options=WorkerOptions.parse(args),
                                    log_path=str(tmp_path / "workers.log"))
        self.kills_mid_job: list[tuple[float, int]] = []
        self.finished = threading.Event()

    def kill(self, i: int, elapsed: float) -> None:
        self.cluster.kill(i)
        if not self.finished.is_set():
            self.kills_mid_job.append((elapsed, i))

    def run(self, during=None, timeout=300):
        client.submit(self.conn, self.job)
        with self.workers:
            waited = self.workers.wait(self.conn, self.job, timeout_s=timeout, nemesis=during)
            self.finished.set()
            return client.result(self.conn, self.job, 0, waited)


SLOW = ["--slowdown", "60", "--claim-timeout", "3000"]


@pytest.mark.parametrize("reduces", [0, 3], ids=["atomic", "shuffle"])
def test_leader_killed_mid_job(cluster, corpus, corpus_oracle, tmp_path, reduces):
    job = Job(cluster, corpus, tmp_path, 2, SLOW, reduces=reduces)
    state = {}

    def nemesis(elapsed):
        if "killed" not in state and elapsed > 1.5:
            state["killed"] = cluster.leader()
            job.kill(state["killed"], elapsed)
        elif "killed" in state and "back" not in state and elapsed > 4:
            cluster.start(state["killed"])
            state["back"] = elapsed

    result, progress = job.run(nemesis)
    assert job.kills_mid_job, "the job finished before the leader was killed"
    assert_counts_equal(result.counts, corpus_oracle)
    assert progress.check["ok"]


def test_one_follower_down_for_the_whole_job(cluster, corpus, corpus_oracle, tmp_path):
    job = Job(cluster, corpus, tmp_path, 2, ["--slowdown", "10"])
    follower = next(i for i in range(3) if i != cluster.leader())
    job.kill(follower, 0.0)
    result, _ = job.run()
    assert job.kills_mid_job
    assert not cluster.nodes[follower].alive
    assert_counts_equal(result.counts, corpus_oracle)


def test_two_nodes_down_stalls_the_job_until_they_are_back(cluster, corpus, corpus_oracle,
                                                           tmp_path, caplog):
    job = Job(cluster, corpus, tmp_path, 2, SLOW)
    state: dict = {}

    def nemesis(elapsed):
        if "down" not in state and elapsed > 1.5:
            leader = cluster.leader()
            state["down"] = [leader, (leader + 1) % 3]
            state["done_before"] = client.progress(job.conn, job.job.name).done
            for i in state["down"]:
                job.kill(i, elapsed)
            state["at"] = elapsed
        elif "down" in state and "back" not in state and elapsed > state["at"] + 4:
            for i in state["down"]:
                cluster.start(i)
            state["back"] = elapsed

    with caplog.at_level(logging.WARNING, logger="wordcount.connection"):
        result, progress = job.run(nemesis)
    assert len(job.kills_mid_job) == 2, "the job finished before two nodes were killed"
    assert_counts_equal(result.counts, corpus_oracle)
    assert "waiting for a Raft leader" in caplog.text  # what the client said while stalled
    assert progress.done > state["done_before"]


@pytest.mark.parametrize("reduces", [pytest.param(0, marks=pytest.mark.long), 4],
                         ids=["atomic", "shuffle"])
def test_a_random_node_killed_every_3_seconds(cluster, corpus, corpus_oracle, tmp_path,
                                               reduces):
    rng = random.Random(1234)
    job = Job(cluster, corpus, tmp_path, 3, ["--slowdown", "500", "--claim-timeout", "3000"],
              reduces=reduces)
    state = {"next": 1.0, "down": None}

    def nemesis(elapsed):
        if state["down"] is not None and elapsed > state["up_at"]:
            cluster.start(state["down"])
            state["down"] = None
        if state["down"] is None and elapsed > state["next"]:
            victim = rng.randrange(3)
            job.kill(victim, elapsed)
            state.update(down=victim, up_at=elapsed + 1.0, next=elapsed + 3.0)

    result, progress = job.run(nemesis)
    assert len(job.kills_mid_job) >= 3, f"only {job.kills_mid_job} kills landed mid-job"
    assert_counts_equal(result.counts, corpus_oracle)
    assert progress.check["ok"]


def test_leader_killed_after_the_last_commit_before_the_result_is_read(cluster, corpus,
                                                                       corpus_oracle,
                                                                       tmp_path):
    job = Job(cluster, corpus, tmp_path, 2, ["--slowdown", "5"])
    client.submit(job.conn, job.job)
    with job.workers:
        waited = job.workers.wait(job.conn, job.job, timeout_s=120)
    leader = cluster.leader()
    cluster.kill(leader)  # after the last commit, before the result is read
    result, progress = client.result(job.conn, job.job, 0, waited)
    assert not cluster.nodes[leader].alive
    assert_counts_equal(result.counts, corpus_oracle)
    assert progress.check["ok"] and progress.finished


# -- bad input ----------------------------------------------------------------------------

def cli(env, *args, timeout=120):
    return run_wc(*args, env=env, timeout=timeout)


def test_no_quorum_is_a_clear_exit_4(cluster, tmp_path):
    (tmp_path / "a.txt").write_text("some words\n")
    leader = cluster.leader()
    cluster.kill(leader)
    cluster.kill((leader + 1) % 3)
    proc = cli({**cluster.env(), "WORDCOUNT_RETRY_SECONDS": "4"}, "submit", str(tmp_path),
               "--no-wait")
    assert proc.returncode == EXIT_REDIS, proc.stderr
    assert "no Raft leader" in proc.stderr or "unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_wrong_address_in_the_node_list_is_survived(cluster, corpus, corpus_oracle,
                                                      tmp_path):
    from wordcount.embedded import free_port

    bad = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {**cluster.env(), "REDIS_URL": cluster.url.replace("redis://", f"redis://{bad},")}
    with LocalCluster(2, env=env, log_path=str(tmp_path / "w.log")):
        proc = cli(env, "submit", str(corpus), "--json", "--chunk-size", "200K", timeout=240)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total"] == sum(corpus_oracle.values()) and doc["check"]["ok"]


def test_wrong_password_and_stream_queue_on_raft(cluster, tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    wrong = cli({**cluster.env(), "REDIS_PASSWORD": "nope"}, "submit", str(tmp_path))
    assert wrong.returncode == EXIT_REDIS and "Traceback" not in wrong.stderr
    assert "nope" not in wrong.stderr
    stream = cli(cluster.env(), "submit", str(tmp_path), "--queue", "stream", "--no-wait")
    assert stream.returncode == EXIT_USAGE, stream.stderr
    assert "--queue lease" in stream.stderr and "Traceback" not in stream.stderr
