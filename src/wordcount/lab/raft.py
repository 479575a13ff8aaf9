"""RedisRaft clusters on loopback, for the tests and for experiments: the Raft counterpart of
``embedded.RedisServer``.

``RaftCluster(n=3)`` starts n redis-server 7.2.6 processes with the RedisRaft module on free
127.0.0.1 ports (one password for clients and, through ``raft.cluster-password``, between the
nodes), runs ``RAFT.CLUSTER INIT`` on the first and ``RAFT.CLUSTER JOIN`` on the others, and
waits until every node is a voter that knows the leader. Nodes can then be SIGKILLed and
started again (a restarted node replays its Raft log and rejoins by itself), or paused
(SIGSTOP: a GC pause, a VM freeze, a stalled disk) and resumed (SIGCONT).

The binaries are not in the repo: ``make raft-sources`` puts the pinned sources in the source
cache, ``make raft-bin`` builds/copies ``redis-server`` and ``redisraft.so`` into
``~/.cache/wordcount/raft-bin`` (``WORDCOUNT_RAFT_BIN``). ``find_binaries()`` finds them or
raises ``RaftUnavailable`` naming what is missing.

``probe_commands()`` (and ``python -m wordcount.lab.raft probe``) tells which commands RedisRaft
accepts inside a Redis Function and a few outside one.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ..embedded import free_port
from ..exceptions import WordcountError

REDIS_VERSION = "7.2.6"
RAFT_BIN_ENV = "WORDCOUNT_RAFT_BIN"
SRC_CACHE_ENV = "WORDCOUNT_SRC_CACHE"


class RaftUnavailable(WordcountError):
    """The RedisRaft binaries are not there (tests skip, with this message as the reason)."""


def default_bin_dir() -> Path:
    return Path(os.environ.get(RAFT_BIN_ENV) or Path.home() / ".cache/wordcount/raft-bin")


def default_src_cache() -> Path:
    return Path(os.environ.get(SRC_CACHE_ENV) or Path.home() / ".cache/wordcount/src")


@dataclass(frozen=True)
class RaftBinaries:
    redis_server: str
    module: str
    redis_cli: str | None = None

    def check(self) -> str:
        """The version line of redis-server; ``WordcountError`` when it is there but does not
        run here, or is not Redis 7.2.6 (broken: a failure, not a reason to skip)."""
        try:
            out = subprocess.run([self.redis_server, "--version"], capture_output=True,
                                 text=True, timeout=10)
        except OSError as e:
            raise WordcountError(f"{self.redis_server} does not run here: {e}") from None
        if out.returncode != 0 or f"v={REDIS_VERSION} " not in out.stdout:
            raise WordcountError(f"{self.redis_server} is not a working redis-server "
                                 f"{REDIS_VERSION}: {(out.stdout + out.stderr).strip()[:300]}")
        return out.stdout.strip()


def find_binaries(directory: str | os.PathLike | None = None) -> RaftBinaries:
    """redis-server and redisraft.so from ``directory`` (default: $WORDCOUNT_RAFT_BIN, else
    ~/.cache/wordcount/raft-bin). Raises ``RaftUnavailable`` saying what is missing and which
    make target provides it."""
    d = Path(directory) if directory else default_bin_dir()
    server, module, cli = d / "redis-server", d / "redisraft.so", d / "redis-cli"
    missing = [p.name for p in (server, module) if not p.is_file()]
    if missing:
        cache = default_src_cache()
        have_sources = all((cache / name / ".git").exists() for name in ("redis", "redisraft"))
        how = ("run `make raft-bin`" if have_sources else
               f"the pinned sources are not in {cache} either: run `make raft-sources`, "
               f"then `make raft-bin`")
        raise RaftUnavailable(f"RedisRaft binaries missing: no {' and no '.join(missing)} in "
                              f"{d} ({how})")
    return RaftBinaries(str(server), str(module), str(cli) if cli.is_file() else None)


class RaftNode:
    """One node: a redis-server + RedisRaft process on 127.0.0.1:port, data in directory."""

    def __init__(self, index: int, port: int, directory: str) -> None:
        self.index = index
        self.port = port
        self.directory = directory
        self.proc: subprocess.Popen | None = None
        self.paused = False  # SIGSTOPped by RaftCluster.pause (and not resumed yet)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "redis.log")

    def __repr__(self) -> str:
        state = ("paused" if self.paused else "up") if self.alive else "down"
        return f"RaftNode({self.index}, {self.addr}, {state})"


class RaftCluster:
    """n RedisRaft nodes on loopback, one cluster. ``with RaftCluster() as c: ...``"""

    def __init__(self, n: int = 3, directory: str | None = None, password: str | None = None,
                 binaries: RaftBinaries | None = None, ports: Iterable[int] | None = None,
                 config: Iterable[str] = ()) -> None:
        """``config``: more redis.conf lines for every node (e.g. ``raft.election-timeout
        500``)."""
        if n < 1:
            raise ValueError("a cluster needs at least one node")
        self.binaries = binaries or find_binaries()
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="wordcount-raft-")
        self.directory = directory or self._tmp.name  # type: ignore[union-attr]
        self.password = password or secrets.token_urlsafe(18)
        port_list = list(ports) if ports is not None else []
        if port_list and len(port_list) != n:
            raise ValueError(f"{n} nodes need {n} ports, not {len(port_list)}")
        while len(port_list) < n:
            p = free_port()
            if p not in port_list:
                port_list.append(p)
        self.nodes = [RaftNode(i, port, os.path.join(self.directory, f"node{i}"))
                      for i, port in enumerate(port_list)]
        self.extra_config = list(config)
        self.dbid: str | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The project's multi-node URL form: ``redis://h1:p1,h2:p2,h3:p3/0``."""
        return "redis://" + ",".join(node.addr for node in self.nodes) + "/0"

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url, "REDIS_PASSWORD": self.password}

    def client(self, i: int, timeout: float = 5.0, **kw: Any) -> redis.Redis:
        """A plain client of node i (no retries: it sees MOVED, CLUSTERDOWN, timeouts)."""
        return redis.Redis(host="127.0.0.1", port=self.nodes[i].port, password=self.password,
                           socket_timeout=timeout, socket_connect_timeout=min(timeout, 2.0),
                           **kw)

    # -- processes --------------------------------------------------------------------------

    def _config(self, node: RaftNode) -> str:
        # The password goes in a 0600 file, never on a command line (visible in ps).
        def q(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines = [f"port {node.port}", "bind 127.0.0.1", f"dir {q(node.directory)}",
                 'save ""', "appendonly no", "daemonize no", "loglevel notice",
                 f"logfile {q(node.log_path)}", f"requirepass {q(self.password)}",
                 f"loadmodule {q(self.binaries.module)}", f"raft.addr {node.addr}",
                 "raft.log-filename raft.db", f"raft.cluster-password {q(self.password)}",
                 *self.extra_config]
        path = os.path.join(node.directory, "redis.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _spawn(self, node: RaftNode, timeout: float) -> None:
        os.makedirs(node.directory, exist_ok=True)
        node.proc = subprocess.Popen([self.binaries.redis_server, self._config(node)],
                                     cwd=node.directory, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = self.client(node.index, timeout=1.0)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.exceptions.BusyLoadingError, redis.exceptions.ResponseError):
                    pass  # loading its log / not ready yet: up enough, keep waiting for PONG
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    if node.proc.poll() is not None:
                        raise WordcountError(f"node {node.index} (redis-server with RedisRaft) "
                                             f"exited at start: {self._tail(node)}") from None
                if time.monotonic() > deadline:
                    raise WordcountError(f"node {node.index} did not answer PING within "
                                         f"{timeout:.0f} s: {self._tail(node)}")
                time.sleep(0.05)
        finally:
            client.close()

    @staticmethod
    def _tail(node: RaftNode, lines: int = 8) -> str:
        try:
            with open(node.log_path, encoding="utf-8", errors="replace") as f:
                return " | ".join(f.read().splitlines()[-lines:]) or "(empty log)"
        except OSError:
            return f"(no log at {node.log_path})"

    def start(self, i: int | None = None, timeout: float = 30.0) -> RaftCluster:
        """``start()``: start every node and form the cluster (INIT on node 0, JOIN on the
        others), then wait until all are voters. ``start(i)``: start node i again after a
        kill; it replays its Raft log and rejoins by itself (not waited for: see
        ``wait_ready``)."""
        if i is not None:
            node = self.nodes[i]
            if node.alive:
                raise WordcountError(f"node {i} is already running")
            self._spawn(node, timeout)
            return self
        self.binaries.check()
        try:
            for node in self.nodes:
                self._spawn(node, timeout)
            first = self.client(0)
            try:
                reply = first.execute_command("RAFT.CLUSTER", "INIT")
            finally:
                first.close()
            reply = reply.decode() if isinstance(reply, bytes) else str(reply)
            self.dbid = reply.split()[-1] if reply.startswith("OK") else None
            for node in self.nodes[1:]:
                self._join(node, timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _join(self, node: RaftNode, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        members = [n.addr for n in self.nodes[: node.index]]
        client = self.client(node.index, timeout=timeout)
        try:
            while True:
                try:
                    client.execute_command("RAFT.CLUSTER", "JOIN", *members)
                    return
                except redis.exceptions.ResponseError as e:
                    if time.monotonic() > deadline:
                        raise WordcountError(f"RAFT.CLUSTER JOIN on node {node.index} failed: "
                                             f"{e}") from None
                    time.sleep(0.2)
        finally:
            client.close()

    def kill(self, i: int) -> None:
        """SIGKILL node i: a crash (its Raft log on disk stays)."""
        node = self.nodes[i]
        if node.proc and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait()
        node.paused = False

    def pause(self, i: int) -> None:
        """SIGSTOP node i: it keeps its sockets open but answers nothing (a GC pause, a VM
        freeze, a stalled disk) until ``resume(i)``. A node that is down stays down (as
        ``kill``, nothing to do)."""
        node = self.nodes[i]
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGSTOP)
            node.paused = True

    def resume(self, i: int) -> None:
        """SIGCONT node i (after ``pause(i)``); harmless on a node that runs or is down."""
        node = self.nodes[i]
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and remove the temporary directory."""
        for node in self.nodes:
            if node.paused:  # a stopped process hears no SIGTERM
                self.resume(node.index)
            if node.proc and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc and node.proc.poll() is None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.kill(node.index)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RaftCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ------------------------------------------------------------------------------

    def info(self, i: int, timeout: float = 2.0) -> dict[str, str]:
        """``INFO raft`` of node i as a flat dict (``raft_role``, ``raft_leader_id``, ...)."""
        client = self.client(i, timeout=timeout)
        try:
            # (redis-py parses INFO into a dict: numbers as int, node lines as dicts)
            info = client.info("raft")
        finally:
            client.close()
        return {k: str(v) for k, v in info.items() if not isinstance(v, dict)}

    def _infos(self) -> dict[int, dict[str, str]]:
        infos = {}
        for node in self.nodes:
            if node.alive and not node.paused:  # a paused node would only time out
                try:
                    infos[node.index] = self.info(node.index)
                except redis.exceptions.RedisError:
                    pass
        return infos

    def find_leader(self) -> int | None:
        """Index of the live node that leads now, else None (paused nodes are not asked). If
        two say they lead (a deposed leader may not know it yet), the one of the later term."""
        infos = self._infos()
        leaders = [i for i, info in infos.items()
                   if info.get("raft_role") == "leader" and info.get("raft_state") == "up"]
        if not leaders:
            return None

        def term(i: int) -> int:
            return int(infos[i].get("raft_current_term", "0") or 0)
        return max(leaders, key=term)

    def leader(self, timeout: float = 15.0) -> int:
        """Index of the current leader, waiting up to ``timeout`` s for one to be elected."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find_leader()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no RedisRaft leader within {timeout:g} s: " + "; ".join(
                    f"node {i} {info.get('raft_state')}/{info.get('raft_role')}"
                    for i, info in self._infos().items()))
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 30.0, nodes: Iterable[int] | None = None) -> int:
        """Wait until the given live nodes (default: every live node not paused) are up,
        voting, and agree on one leader; returns the leader's index."""
        wanted = (list(nodes) if nodes is not None else
                  [n.index for n in self.nodes if n.alive and not n.paused])
        deadline = time.monotonic() + timeout
        while True:
            infos = self._infos()
            ok = all(i in infos and infos[i].get("raft_state") == "up"
                     and infos[i].get("raft_is_voting") == "yes" for i in wanted)
            leader_ids = {infos[i].get("raft_leader_id") for i in wanted if i in infos}
            if ok and len(leader_ids) == 1 and leader_ids != {"-1"}:
                (leader_id,) = leader_ids
                for i, info in infos.items():
                    if info.get("raft_node_id") == leader_id:
                        return i
            if time.monotonic() > deadline:
                raise TimeoutError(f"RedisRaft nodes {wanted} not ready within {timeout:g} s: "
                                   + "; ".join(f"node {i} {info.get('raft_state')}/"
                                               f"{info.get('raft_role')}/voting "
                                               f"{info.get('raft_is_voting')}/leader "
                                               f"{info.get('raft_leader_id')}"
                                               for i, info in infos.items()))
            time.sleep(0.05)

    def wait_caught_up(self, i: int, timeout: float = 30.0) -> None:
        """Wait until node i has applied everything the leader had committed when called."""
        target = int(self.info(self.leader())["raft_commit_index"])
        deadline = time.monotonic() + timeout
        while True:
            try:
                applied = int(self.info(i).get("raft_last_applied_index", "0") or 0)
            except redis.exceptions.RedisError:
                applied = -1
            if applied >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {i} applied up to {applied}, not {target}, within "
                                   f"{timeout:g} s")
            time.sleep(0.05)

    def local_get(self, i: int, key: str) -> bytes | None:
        """GET on node i's own data set, bypassing Raft (RAFT.DEBUG EXEC): a follower's copy."""
        client = self.client(i)
        try:
            reply = client.execute_command("RAFT.DEBUG", "EXEC", "GET", key)
        finally:
            client.close()
        return reply[0] if isinstance(reply, list) else reply


