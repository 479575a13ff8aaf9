"""Every Redis call goes through here: one client, one retry policy, one place that (re)loads the
Redis Function library.

- Connection errors, timeouts and "LOADING" (a restarted Redis reading its RDB file) are retried
  with capped exponential backoff (tenacity) for ``settings.retry_seconds``; then
  RedisUnavailableError. Wrong or missing credentials are never retried.
- On a RedisRaft cluster (a URL listing several nodes) a follower's MOVED is followed, and a
  node that has no leader to commit through (CLUSTERDOWN, "TIMEOUT not committed yet", "TIMEOUT
  no quorum for read", ...) or does not answer within a short socket timeout (paused, cut off)
  is left for the next node, inside the same budget (see ``Connection``).
- ``ensure_functions`` (every client and worker, at start) checks the identity of the library
  in Redis: its protocol version and its build (a hash of the .lua file's text, so a hot fix,
  a build that forgot to bump the protocol or an old snapshot's library is told apart from
  ours). None → load ours; an older protocol, or another build of ours → replace it with ours
  (callers of the replaced one are then refused by every Function); a newer protocol → refuse
  to run (exit 4). Functions persist in RDB/AOF, so without this an upgraded worker would keep
  running the old commit logic restored from a snapshot.
- ``fcall`` loads the library when Redis answers "Function not found" (a fresh Redis that
  restarted with no data) and tries once more. The library's error replies (WCVERSION: a
  Function refusing our protocol/build, someone loaded another under us; and the others) are
  decoded in one table, ``functions._ERRORS``.
Retrying a call whose reply was lost is safe by construction: every Function is idempotent.

Who loads the library: whichever worker or client first finds it missing or older (the ACL of
redis/users.acl gives both roles FUNCTION LOAD, and only that of FUNCTION's subcommands). That is
safe because Function code runs with the rights of the user calling FCALL, never more: a library
loaded by a worker can do only what worker and client can do anyway (read and write wc:* keys),
and the one user with more rights, admin, may not FCALL at all. So a Redis restarted from nothing
is repaired by the first caller, without an operator or an extra service. A refused command
(NOPERM) is RedisUnavailableError (exit 4) naming the user, never retried.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
)

import redis

from .exceptions import (
    DeadlineExceededError,
    PermissionRefusedError,
    ProtocolMismatchError,
    RedisUnavailableError,
)
from .settings import RedisUrl, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def library_text() -> str:
    """The .lua file as shipped."""
    return resources.files("wordcount").joinpath("wordcount.lua").read_text(encoding="utf-8")


def _library_protocol(code: str) -> str:
    found = re.search(r"^local PROTOCOL = '(\d+)'", code, re.M)
    if not found:
        raise RuntimeError("wordcount.lua declares no PROTOCOL")
    return found.group(1)


def _library_name(code: str) -> str:
    found = re.match(r"#!lua name=(\w+)", code)
    if not found:
        raise RuntimeError("wordcount.lua has no '#!lua name=...' line")
    return found.group(1)


PROTOCOL = _library_protocol(library_text())  # the one version, declared in the .lua file
LIBRARY = _library_name(library_text())  # and the library's name
BUILD = hashlib.sha256(library_text().encode()).hexdigest()[:12]  # which text of that version
IDENTITY = f"{PROTOCOL}/{BUILD}"  # what every caller passes, and wc_version answers


def library_code() -> str:
    """The library as it is loaded: the .lua file with its build filled in."""
    return library_text().replace("local BUILD = '@BUILD@'", f"local BUILD = '{BUILD}'", 1)


def parse_identity(text: str) -> tuple[int, str]:
    """(protocol, build) of a library's identity ("6/abc..."; protocols before 6: "5")."""
    protocol, _, build = text.partition("/")
    return (int(protocol) if protocol.isdigit() else -1), build


def _auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and text.startswith(("NOAUTH", "WRONGPASS", "NOPERM"))


class LeaderMoved(RedisConnectionError):
    """A RedisRaft follower answered MOVED: retry at once on the leader it named."""


class NoLeader(RedisConnectionError):
    """A RedisRaft node has no leader (an election, or no quorum): wait and retry."""


