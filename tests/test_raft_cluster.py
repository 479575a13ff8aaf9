"""RedisRaft on loopback: 3-node clusters of real redis-server 7.2.6 + RedisRaft processes
(src/wordcount/lab/raft.py), their failure behaviour, and which commands RedisRaft accepts inside a
Redis Function (the table the lease queue's Lua is written against).

Needs the host binaries from ``make raft-bin`` (which needs ``make raft-sources``); without
them every test here is skipped, naming what is missing. Binaries that are there but don't run
are a failure. Traffic: 127.0.0.1 only.
"""

from __future__ import annotations

import time

import pytest

import redis
from wordcount.lab.raft import (
    FUNCTION_PROBES,
    RaftCluster,
    format_probe,
    probe_commands,
)

pytestmark = [pytest.mark.timeout(300)]

# What "writes are refused" may look like on a node of a cluster that lost its majority.
REFUSED = (redis.exceptions.ResponseError, redis.exceptions.TimeoutError,
           redis.exceptions.ConnectionError)


@pytest.fixture
def cluster(raft_cluster):
    return raft_cluster


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n{text}")


def write_until_accepted(cluster: RaftCluster, key: str, value: str,
                         timeout: float) -> tuple[int, float, list[str]]:
    """SET key on every live node in turn until one accepts it; (node, seconds, refusals)."""
    t0 = time.monotonic()
    refusals: list[str] = []
    while True:
        for node in cluster.nodes:
            if not node.alive:
                continue
            client = cluster.client(node.index, timeout=1.0)
            try:
                if client.set(key, value):
                    return node.index, time.monotonic() - t0, refusals
            except REFUSED as e:
                refusals.append(f"{type(e).__name__}: {e}")
            finally:
                client.close()
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"no node accepted a write within {timeout} s; last refusals: "
                                 f"{refusals[-4:]}")
        time.sleep(0.05)


def test_cluster_boots_with_three_voters_and_one_leader(cluster):
    leader = cluster.leader()
    infos = [cluster.info(i) for i in range(3)]
    assert all(i["raft_state"] == "up" and i["raft_is_voting"] == "yes" for i in infos)
    assert {i["raft_num_voting_nodes"] for i in infos} == {"3"}
    assert len({i["raft_dbid"] for i in infos}) == 1
    assert [i["raft_role"] for i in infos].count("leader") == 1
    assert infos[leader]["raft_role"] == "leader"
    ports = [n.port for n in cluster.nodes]
    assert cluster.url == "redis://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/0"
    assert cluster.env() == {"REDIS_URL": cluster.url, "REDIS_PASSWORD": cluster.password}
    unauthenticated = redis.Redis(port=ports[0], socket_timeout=2)
    with pytest.raises(redis.exceptions.AuthenticationError):
        unauthenticated.set("x", "1")
    unauthenticated.close()


def test_write_on_leader_is_readable_and_replicated(cluster):
    leader = cluster.leader()
    client = cluster.client(leader)
    assert client.set("greeting", "hello")
    assert client.hset("h", mapping={"a": 1, "b": 2}) == 2
    assert client.get("greeting") == b"hello"
    assert client.hgetall("h") == {b"a": b"1", b"b": b"2"}
    client.close()
    for i in range(3):
        cluster.wait_caught_up(i)
        assert cluster.local_get(i, "greeting") == b"hello", f"node {i}'s own copy"


def test_follower_answers_moved_to_the_leader(cluster):
    leader = cluster.leader()
    follower = next(i for i in range(3) if i != leader)
    client = cluster.client(follower)
    with pytest.raises(redis.exceptions.ResponseError) as e:
        client.set("k", "v")
    client.close()
    assert isinstance(e.value, redis.exceptions.MovedError), repr(e.value)
    assert cluster.nodes[leader].addr in str(e.value)