# -- which commands RedisRaft accepts -------------------------------------------------------------

PROBE_LIBRARY = """#!lua name=wcraftprobe
-- Runs ARGV as one command; an argument "$KEYn" stands for KEYS[n].
local function run(keys, args)
  local cmd = {}
  for i, a in ipairs(args) do
    local k = string.match(a, '^%$KEY(%d+)$')
    cmd[i] = k and keys[tonumber(k)] or a
  end
  return redis.call(unpack(cmd))
end
redis.register_function('wcraftprobe_run', run)
redis.register_function{function_name='wcraftprobe_ro', callback=run, flags={'no-writes'}}
"""

# (label, keys, command with $KEYn placeholders). Keys: 1 = hash, 2 = list, 3 = zset, 4 = set,
# 5 = a second list / new name, 6 = a string.
FUNCTION_PROBES: list[tuple[str, list[str]]] = [
    ("HGETALL", ["HGETALL", "$KEY1"]),
    ("HSETNX", ["HSETNX", "$KEY1", "c", "3"]),
    ("HINCRBY", ["HINCRBY", "$KEY1", "a", "1"]),
    ("HLEN", ["HLEN", "$KEY1"]),
    ("HMGET", ["HMGET", "$KEY1", "a", "b"]),
    ("HDEL", ["HDEL", "$KEY1", "a"]),
    ("LRANGE", ["LRANGE", "$KEY2", "0", "-1"]),
    ("LLEN", ["LLEN", "$KEY2"]),
    ("RPUSH", ["RPUSH", "$KEY2", "w"]),
    ("LPOP", ["LPOP", "$KEY2"]),
    ("LMOVE", ["LMOVE", "$KEY2", "$KEY5", "LEFT", "RIGHT"]),
    ("DEL", ["DEL", "$KEY1"]),
    ("EXISTS", ["EXISTS", "$KEY1"]),
    ("RENAME", ["RENAME", "$KEY1", "$KEY5"]),
    ("SADD", ["SADD", "$KEY4", "c"]),
    ("SREM", ["SREM", "$KEY4", "a"]),
    ("SISMEMBER", ["SISMEMBER", "$KEY4", "a"]),
    ("SMEMBERS", ["SMEMBERS", "$KEY4"]),
    ("SCARD", ["SCARD", "$KEY4"]),
    ("ZINCRBY", ["ZINCRBY", "$KEY3", "1", "a"]),
    ("ZADD", ["ZADD", "$KEY3", "4", "d"]),
    ("ZREM", ["ZREM", "$KEY3", "a"]),
    ("ZSCORE", ["ZSCORE", "$KEY3", "a"]),
    ("ZRANGE (by index)", ["ZRANGE", "$KEY3", "0", "-1", "WITHSCORES"]),
    ("ZRANGE BYSCORE", ["ZRANGE", "$KEY3", "-inf", "2", "BYSCORE"]),
    ("ZRANGE BYSCORE LIMIT", ["ZRANGE", "$KEY3", "-inf", "+inf", "BYSCORE", "LIMIT", "0",
                              "1"]),
    ("ZRANGEBYSCORE", ["ZRANGEBYSCORE", "$KEY3", "-inf", "2"]),
    ("ZCARD", ["ZCARD", "$KEY3"]),
    # extras, for the lease queue's design
    ("HSET", ["HSET", "$KEY1", "x", "1", "y", "2"]),
    ("HGET", ["HGET", "$KEY1", "a"]),
    ("HEXISTS", ["HEXISTS", "$KEY1", "a"]),
    ("INCR", ["INCR", "$KEY6"]),
    ("SET", ["SET", "$KEY6", "v"]),
    ("GET", ["GET", "$KEY6"]),
    ("ZPOPMIN", ["ZPOPMIN", "$KEY3"]),
    ("ZRANGESTORE", ["ZRANGESTORE", "$KEY5", "$KEY3", "0", "-1"]),
    ("SPOP", ["SPOP", "$KEY4"]),
    ("SRANDMEMBER", ["SRANDMEMBER", "$KEY4"]),
    ("HSCAN", ["HSCAN", "$KEY1", "0"]),
    ("SSCAN", ["SSCAN", "$KEY4", "0"]),
    ("TIME", ["TIME"]),
    ("PEXPIRE", ["PEXPIRE", "$KEY6", "60000"]),
    ("XADD", ["XADD", "$KEY5", "*", "f", "v"]),
    ("XADD (explicit id)", ["XADD", "$KEY5", "0-1", "f", "v"]),
]


