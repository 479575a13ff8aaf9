"""Every Redis call goes through here: one client, one retry policy, one place that (re)loads the
Redis Function library.

- Connection errors, timeouts and "LOADING" (a restarted Redis reading its RDB file) are retried
  with capped exponential backoff (tenacity) for ``settings.retry_seconds``; then
  RedisUnavailableError. Wrong or missing credentials are never retried.
- ``ensure_functions`` (every client and worker, at start) checks the protocol version of the
  library in Redis: none → load ours; older → replace it with ours (an upgrade; callers of the
  old version are then refused by every Function); newer → refuse to run (exit 4). Functions
  persist in RDB/AOF, so without this an upgraded worker would keep running the old commit
  logic restored from a snapshot.
- ``fcall`` loads the library when Redis answers "Function not found" (a fresh Redis that
  restarted with no data) and tries once more; a Function refusing our protocol version
  (WCVERSION: someone upgraded the library under us) is ProtocolMismatchError.
Retrying a call whose reply was lost is safe by construction: every Function is idempotent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ResponseError,
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

from . import keys
from .exceptions import ProtocolMismatchError, RedisUnavailableError
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def library_code() -> str:
    return resources.files("wordcount").joinpath("wordcount.lua").read_text(encoding="utf-8")


def _library_protocol(code: str) -> str:
    found = re.search(r"^local PROTOCOL = '(\d+)'", code, re.M)
    if not found:
        raise RuntimeError("wordcount.lua declares no PROTOCOL")
    return found.group(1)


PROTOCOL = _library_protocol(library_code())  # the one version, declared in the .lua file


def _auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and text.startswith(("NOAUTH", "WRONGPASS", "NOPERM"))


def is_retryable(exc: BaseException) -> bool:
    if _auth_failure(exc):
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError))


class Connection:
    def __init__(self, settings: Settings, name: str = "wordcount") -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password,
            decode_responses=True,
            socket_timeout=settings.block_ms / 1000 + 10,
            socket_connect_timeout=5,
            health_check_interval=10,
            retry=Retry(NoBackoff(), 0),  # tenacity below is the only retry policy
            client_name=name,
        )
        self.reconnects = 0

    # -- the one retry policy ---------------------------------------------------------------

    def _log_retry(self, state: RetryCallState) -> None:
        self.reconnects += 1
        exc = state.outcome.exception() if state.outcome else None
        if state.attempt_number in (1, 5) or state.attempt_number % 20 == 0:
            log.warning("redis unavailable (%s: %s); retrying (attempt %d)",
                        type(exc).__name__, exc, state.attempt_number)

    def call(self, fn: Callable[[redis.Redis], T], retry_seconds: float | None = None) -> T:
        """Run ``fn(client)``, retrying through outages."""
        budget = self.settings.retry_seconds if retry_seconds is None else retry_seconds
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.2),
            stop=stop_after_delay(budget),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(fn, self.client)
        except (AuthenticationError, AuthorizationError) as exc:
            raise RedisUnavailableError(
                f"Redis at {self.settings.safe_url} refused our credentials: {exc}") from None
        except ResponseError as exc:
            if _auth_failure(exc):
                raise RedisUnavailableError(
                    f"Redis at {self.settings.safe_url} requires a (valid) password: "
                    f"set REDIS_PASSWORD or put it in the URL ({exc})") from None
            raise
        except Exception as exc:
            if is_retryable(exc):
                raise RedisUnavailableError(
                    f"Redis at {self.settings.safe_url} unreachable for {budget:.0f} s: "
                    f"{type(exc).__name__}: {exc}") from None
            raise

    # -- Functions --------------------------------------------------------------------------

    def load_functions(self) -> None:
        code = library_code()
        self.call(lambda r: r.function_load(code, replace=True))
        log.info("loaded Redis Function library %r", keys.LIBRARY)

    def ensure_functions(self) -> None:
        """Make sure Redis runs our protocol version of the library (see the module doc)."""
        try:
            loaded = str(self.call(lambda r: r.fcall_ro("wc_version", 0)))
        except ResponseError as exc:
            if "Function not found" not in str(exc):
                raise
            log.info("Redis has no wordcount Functions yet: loading them")
            self.load_functions()
            return
        if loaded == PROTOCOL:
            return
        if loaded.isdigit() and int(loaded) < int(PROTOCOL):
            log.warning("Redis runs wordcount protocol %s, this is %s: upgrading the library "
                        "(workers of the old version will stop)", loaded, PROTOCOL)
            self.load_functions()
            return
        raise ProtocolMismatchError(
            f"Redis runs wordcount Functions of protocol {loaded}, newer than this program's "
            f"{PROTOCOL}: upgrade this client/worker (it would not understand the job)")

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
        self.client.close()
