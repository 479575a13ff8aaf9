"""Every Redis call goes through here: one client, one retry policy, one place that (re)loads the
Redis Function library.

- Connection errors, timeouts and "LOADING" (a restarted Redis reading its RDB file) are retried
  with capped exponential backoff (tenacity) for ``settings.retry_seconds``; then
  RedisUnavailableError. Wrong or missing credentials are never retried.
- ``ensure_functions`` (every client and worker, at start) checks the identity of the library
  in Redis: its protocol version and its build (a hash of the .lua file's text, so a hot fix,
  a build that forgot to bump the protocol or an old snapshot's library is told apart from
  ours). None → load ours; an older protocol, or another build of ours → replace it with ours
  (callers of the replaced one are then refused by every Function); a newer protocol → refuse
  to run (exit 4). Functions persist in RDB/AOF, so without this an upgraded worker would keep
  running the old commit logic restored from a snapshot.
- ``fcall`` loads the library when Redis answers "Function not found" (a fresh Redis that
  restarted with no data) and tries once more; a Function refusing our protocol version
  (WCVERSION: someone loaded another version or build under us) is ProtocolMismatchError.
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
import re
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
    wait_exponential_jitter,
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


def is_retryable(exc: BaseException) -> bool:
    if _auth_failure(exc):
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError))


def _wait(state: RetryCallState) -> float:
    """No wait to follow a MOVED; capped exponential backoff (with jitter) otherwise."""
    exc = state.outcome.exception() if state.outcome else None
    return 0.0 if isinstance(exc, LeaderMoved) else _BACKOFF(state)


_BACKOFF = wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.2)
_NO_LEADER = ("CLUSTERDOWN", "NOLEADER", "TRYAGAIN")  # should redis-py not parse them


class Connection:
    """The one Redis client. With a URL listing several nodes (a RedisRaft cluster,
    ``redis://h1:p1,h2:p2,h3:p3/0``) it talks to one node at a time: a MOVED reply switches to
    the leader it names, a connection error or "no leader" moves on to the next node, all
    inside the same retry budget."""

    def __init__(self, settings: Settings, name: str = "wordcount",
                 deadline: float | None = None) -> None:
        self.settings = settings
        self.name = name
        # time.monotonic() by which every call must be over (a command's --timeout): the retry
        # budget of each call is capped by the time left; past it, DeadlineExceededError
        self.deadline = deadline
        self._clients: dict[tuple[str, int], redis.Redis] = {}
        url = RedisUrl.parse(settings.redis_url)
        self._url = url if url.scheme in ("redis", "rediss") else None
        self._nodes = list(url.nodes) if self._url else []
        self._node = self._nodes[0] if self._nodes else ("", 0)
        self.reconnects = 0

    def _options(self) -> dict[str, Any]:
        # surrogateescape: a file name that is not UTF-8 (os.fsdecode gives it lone surrogates)
        # goes to Redis as its own bytes and comes back as the same str
        return dict(decode_responses=True, encoding_errors="surrogateescape",
                    socket_timeout=self.settings.block_ms / 1000 + 10,
                    socket_connect_timeout=5, health_check_interval=10,
                    retry=Retry(NoBackoff(), 0),  # tenacity below is the only retry policy
                    client_name=self.name)

    @property
    def client(self) -> redis.Redis:
        """The client of the node we talk to now (the leader, as far as we know)."""
        node = self._node
        if node not in self._clients:
            if self._url is None:  # unix:// and the like: one server, as the URL says
                extra = ({"username": self.settings.redis_username}
                         if self.settings.redis_username else {})
                self._clients[node] = redis.Redis.from_url(
                    self.settings.redis_url, password=self.settings.redis_password,
                    **extra, **self._options())
            else:
                self._clients[node] = redis.Redis(
                    host=node[0], port=node[1], db=self._url.db,
                    username=self._url.username or self.settings.redis_username,
                    password=self._url.password or self.settings.redis_password,
                    ssl=self._url.scheme == "rediss", **self._options())
        return self._clients[node]

    def _follow(self, moved: MovedError) -> None:
        """MOVED <slot> host:port: talk to that node from now on."""
        self._node = (str(moved.host).strip("[]"), int(moved.port))
        if self._node not in self._nodes:
            self._nodes.append(self._node)

    def _next_node(self) -> None:
        if len(self._nodes) > 1:
            self._node = self._nodes[(self._nodes.index(self._node) + 1) % len(self._nodes)]

    def _attempt(self, fn: Callable[[redis.Redis], T]) -> T:
        try:
            return fn(self.client)
        except MovedError as exc:  # a RedisRaft follower (redis-py parses MOVED for us)
            self._follow(exc)
            raise LeaderMoved(f"MOVED to {exc.host}:{exc.port}") from None
        except (ClusterDownError, TryAgainError) as exc:  # CLUSTERDOWN No raft leader, ...
            self._next_node()
            raise NoLeader(f"{type(exc).__name__}: {exc}") from None
        except ResponseError as exc:
            if str(exc).startswith(_NO_LEADER):
                self._next_node()
                raise NoLeader(str(exc)) from None
            raise
        except (RedisConnectionError, RedisTimeoutError):
            self._next_node()
            raise

    # -- the one retry policy ---------------------------------------------------------------

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
            # connections, a follower names it (MOVED) or has none (CLUSTERDOWN)
            what = ("waiting for a Raft leader" if self.clustered or isinstance(exc, NoLeader)
                    else "redis unavailable")
            log.warning("%s (%s: %s); retrying (attempt %d)", what, type(exc).__name__, exc,
                        state.attempt_number)

    @property
    def username(self) -> str | None:
        """The ACL user we authenticate as (None: Redis' default user)."""
        return (self._url.username if self._url else None) or self.settings.redis_username

    @property
    def clustered(self) -> bool:
        """The URL lists several nodes (a RedisRaft cluster)."""
        return len(self._nodes) > 1

    def call(self, fn: Callable[[redis.Redis], T], retry_seconds: float | None = None) -> T:
        """Run ``fn(client)``, retrying through outages (and following a Raft leader)."""
        budget = self.settings.retry_seconds if retry_seconds is None else retry_seconds
        capped, wait = False, _wait
        if self.deadline is not None:
            deadline = self.deadline
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceededError("the deadline passed")
            capped, budget = left < budget, min(budget, left)

            def wait(state: RetryCallState) -> float:  # no sleep past the deadline
                return min(_wait(state), max(0.0, deadline - time.monotonic()))
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=wait,
            stop=stop_after_delay(budget),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, fn)
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
                    f"{type(exc).__name__}: {exc}") from None
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

        try:
            try:
                return self.call(attempt)
            except ResponseError as exc:
                if "Function not found" not in str(exc):
                    raise
                log.info("Redis has no %s function (fresh or restarted Redis): loading", name)
                self.load_functions()
                return self.call(attempt)
        except ResponseError as exc:
            if str(exc).startswith("WCVERSION"):
                raise ProtocolMismatchError(
                    f"{exc}: the library in Redis was replaced by another version; restart "
                    "with the matching version of wordcount") from None
            raise

    def ping(self, retry_seconds: float | None = None) -> None:
        self.call(lambda r: r.ping(), retry_seconds)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