def test_leader_sigkill_fails_over_to_another_node(cluster, capsys):
    old = cluster.leader()
    client = cluster.client(old)
    assert client.set("before", "1")
    client.close()
    for i in range(3):
        cluster.wait_caught_up(i)

    cluster.kill(old)
    node, seconds, refusals = write_until_accepted(cluster, "after", "2", timeout=20)
    report(capsys, f"RedisRaft failover: leader (node {old}) SIGKILLed -> node {node} accepted "
                   f"a write after {seconds:.2f} s ({len(refusals)} refusals meanwhile, e.g. "
                   f"{sorted(set(r.split(':')[0] for r in refusals))})")
    assert node != old
    assert seconds < 15
    new = cluster.leader()
    assert new == node
    c = cluster.client(new)
    assert c.get("before") == b"1" and c.get("after") == b"2"
    c.close()

    # the old leader comes back as a follower and catches up
    cluster.start(old)
    cluster.wait_ready(30)
    assert cluster.info(old)["raft_is_voting"] == "yes"
    cluster.wait_caught_up(old)
    assert cluster.local_get(old, "after") == b"2"


def test_killed_follower_restarts_rejoins_and_catches_up(cluster):
    leader = cluster.leader()
    follower = next(i for i in range(3) if i != leader)
    cluster.kill(follower)
    client = cluster.client(leader)
    for n in range(200):  # two of three nodes: the majority still commits
        assert client.set(f"k{n}", n)
    client.close()

    cluster.start(follower)
    cluster.wait_ready(30)
    info = cluster.info(follower)
    assert info["raft_role"] == "follower" and info["raft_is_voting"] == "yes"
    cluster.wait_caught_up(follower)
    assert cluster.local_get(follower, "k199") == b"199"
    assert cluster.local_get(follower, "k0") == b"0"


@pytest.mark.parametrize("survivor", ["leader", "follower"])
def test_two_nodes_down_refuses_writes_and_recovers(cluster, capsys, survivor):
    leader = cluster.leader()
    keep = leader if survivor == "leader" else next(i for i in range(3) if i != leader)
    down = [i for i in range(3) if i != keep]
    for i in down:
        cluster.kill(i)

    # For a few seconds (past the election timeout), no write may be accepted.
    seen: list[str] = []
    deadline = time.monotonic() + 4
    n = 0
    while time.monotonic() < deadline:
        client = cluster.client(keep, timeout=1.5)
        try:
            accepted = client.set(f"lost{n}", "x")
            raise AssertionError(f"the {survivor} alone accepted a write ({accepted!r})")
        except REFUSED as e:
            seen.append(f"{type(e).__name__}: {e}")
        finally:
            client.close()
        n += 1
        time.sleep(0.2)
    kinds = sorted({s.split(":")[0] for s in seen})
    report(capsys, f"RedisRaft, 2 of 3 down, {survivor} left: writes refused with {kinds}; "
                   f"last: {seen[-1]}")
    if survivor == "follower":  # once its election timeout passed: no leader at all
        assert any("CLUSTERDOWN" in s or "ClusterDown" in s for s in seen), seen
    else:  # a leader that cannot reach a majority: the write never completes
        assert all(("Timeout" in s or "CLUSTERDOWN" in s or "ClusterDown" in s) for s in seen), \
            seen

    for i in down:
        cluster.start(i)
    node, seconds, _ = write_until_accepted(cluster, "back", "1", timeout=30)
    report(capsys, f"RedisRaft: both nodes back -> node {node} accepted a write after "
                   f"{seconds:.2f} s")
    cluster.wait_ready(30)
    c = cluster.client(cluster.leader())
    assert c.get("back") == b"1"
    c.close()


def test_commands_inside_functions(cluster, capsys):
    """The probe table (also: python -m wordcount.lab.raft probe). Asserts only what
    /work/shared/REDISRAFT.md and RedisRaft's docs say; the rest is reported."""
    client = cluster.client(cluster.leader())
    results = probe_commands(client)
    client.close()
    report(capsys, "RedisRaft: commands inside a Redis Function (FCALL) and outside:\n"
                   + format_probe(results))
    by = {(r.command, r.where): r for r in results}
    assert {label for label, _ in FUNCTION_PROBES} <= {c for c, w in by if w == "function"}
    for command in ("HSETNX", "HSET", "ZINCRBY", "ZADD", "SADD", "HGETALL", "LRANGE"):
        assert by[(command, "function")].accepted, by[(command, "function")]
    for command in ("HSCAN", "TIME"):
        assert not by[(command, "function")].accepted
        assert "random" in by[(command, "function")].detail
    assert not by[("XADD", "direct")].accepted
    assert by[("FUNCTION LIST", "direct")].accepted