def _session_lost(exc: BaseException) -> bool:
    """NOAUTH ("Authentication required"): the server saw a command of a connection it
    holds as unauthenticated -- not a refusal of our credentials (WRONGPASS, NOPERM)."""
    return isinstance(exc, AuthenticationError) and "Authentication required" in str(exc)


def is_retryable(exc: BaseException) -> bool:
    if _auth_failure(exc):
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError))


# Replies of a RedisRaft node while the cluster has no leader it can commit through, all
# transient: CLUSTERDOWN (no leader, or a new leader that has not applied an entry of its term
# yet), TRYAGAIN, NOCLUSTER (a node not (re)joined yet), NOTLEADER / "TIMEOUT no reply from
# leader" (follower proxying), "TIMEOUT not committed yet" (a deposed leader dropping a write it
# appended but never committed: the write was never applied), "TIMEOUT no quorum for read" (a
# leader that could not confirm it still leads), "ERR not leader" / "ERR leader transfer is in
# progress" (RedisRaft's raft library). NOLEADER: should a version use it.
_NO_LEADER = ("CLUSTERDOWN", "NOLEADER", "TRYAGAIN", "TIMEOUT ", "NOTLEADER", "NOCLUSTER",
              "ERR not leader", "ERR leader transfer is in progress")
# redis-py prefixes an error raised from a pipeline with the command it answered
_PIPELINE_NOTE = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.S)


def _no_leader_reply(exc: ResponseError) -> bool:
    return _PIPELINE_NOTE.sub("", str(exc), count=1).startswith(_NO_LEADER)


# -- timing (RedisRaft's election timeout is 1-2 s; its leader steps down after 2 s without a
# quorum) --
QUICK_TIMEOUT_S = 2.0  # socket timeout of a call to a cluster node, escalating (see _timeout)
SUSPECT_S = 2.0  # a node that timed out or refused us: MOVED to it is not followed this long
ELECTION_S = 5.0  # the first seconds of an outage of a cluster: an election, probably
ELECTION_CAP_S = 0.1  # ... during which no retry waits longer than this
BACKOFF_MAX_S = 2.0  # the longest wait between two attempts


def _BACKOFF(waits: int, cap: float) -> float:
    """Capped exponential backoff from 50 ms, with up to 100 % jitter (at most 0.2 s) so that
    workers that failed together do not retry in step."""
    delay = min(cap, 0.05 * 2 ** min(waits, 16))
    return min(cap, delay + random.uniform(0.0, min(delay, 0.2)))


# Blocking commands, and where their block time is: the last argument in seconds, the first in
# seconds, after BLOCK in milliseconds, the last in milliseconds (0: forever).
_BLOCKING = {**dict.fromkeys(("BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX"),
                             "last-s"),
             **dict.fromkeys(("BLMPOP", "BZMPOP"), "first-s"),
             **dict.fromkeys(("XREAD", "XREADGROUP"), "block-ms"),
             **dict.fromkeys(("WAIT", "WAITAOF"), "last-ms")}


def block_seconds(args: Sequence[Any]) -> float | None:
    """How long the command ``args`` may block in Redis: None when it does not block,
    ``math.inf`` for ever."""
    if not args:
        return None
    name = str(args[0]).upper()
    how = _BLOCKING.get(name)
    if how is None:
        return None
    try:
        if how == "block-ms":
            words = [str(a).upper() for a in args]
            if "BLOCK" not in words:
                return None  # XREAD(GROUP) without BLOCK returns at once
            value = float(args[words.index("BLOCK") + 1]) / 1000
        elif how == "first-s":
            value = float(args[1])
        else:
            value = float(args[-1]) / (1000 if how == "last-ms" else 1)
    except (IndexError, TypeError, ValueError):
        return math.inf  # a form we do not know: never cut it short
    return math.inf if value <= 0 else value