@dataclass
class ProbeResult:
    command: str
    where: str  # "function" (FCALL), "function-ro" (FCALL_RO), "direct"
    accepted: bool
    detail: str


def _short(value: Any, limit: int = 60) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v
    text = repr(plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reset(client: redis.Redis, keys: list[str]) -> None:
    client.delete(*keys)
    client.hset(keys[0], mapping={"a": "1", "b": "2"})
    client.rpush(keys[1], "x", "y", "z")
    client.zadd(keys[2], {"a": 1, "b": 2, "c": 3})
    client.sadd(keys[3], "a", "b")
    client.set(keys[5], "1")


def _woken(client: redis.Redis, blocking: list[str], key: str) -> Any:
    """Run a blocking command while another connection pushes to ``key`` 0.3 s later."""
    import threading

    def push() -> None:
        time.sleep(0.3)
        other = client.__class__(connection_pool=client.connection_pool)
        other.rpush(key, "pushed")
    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        return client.execute_command(*blocking)
    finally:
        pusher.join()


def _watch_conflict(client: redis.Redis, key: str) -> str:
    """WATCH key, change it from another connection, MULTI/EXEC: real Redis aborts (nil)."""
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(key)
        client.set(key, "changed")  # another connection of the pool
        pipe.multi()
        pipe.set(key, "from-exec")
        try:
            pipe.execute()
        except redis.exceptions.WatchError:
            return "EXEC aborted (WATCH works)"
    return "EXEC ran despite the change (WATCH ignored)"


def probe_commands(client: redis.Redis, prefix: str = "wcprobe") -> list[ProbeResult]:
    """Which commands are accepted inside a Redis Function (FCALL) and a few outside one, run
    against ``client`` (the leader of a RedisRaft cluster, or any Redis to compare). Every
    probe starts from the same small data set; the keys are deleted at the end."""
    keys = [f"{prefix}:{name}" for name in ("h", "l", "z", "s", "l2", "str")]
    results: list[ProbeResult] = []
    client.execute_command("FUNCTION", "LOAD", "REPLACE", PROBE_LIBRARY)

    def attempt(label: str, where: str, call: Any, timed: bool = False) -> None:
        t0 = time.monotonic()
        try:
            reply = call()
            took = f" after {time.monotonic() - t0:.2f} s" if timed else ""
            results.append(ProbeResult(label, where, True, _short(reply) + took))
        except redis.exceptions.TimeoutError as e:
            results.append(ProbeResult(label, where, False, f"timeout: {e}"))
        except redis.exceptions.RedisError as e:
            results.append(ProbeResult(label, where, False, str(e).splitlines()[0][:120]))

    try:
        for label, argv in FUNCTION_PROBES:
            _reset(client, keys)
            attempt(label, "function", lambda argv=argv: client.execute_command(
                "FCALL", "wcraftprobe_run", len(keys), *keys, *argv))
        _reset(client, keys)
        attempt("HLEN", "function-ro", lambda: client.execute_command(
            "FCALL_RO", "wcraftprobe_ro", len(keys), *keys, "HLEN", "$KEY1"))
        attempt("ZRANGE BYSCORE", "function-ro", lambda: client.execute_command(
            "FCALL_RO", "wcraftprobe_ro", len(keys), *keys, "ZRANGE", "$KEY3", "-inf", "2",
            "BYSCORE"))

        # outside Functions
        _reset(client, keys)
        empty = f"{prefix}:empty"
        attempt("BLPOP (list has items)", "direct",
                lambda: client.execute_command("BLPOP", keys[1], "0.5"), timed=True)
        attempt("BLPOP (empty list, 0.5 s)", "direct",
                lambda: client.execute_command("BLPOP", empty, "0.5"), timed=True)
        attempt("BLPOP woken by an RPUSH 0.3 s later", "direct",
                lambda: _woken(client, ["BLPOP", empty, "3"], empty), timed=True)
        _reset(client, keys)
        attempt("BLMOVE (list has items)", "direct", lambda: client.execute_command(
            "BLMOVE", keys[1], keys[4], "LEFT", "RIGHT", "0.5"), timed=True)
        attempt("BLMOVE (empty list, 0.5 s)", "direct", lambda: client.execute_command(
            "BLMOVE", empty, keys[4], "LEFT", "RIGHT", "0.5"), timed=True)
        attempt("BLMOVE woken by an RPUSH 0.3 s later", "direct",
                lambda: _woken(client, ["BLMOVE", empty, keys[4], "LEFT", "RIGHT", "3"], empty),
                timed=True)

        def multi() -> Any:
            pipe = client.pipeline(transaction=True)
            pipe.incr(keys[5])
            pipe.hincrby(keys[0], "a", 1)
            return pipe.execute()
        _reset(client, keys)
        attempt("MULTI/EXEC", "direct", multi)
        attempt("FUNCTION LIST", "direct", lambda: client.execute_command(
            "FUNCTION", "LIST", "LIBRARYNAME", "wcraftprobe"))
        attempt("EVAL", "direct", lambda: client.execute_command(
            "EVAL", "return redis.call('HLEN', KEYS[1])", 1, keys[0]))
        attempt("WATCH + MULTI/EXEC, key changed meanwhile", "direct",
                lambda: _watch_conflict(client, keys[5]))
        attempt("XADD", "direct", lambda: client.execute_command("XADD", keys[4], "*", "f", "v"))
    finally:
        try:
            client.delete(*keys)
            client.execute_command("FUNCTION", "DELETE", "wcraftprobe")
        except redis.exceptions.RedisError:
            pass
    return results


def format_probe(results: list[ProbeResult]) -> str:
    width = max(len(r.command) for r in results)
    lines = [f"{'command':<{width}}  {'where':<11}  accepted  reply / error", "-" * (width + 60)]
    lines += [f"{r.command:<{width}}  {r.where:<11}  {'yes' if r.accepted else 'NO':<8}  "
              f"{r.detail}" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m wordcount.lab.raft probe``: start a 3-node cluster, print the probe table."""
    parser = argparse.ArgumentParser(prog="python -m wordcount.lab.raft")
    parser.add_argument("what", choices=["probe"])
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        binaries = find_binaries()
    except RaftUnavailable as e:
        print(e, file=sys.stderr)
        return 2
    with RaftCluster(args.nodes, binaries=binaries) as cluster:
        client = cluster.client(cluster.leader())
        try:
            print(format_probe(probe_commands(client)))
        finally:
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
