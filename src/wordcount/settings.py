"""Settings for the distributed engine: one frozen dataclass, from flags or the environment.

Every field can be set by ``WORDCOUNT_<FIELD>`` (upper case); the Redis URL by ``REDIS_URL`` (or
``WORDCOUNT_REDIS_URL``), the ACL user by ``REDIS_USERNAME`` (or ``WORDCOUNT_REDIS_USERNAME``, or
inside the URL: ``redis://user:pw@host:port/0``) and the password by ``REDIS_PASSWORD`` (or
``WORDCOUNT_REDIS_PASSWORD``, or inside the URL) or ``REDIS_PASSWORD_FILE`` (or
``WORDCOUNT_REDIS_PASSWORD_FILE``: a file holding it, e.g. a compose secret in /run/secrets; one
trailing newline ignored). Flags win over the environment, the environment over the defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .exceptions import UsageError

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str | None = field(default=None, repr=False)
    redis_username: str | None = None  # the ACL user (None: the URL's, else Redis' default)
    claim_timeout_ms: int = 10_000  # a task idle (no heartbeat) this long is stolen
    max_attempts: int = 4  # deliveries before a task is dead-lettered
    block_ms: int = 1_000  # XREADGROUP BLOCK
    retry_seconds: float = 120.0  # how long one Redis call keeps retrying through an outage
    commit_pairs: int = 50_000  # more distinct words than this: staged commit + bounded merges
    speculate_factor: float = 3.0  # backup a task running longer than factor x mean (0: off)
    speculate_min_ms: int = 2_000  # ... and at least this old
    data_root: str | None = None  # where a worker finds the job's files (default: job's root)
    queue: str = "auto"  # the queue new jobs go to: stream | lease | auto (lease on RedisRaft)
    keep_jobs_s: float = 7 * 86400.0  # a finished job's keys are removed this long after its end
    submit_batch: int = 1000  # tasks per submission call (a job of more goes in several)

    @property
    def heartbeat_s(self) -> float:
        return max(self.claim_timeout_ms / 3000.0, 0.05)

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for logs."""
        parts = urlsplit(self.redis_url)
        userinfo, at, hosts = parts.netloc.rpartition("@")
        if not at or ":" not in userinfo:
            return self.redis_url
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """The (host, port) of every node the URL lists: ``redis://[user:pw@]h1:p1,h2:p2/0``
        names the members of a RedisRaft cluster (any one of them will do to find the
        leader); a plain URL names one Redis."""
        return RedisUrl.parse(self.redis_url).nodes


    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"WORDCOUNT_{f.name.upper()}")
            if raw is None and f.name == "redis_url":
                raw = env.get("REDIS_URL")
            if raw is None and f.name == "redis_password":
                raw = env.get("REDIS_PASSWORD")
            if raw is None and f.name == "redis_username":
                raw = env.get("REDIS_USERNAME")
            if raw is not None and raw != "":
                values[f.name] = _convert(f, raw)
        password_file = env.get("WORDCOUNT_REDIS_PASSWORD_FILE") or env.get("REDIS_PASSWORD_FILE")
        if password_file and overrides.get("redis_password") is None:
            if "redis_password" in values:
                raise UsageError("set REDIS_PASSWORD or REDIS_PASSWORD_FILE, not both")
            values["redis_password"] = read_password_file(password_file)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(f"not a Redis URL: {self.safe_url}")
        if self.keep_jobs_s < 0:
            raise UsageError("WORDCOUNT_KEEP_JOBS_S must be >= 0 (seconds a finished job is kept)")
        if self.claim_timeout_ms < 10 or self.max_attempts < 1 or self.commit_pairs < 1:
            raise UsageError("claim timeout must be >= 10 ms, max attempts and commit pairs >= 1")
        if self.submit_batch < 1:
            raise UsageError("WORDCOUNT_SUBMIT_BATCH must be >= 1 (tasks per submission call)")
        if self.queue not in ("stream", "lease", "auto"):
            raise UsageError(f"unknown queue {self.queue!r} (WORDCOUNT_QUEUE / --queue): "
                             "choose stream, lease or auto")


@dataclass(frozen=True)
class RedisUrl:
    """A Redis URL that may list several nodes (``h1:p1,h2:p2``), split into its parts."""

    scheme: str
    username: str | None
    password: str | None
    nodes: list[tuple[str, int]]
    db: int

    @classmethod
    def parse(cls, url: str) -> RedisUrl:
        parts = urlsplit(url)
        userinfo, at, hosts = parts.netloc.rpartition("@")
        username = password = None
        if at:
            username, _, password = userinfo.partition(":")
            username, password = (unquote(username) or None), (unquote(password) or None)
        nodes = []
        for item in hosts.split(","):
            host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "6379")
            try:
                nodes.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
            except ValueError:
                raise UsageError(f"bad Redis node {item!r} in the URL: use host:port") from None
        path = parts.path.strip("/")
        try:
            db = int(path or 0)
        except ValueError:
            raise UsageError(f"bad Redis database {path!r} in the URL") from None
        return cls(parts.scheme, username, password, nodes, db)


def read_password_file(path: str) -> str:
    """The password in ``path`` (REDIS_PASSWORD_FILE), without its trailing newline."""
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise UsageError(f"REDIS_PASSWORD_FILE {path}: cannot be read: {why}") from None
    if not password:
        raise UsageError(f"REDIS_PASSWORD_FILE {path}: the file is empty")
    return password


def _convert(f: dataclasses.Field, raw: str) -> Any:
    kind = str(f.type)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise UsageError(f"WORDCOUNT_{f.name.upper()}: not a number: {raw!r}") from None
    return raw


def check_job_name(name: str) -> str:
    if not JOB_NAME.match(name):
        raise UsageError(f"bad job name {name!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return name