class _NodeClient(redis.Redis):
    """The client of one cluster node with a short socket timeout: a node that stops answering
    (paused, partitioned) is given up on after it, not after the block time of the longest
    blocking read. A blocking command goes through a sibling client whose timeout is its block
    time plus the same margin (``blocking(seconds)`` gives it)."""

    blocking: Callable[[float], redis.Redis]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        block = block_seconds(args)
        if block is not None:
            sibling = self.blocking(block)
            try:
                return sibling.execute_command(*args, **options)
            except AuthenticationError as exc:
                if not _session_lost(exc):
                    raise
                # RedisRaft answers a blocking read that a push woke up with NOAUTH, every
                # time (its connection then counts as unauthenticated): the wake-up is what
                # the caller waited for. As if the wait ended empty; a new connection next.
                sibling.connection_pool.disconnect()
                return None
        return super().execute_command(*args, **options)


class _Call:
    """What one ``Connection.call`` learned so far: its socket timeouts (each one doubles the
    next attempt's timeout, so a call that is slow rather than stuck still gets through) and
    the waits it made (the backoff grows with waits, not with attempts: following a MOVED is an
    attempt but no wait)."""

    __slots__ = ("timeouts", "waits")

    def __init__(self) -> None:
        self.timeouts = 0
        self.waits = 0


def unresolved_note(exc: BaseException | None) -> str:
    """What a name that does not resolve means here: in a compose cluster, Docker's DNS knows
    no container that is stopped, so a node that is down (killed, restarting) is "not known"
    -- not a DNS fault."""
    text = str(exc or "")
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return " -- the host name does not resolve: in a compose cluster, its container is " \
               "down or restarting (Docker's DNS drops a stopped container)"
    return ""


