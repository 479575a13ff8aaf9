"""The lease queue's clocks: deadlines come from the callers' clocks (``now`` in ARGV), so a
lease's expiry is tested by passing the time; each worker keeps its clock in step with Redis's
(protocol.sync_clock), so workers whose machine clocks are minutes off set deadlines on Redis's
time and count exactly. (Stream-queue leases expire by the server's idle time instead.)"""

from __future__ import annotations

from wordcount import client, functions
from wordcount.embedded import LocalCluster
from wordcount.planner import Task
from wordcount.workeropts import WorkerOptions

from .conftest import assert_counts_equal, connect, oracle

# -- leases and clocks (the lease queue computes deadlines from the callers' clocks) ----------

def test_a_lease_expires_by_the_callers_clock(redis_server):
    """Lease expiry tested by passing the time, as rq's cleanup(timestamp): no sleeping."""
    conn = connect(redis_server)
    client.submit(conn, client.Job("exp", "p", "/x", [Task("a", 0, 1), Task("b", 0, 1)],
                                   queue="lease"))
    t0 = 1_000_000
    first = functions.lease_claim(conn, "exp", "w1", 10_000, now=t0)
    assert (first.id, first.how, first.deliveries) == ("0-1", "new", 1)
    second = functions.lease_claim(conn, "exp", "w2", 10_000, now=t0 + 9_999)
    assert (second.id, second.how) == ("0-2", "new")  # 0-1's lease still runs
    assert functions.lease_claim(conn, "exp", "w2", 10_000, now=t0 + 9_999) is None
    stolen = functions.lease_claim(conn, "exp", "w3", 10_000, now=t0 + 10_001)
    assert (stolen.id, stolen.how, stolen.deliveries) == ("0-1", "stale", 2)
    assert functions.lease_heartbeat(conn, first, "w1", 10_000) is False  # w1 lost it
    assert client.progress(conn, "exp").stolen == 1


def test_workers_with_clocks_minutes_off_still_count_exactly(redis_server, tmp_path,
                                                             monkeypatch):
    """Three workers on the lease queue: one on time, one 5 minutes behind, one 5 minutes
    ahead. Each measures its offset to Redis's clock and sets its deadlines on Redis's time: no
    lease looks expired early (nothing stolen from a live worker) and the count is exact.
    (Before the clocks were synced, the worker behind lost every lease.)"""
    from wordcount.lab.corpus import generate

    monkeypatch.setenv("WORDCOUNT_QUEUE", "lease")

    from .test_distributed import run_job

    corpus = tmp_path / "c"
    generate(corpus, 6, 200_000, seed=17)
    log = str(tmp_path / "w.log")
    skewed = LocalCluster(2, redis_server, options=WorkerOptions(slowdown=20,
                                                                 claim_timeout_ms=1500),
                          envs=[{"WORDCOUNT_CLOCK_SKEW_MS": ms} for ms in ("-300000", "300000")],
                          log_path=log)
    with skewed:  # one worker 5 min behind Redis's clock, one 5 min ahead
        result, progress, _, _, _ = run_job(redis_server, corpus, 1,
                                            ["--slowdown", "20", "--claim-timeout", "1500"],
                                            chunk=100_000)
    assert_counts_equal(result.counts, oracle(corpus))
    assert progress.check["ok"] and progress.queue == "lease"
    assert progress.stolen == 0, "a live worker lost a lease to clock skew"
    text = open(log).read()
    assert "300.0 s ahead of Redis's" in text and "300.0 s behind Redis's" in text


def test_an_unknown_queue_is_a_usage_error(tmp_path, redis_server):
    from wordcount.lab.clirun import wc

    (tmp_path / "a.txt").write_text("x\n")
    env = redis_server.env()
    base = ["submit", str(tmp_path), "--no-wait"]
    flag = wc(*base, "--queue", "bogus", env=env, timeout=60)
    assert flag.returncode == 2 and "invalid choice: 'bogus'" in flag.stderr
    envvar = wc(*base, env={**env, "WORDCOUNT_QUEUE": "bogus"}, timeout=60)
    assert envvar.returncode == 2 and "unknown queue 'bogus'" in envvar.stderr
    assert "Traceback" not in flag.stderr + envvar.stderr