class Connection:
    """The one Redis client. With a URL listing several nodes (a RedisRaft cluster,
    ``redis://h1:p1,h2:p2,h3:p3/0``) it talks to one node at a time: a MOVED reply switches to
    the leader it names, a connection error, a timeout or "no leader" moves on to the next
    node, all inside the same retry budget.

    On a cluster, a call gives a node ``QUICK_TIMEOUT_S`` to answer (a blocking read: its block
    time plus that), doubled after each timeout within the call; a node that timed out or
    refused the connection is *suspect* for ``SUSPECT_S``: the next node tried is one that is
    not, and a MOVED naming it (a follower that has not noticed yet that its leader is gone) is
    not followed but waited out like "no leader". Waits while there is no leader are short
    (≤ ``ELECTION_CAP_S``) for the first ``ELECTION_S`` of a call, then grow to
    ``BACKOFF_MAX_S``. A single Redis keeps one long timeout (its block time + 10 s): there is
    no other node to go to."""

    def __init__(self, settings: Settings, name: str = "wordcount",
                 deadline: float | None = None) -> None:
        self.settings = settings
        self.name = name
        # time.monotonic() by which every call must be over (a command's --timeout): the retry
        # budget of each call is capped by the time left; past it, DeadlineExceededError
        self.deadline = deadline
        self._clients: dict[tuple[Any, ...], redis.Redis] = {}
        url = RedisUrl.parse(settings.redis_url)
        self._url = url if url.scheme in ("redis", "rediss") else None
        self._nodes = list(url.nodes) if self._url else []
        self._node = self._nodes[0] if self._nodes else ("", 0)
        self._failed_at: dict[tuple[str, int], float] = {}  # node -> when it last let us down
        self._authenticated = False  # a call succeeded: our credentials are right
        self._lock = threading.Lock()  # worker threads (heartbeat, committer) share this
        self.reconnects = 0

    @property
    def _long_timeout(self) -> float:
        return self.settings.block_ms / 1000 + 10

    def _options(self, socket_timeout: float | None) -> dict[str, Any]:
        # surrogateescape: a file name that is not UTF-8 (os.fsdecode gives it lone surrogates)
        # goes to Redis as its own bytes and comes back as the same str
        return dict(decode_responses=True, encoding_errors="surrogateescape",
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=QUICK_TIMEOUT_S if self.clustered else 5,
                    health_check_interval=10,
                    retry=Retry(NoBackoff(), 0),  # tenacity below is the only retry policy
                    client_name=self.name)

    def _timeout(self, call: _Call) -> float:
        """The socket timeout of the next attempt: for a single server the long one (block
        time + 10 s); on a cluster QUICK_TIMEOUT_S, doubled for each timeout the call had (up
        to the long one)."""
        if not self.clustered:
            return self._long_timeout
        return min(self._long_timeout, QUICK_TIMEOUT_S * 2 ** min(call.timeouts, 8))

    def _client_for(self, node: tuple[str, int], socket_timeout: float | None,
                    cls: type[redis.Redis] = redis.Redis) -> redis.Redis:
        """The client of ``node`` with that socket timeout (None: none), made once."""
        key = (node, socket_timeout, cls)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                return client
            if self._url is None:  # unix:// and the like: one server, as the URL says
                extra = ({"username": self.settings.redis_username}
                         if self.settings.redis_username else {})
                client = redis.Redis.from_url(
                    self.settings.redis_url, password=self.settings.redis_password,
                    **extra, **self._options(socket_timeout))
            else:
                client = cls(
                    host=node[0], port=node[1], db=self._url.db,
                    username=self._url.username or self.settings.redis_username,
                    password=self._url.password or self.settings.redis_password,
                    ssl=self._url.scheme == "rediss", **self._options(socket_timeout))
            if isinstance(client, _NodeClient):
                def blocking(block: float, node: tuple[str, int] = node,
                             margin: float = socket_timeout or 0.0) -> redis.Redis:
                    # a sibling per distinct block time (in practice one or two)
                    return self._client_for(node, None if math.isinf(block)
                                            else round(block + margin, 3))
                client.blocking = blocking
            self._clients[key] = client
            return client

    def _attempt_client(self, node: tuple[str, int], call: _Call) -> redis.Redis:
        if not self.clustered:
            return self._client_for(node, self._timeout(call))
        return self._client_for(node, self._timeout(call), _NodeClient)

    @property
    def client(self) -> redis.Redis:
        """The client of the node we talk to now (the leader, as far as we know)."""
        return self._attempt_client(self._node, _Call())

    # -- which node ---------------------------------------------------------------------------

    def _suspect(self, node: tuple[str, int], now: float) -> bool:
        return now - self._failed_at.get(node, -math.inf) < SUSPECT_S

    def _follow(self, moved: MovedError, origin: tuple[str, int]) -> None:
        """MOVED <slot> host:port (from ``origin``): talk to that node from now on."""
        target = (str(moved.host).strip("[]"), int(moved.port))
        with self._lock:
            if target not in self._nodes:
                self._nodes.append(target)
            if self._node == origin:
                self._node = target

    def _next_node(self, origin: tuple[str, int]) -> None:
        """Move on from ``origin`` (unless another thread did already): to the next node of the
        list that is not suspect, else to the one that let us down longest ago."""
        with self._lock:
            if len(self._nodes) < 2 or self._node != origin:
                return
            i = self._nodes.index(origin)
            others = self._nodes[i + 1:] + self._nodes[:i]
            now = time.monotonic()
            fresh = [n for n in others if not self._suspect(n, now)]
            self._node = fresh[0] if fresh else min(
                others, key=lambda n: self._failed_at.get(n, -math.inf))

    def _attempt(self, fn: Callable[[redis.Redis], T], call: _Call) -> T:
        node = self._node
        try:
            result = fn(self._attempt_client(node, call))
        except MovedError as exc:  # a RedisRaft follower (redis-py parses MOVED for us)
            target = (str(exc.host).strip("[]"), int(exc.port))
            if self._suspect(target, time.monotonic()):
                # the follower still names a leader that just let us down: it has not noticed
                # (yet) that the leader is gone; wait for the election like "no leader"
                self._next_node(node)
                raise NoLeader(f"MOVED to {exc.host}:{exc.port}, which did not answer us "
                               "just now") from None
            self._follow(exc, node)
            raise LeaderMoved(f"MOVED to {exc.host}:{exc.port}") from None
        except (ClusterDownError, TryAgainError) as exc:  # CLUSTERDOWN No raft leader, ...
            self._next_node(node)
            raise NoLeader(f"{type(exc).__name__}: {exc}") from None
        except ResponseError as exc:
            if _no_leader_reply(exc):
                self._next_node(node)
                raise NoLeader(str(exc)) from None
            raise
        except BusyLoadingError:  # a node replaying its data: alive, try another meanwhile
            self._next_node(node)
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if _auth_failure(exc):
                if not (self.clustered and self._authenticated and _session_lost(exc)):
                    raise
                # NOAUTH on a cluster whose credentials worked already: the node holds our
                # connection as unauthenticated (RedisRaft does so after a blocking read was
                # woken: see _NodeClient; workers exited 4 on it). The credentials did not
                # turn wrong: drop that node's connections and retry there (after the short
                # wait of an election, never marking the node suspect).
                self._drop_connections(node)
                raise NoLeader(f"{node[0]}:{node[1]} answered as if we had not "
                               f"authenticated ({exc}); reconnecting") from None
            if isinstance(exc, RedisTimeoutError):
                call.timeouts += 1
            self._failed_at[node] = time.monotonic()
            self._next_node(node)
            raise
        if node in self._failed_at:
            self._failed_at.pop(node, None)
        self._authenticated = True
        return result

    def _drop_connections(self, node: tuple[str, int]) -> None:
        """Close every pooled connection to ``node`` (the next call makes new ones)."""
        for (n, *_), client in list(self._clients.items()):
            if n == node:
                client.connection_pool.disconnect()

    # -- the one retry policy ---------------------------------------------------------------

    def _wait(self, state: RetryCallState, call: _Call) -> float:
        """No wait to follow a MOVED; capped exponential backoff (with jitter) otherwise, capped
        low in the first seconds of a cluster's outage (an election takes 1-2 s)."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, LeaderMoved):
            return 0.0
        cap = (ELECTION_CAP_S if self.clustered and state.seconds_since_start < ELECTION_S
               else BACKOFF_MAX_S)
        call.waits += 1
        return _BACKOFF(call.waits - 1, cap)

    def _log_retry(self, state: RetryCallState) -> None:
        self.reconnects += 1
        exc = state.outcome.exception() if state.outcome else None
        first_no_leader = isinstance(exc, NoLeader) and not getattr(state, "no_leader", False)
        if isinstance(exc, NoLeader):
            state.no_leader = True  # type: ignore[attr-defined]
        if isinstance(exc, LeaderMoved):
            log.debug("following the Raft leader: %s", exc)
        elif first_no_leader or state.attempt_number in (1, 5) or state.attempt_number % 20 == 0:
            # with several nodes, any failure means no leader answered: a dead leader refuses
            # connections, a paused one times out, a follower names it (MOVED) or has none
            # (CLUSTERDOWN)
            what = ("waiting for a Raft leader" if self.clustered or isinstance(exc, NoLeader)
                    else "redis unavailable")
            log.warning("%s (%s: %s%s); retrying (attempt %d)", what, type(exc).__name__, exc,
                        unresolved_note(exc), state.attempt_number)

    @property
    def username(self) -> str | None:
        """The ACL user we authenticate as (None: Redis' default user)."""
        return (self._url.username if self._url else None) or self.settings.redis_username

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """The nodes the URL lists, as (host, port) ([] for a unix socket URL)."""
        return list(self._nodes)

    def node_info(self, node: tuple[str, int], *sections: str,
                  timeout_s: float = 1.0) -> dict[str, Any]:
        """INFO (of ``sections``, in one call; none: the default ones) of one node, once, no
        retry, no leader following (for the dashboard's health of each RedisRaft node); raises
        when that node does not answer within ``timeout_s``."""
        return self._client_for(node, timeout_s).info(*sections)

    @property
    def clustered(self) -> bool:
        """The URL lists several nodes (a RedisRaft cluster), or a node named another."""
        return len(self._nodes) > 1

    def call(self, fn: Callable[[redis.Redis], T], retry_seconds: float | None = None) -> T:
        """Run ``fn(client)``, retrying through outages (and following a Raft leader)."""
        budget = self.settings.retry_seconds if retry_seconds is None else retry_seconds
        capped, deadline = False, self.deadline
        this = _Call()
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceededError("the deadline passed")
            capped, budget = left < budget, min(budget, left)

        def wait(state: RetryCallState) -> float:  # no sleep past the deadline
            delay = self._wait(state, this)
            return delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=wait,
            stop=stop_after_delay(budget),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, fn, this)
        except (AuthenticationError, AuthorizationError) as exc:
            raise RedisUnavailableError(
                f"Redis at {self.settings.safe_url} refused our credentials: {exc}") from None
        except ResponseError as exc:
            if isinstance(exc, NoPermissionError) or str(exc).startswith("NOPERM"):
                raise PermissionRefusedError(
                    f"Redis at {self.settings.safe_url} refused a command to user "
                    f"{self.username or 'default'}: {exc} (see redis/users.acl)") from None
            if _auth_failure(exc):
                raise RedisUnavailableError(
                    f"Redis at {self.settings.safe_url} requires a (valid) password: "
                    f"set REDIS_USERNAME and REDIS_PASSWORD (or REDIS_PASSWORD_FILE), or put "
                    f"them in the URL ({exc})") from None
            raise
        except NoLeader as exc:
            if capped:
                raise DeadlineExceededError(f"no Raft leader at {self.settings.safe_url} until "
                                            f"the deadline: {exc}") from None
            raise RedisUnavailableError(
                f"no Raft leader at {self.settings.safe_url} for {budget:.0f} s (no quorum: "
                f"are a majority of the nodes up?): {exc}") from None
        except Exception as exc:
            if is_retryable(exc) and capped:
                raise DeadlineExceededError(
                    f"Redis at {self.settings.safe_url} unreachable until the deadline "
                    f"({type(exc).__name__}: {exc})") from None
            if is_retryable(exc):
                raise RedisUnavailableError(
                    f"Redis at {self.settings.safe_url} unreachable for {budget:.0f} s: "
                    f"{type(exc).__name__}: {exc}{unresolved_note(exc)} (how long a call "
                    "retries: WORDCOUNT_RETRY_SECONDS, or a command's --timeout)") from None
            raise

    # -- Functions --------------------------------------------------------------------------

    def load_functions(self) -> None:
        code = library_code()
        self.call(lambda r: r.function_load(code, replace=True))
        log.info("loaded Redis Function library %r", LIBRARY)

    def ensure_functions(self) -> None:
        """Make sure Redis runs our library: our protocol and our build (see the module doc)."""
        try:
            loaded = str(self.call(lambda r: r.fcall_ro("wc_version", 0)))
        except ResponseError as exc:
            if "Function not found" not in str(exc):
                raise
            log.info("Redis has no wordcount Functions yet: loading them")
            self.load_functions()
            return
        if loaded == IDENTITY:
            return
        protocol, build = parse_identity(loaded)
        if protocol > int(PROTOCOL):
            raise ProtocolMismatchError(
                f"Redis runs wordcount Functions of protocol {protocol}, newer than this "
                f"program's {PROTOCOL}: upgrade this client/worker (it would not understand "
                "the job)")
        if protocol < int(PROTOCOL):
            log.warning("Redis runs wordcount protocol %s, this is %s: upgrading the library "
                        "(workers of the old version will stop)", loaded, IDENTITY)
        else:
            log.warning("Redis runs another build of wordcount protocol %s (%s, this is %s: a "
                        "hot fix, a build that did not bump its protocol, or an old snapshot's "
                        "library): replacing it with this build's (callers of the other build "
                        "will stop)", PROTOCOL, build or "?", BUILD)
        self.load_functions()

    def fcall(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        def attempt(r: redis.Redis) -> Any:
            return r.fcall(name, len(keys_), *keys_, *args)

        try:  # (the library's own error replies: functions._ERRORS)
            return self.call(attempt)
        except ResponseError as exc:
            if "Function not found" not in str(exc):
                raise
            log.info("Redis has no %s function (fresh or restarted Redis): loading", name)
            self.load_functions()
            return self.call(attempt)

    def ping(self, retry_seconds: float | None = None) -> None:
        self.call(lambda r: r.ping(), retry_seconds)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
