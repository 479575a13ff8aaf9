"""Redis is the only gate: the ACL users of redis/users.acl, as the Redis images load them.

Each test renders the image's own template with the image's own script (``sh redis/acl.sh``, run
on the host exactly as the entrypoints run it in the containers) and starts a real redis-server on
127.0.0.1 with that aclfile. Then: the worker's and the client's credentials are refused every
dangerous command and every key outside ``wc:*`` (and the data is still there afterwards), the
default user is refused, admin may not FCALL, and a whole job still runs with the worker and
client users, through the CLI (REDIS_USERNAME + REDIS_PASSWORD_FILE), its full table equal to the
oracle's. The dashboard user reads everything the dashboard shows (its Observer samples a job as
that user) and may write nothing: every write, FCALL and FUNCTION is refused, and so is the
registry's pruning of stale reports. The RedisRaft variant (a one-node cluster, the nodes'
template and ``--append +raft``) runs when the host RedisRaft binaries are there (``make
raft-bin``), else it skips saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

import redis
from wordcount import keys
from wordcount.connection import LIBRARY, Connection, library_code
from wordcount.embedded import free_port
from wordcount.exceptions import EXIT_OK, EXIT_REDIS, RedisUnavailableError
from wordcount.lab.clirun import wc as run_wc
from wordcount.lab.clirun import wc_bg
from wordcount.settings import Settings

from .conftest import assert_counts_equal, tsv

ROOT = Path(__file__).resolve().parents[1]
ACL_SCRIPT = ROOT / "redis" / "acl.sh"
USERS = ROOT / "redis" / "users.acl"
RAFT_USERS = ROOT / "redis" / "raft-users.acl"
ROLES = ("worker", "client")
DASHBOARD = "dashboard"  # the read-only user of `wordcount dashboard` (the compose service)
CHAOS = "chaos"  # the chaos monkey's: it may only record events (wc_event)

# (what, command): each must be refused (NOPERM) to the worker and client users
REFUSED = [
    ("FLUSHALL", ("FLUSHALL",)),
    ("FLUSHDB", ("FLUSHDB",)),
    ("CONFIG GET", ("CONFIG", "GET", "requirepass")),
    ("CONFIG SET", ("CONFIG", "SET", "save", "")),
    ("KEYS", ("KEYS", "*")),
    ("DEBUG", ("DEBUG", "SLEEP", "0")),
    ("SHUTDOWN", ("SHUTDOWN", "NOSAVE")),
    ("FUNCTION DELETE", ("FUNCTION", "DELETE", "wordcount")),
    ("FUNCTION FLUSH", ("FUNCTION", "FLUSH")),
    ("FUNCTION RESTORE", ("FUNCTION", "RESTORE", "x")),
    ("ACL", ("ACL", "SETUSER", "worker", "+@all")),
    ("EVAL", ("EVAL", "return 1", "0")),
    ("SET outside wc:*", ("SET", "other:key", "1")),
    ("GET outside wc:*", ("GET", "secret")),
    ("DEL outside wc:*", ("DEL", "secret")),
    ("RENAME out of wc:*", ("RENAME", "wc:probe", "stolen")),
]

# ... and, besides those, each refused to the dashboard user: it may write nothing, even wc:*
WRITES = [
    ("SET", ("SET", "wc:probe", "3")),
    ("DEL", ("DEL", "wc:probe")),
    ("UNLINK", ("UNLINK", "wc:probe")),
    ("EXPIRE", ("EXPIRE", "wc:probe", "1")),
    ("HSET", ("HSET", "wc:h", "f", "v")),
    ("HDEL of the registry", ("HDEL", "wc:workers", "w")),
    ("ZADD", ("ZADD", "wc:z", "1", "m")),
    ("XADD", ("XADD", "wc:s", "*", "f", "v")),
    ("XACK", ("XACK", "wc:s", "g", "0-1")),
    ("XGROUP CREATE", ("XGROUP", "CREATE", "wc:s", "g", "$", "MKSTREAM")),
    ("FCALL of a writing Function", ("FCALL", "wc_cancel", "0")),
    ("FCALL_RO", ("FCALL_RO", "wc_version", "0")),
    ("FUNCTION LOAD", ("FUNCTION", "LOAD", "REPLACE", "#!lua name=x\nreturn 1")),
    ("EVAL_RO", ("EVAL_RO", "return 1", "0")),
    ("PUBLISH", ("PUBLISH", "wc:ch", "x")),
]


def _need(binary: str) -> str:
    found = shutil.which(binary)
    if not found:
        pytest.skip(f"{binary} is not installed (needed to run redis/acl.sh or Redis)")
    return found


class AclRedis:
    """redis-server on 127.0.0.1 with the aclfile the image would render."""

    def __init__(self, tmp: Path, server: str | None = None, module: str | None = None) -> None:
        _need("sh")
        _need("sha256sum")
        self.server = server or _need("redis-server")
        self.module = module
        self.dir = tmp / "redis"
        self.dir.mkdir()
        self.secrets = tmp / "secrets"
        self.secrets.mkdir(mode=0o700)
        names = ("admin", *ROLES, DASHBOARD, CHAOS) + (("raft",) if module else ())
        self.passwords = {u: secrets.token_hex(16) for u in names}
        for user, pw in self.passwords.items():
            path = self.secrets / f"redis-{user}-password"
            path.write_text(pw + "\n")  # a trailing newline, as an editor leaves it: ignored
            path.chmod(0o600)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def render(self) -> Path:
        templates = [str(USERS)]
        extra: list[str] = []
        if self.module:  # as redis/raft-entrypoint.sh renders it (the dashboard user's +raft
            # is an `append` line of raft-users.acl)
            templates.append(str(RAFT_USERS))
            extra = ["--append", "worker", "+raft", "--append", "client", "+raft"]
        out = subprocess.run(["sh", str(ACL_SCRIPT), *extra, *templates], capture_output=True,
                             text=True, env={**os.environ, "WORDCOUNT_SECRETS": str(self.secrets)},
                             timeout=30)
        assert out.returncode == 0, f"redis/acl.sh failed: {out.stderr}"
        text = out.stdout
        for pw in self.passwords.values():
            assert pw not in text, "a password in clear in the aclfile"
        aclfile = self.dir / "users.acl"
        aclfile.write_text(text)
        aclfile.chmod(0o600)
        return aclfile

    def start(self) -> AclRedis:
        args = [self.server, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                # DEBUG allowed by the config, so that the ACL alone refuses it here
                "--enable-debug-command", "yes",
                "--aclfile", str(self.render()), "--logfile", str(self.dir / "redis.log")]
        if self.module:
            args += ["--loadmodule", self.module, "--raft.addr", f"127.0.0.1:{self.port}",
                     "--raft.cluster-user", "raft",
                     "--raft.log-filename", "raft.db"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        admin = self.client("admin")
        deadline = time.monotonic() + 20
        while True:
            try:
                admin.ping()
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.05)
        if self.module:  # a one-node cluster (no peers: raft.cluster-password unused)
            assert str(admin.execute_command("RAFT.CLUSTER", "INIT")).startswith("OK")
            while admin.info("raft").get("raft_role") != "leader":
                assert time.monotonic() < deadline + 20, "no Raft leader after 20 s"
                time.sleep(0.1)
        admin.close()
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, user: str | None, password: str | None = None) -> redis.Redis:
        """A plain redis-py client (no retries: a refusal is final); password "" sends none
        (and speaks RESP2, so that no HELLO is sent before the first command)."""
        pw = self.passwords.get(user or "admin") if password is None else password
        return redis.Redis(host="127.0.0.1", port=self.port, username=user, password=pw or None,
                           socket_connect_timeout=2, decode_responses=True,
                           retry=Retry(NoBackoff(), 0), protocol=3 if pw else 2)

    def env(self, user: str) -> dict[str, str]:
        """The environment a container of this role gets: a user name and a password file."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("REDIS_", "WORDCOUNT_REDIS_"))}
        env.update(REDIS_URL=self.url, REDIS_USERNAME=user,
                   REDIS_PASSWORD_FILE=str(self.secrets / f"redis-{user}-password"))
        return env

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def acl_redis(tmp_path):
    server = AclRedis(tmp_path).start()
    yield server
    server.stop()


def _assert_refused(conn: redis.Redis, what: str, cmd: tuple[str, ...],
                    raft: bool = False) -> None:
    """NOPERM; on RedisRaft, a command the module refuses to anyone (DEBUG, SHUTDOWN, ...:
    "not supported by RedisRaft", checked before the ACL) is refused too."""
    try:
        conn.execute_command(*cmd)
    except redis.exceptions.NoPermissionError:
        return
    except redis.exceptions.ResponseError as e:
        if raft and "not supported by RedisRaft" in str(e):
            return
        raise AssertionError(f"{what}: refused, but not by the ACL: {e}") from None
    raise AssertionError(f"{what} was accepted")


def _assert_role_is_gated(server: AclRedis, user: str) -> None:
    raft = server.module is not None
    admin = server.client("admin")
    admin.set("secret", "admin's")
    admin.set("wc:probe", "1")
    conn = server.client(user)
    assert conn.ping()
    assert conn.set("wc:probe", "2") and conn.get("wc:probe") == "2"  # its own keys: yes
    for what, cmd in REFUSED:
        _assert_refused(conn, what, cmd, raft)
    # nothing happened: the server is up, every key is still there
    assert admin.ping()
    assert admin.get("secret") == "admin's" and admin.get("wc:probe") == "2"
    conn.close()
    admin.close()


@pytest.mark.parametrize("user", ROLES)
def test_role_is_refused_everything_dangerous(acl_redis, user):
    _assert_role_is_gated(acl_redis, user)


def test_default_user_is_refused(acl_redis):
    with pytest.raises(redis.exceptions.AuthenticationError, match="[Aa]uthentication required"):
        acl_redis.client(None, password="").ping()  # NOAUTH
    for pw in acl_redis.passwords.values():  # AUTH <password> is the default user's: off
        with pytest.raises(redis.exceptions.AuthenticationError):
            acl_redis.client(None, password=pw).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):  # a wrong password
        acl_redis.client("worker", password="not-it").ping()
    # and through our own Connection: a clear RedisUnavailableError (exit 4), never retried
    settings = Settings.from_env({}, redis_url=acl_redis.url,
                                 redis_password=acl_redis.passwords["admin"], retry_seconds=30)
    t0 = time.monotonic()
    with pytest.raises(RedisUnavailableError, match="refused our credentials|password"):
        Connection(settings).ping()
    assert time.monotonic() - t0 < 5


def test_admin_may_not_call_functions_and_workers_reload_them(acl_redis):
    """The Functions can be (re)loaded by workers and clients, so admin never runs them: its
    FCALL is refused. A library flushed away (as by a Redis restarted from nothing) is loaded
    again by the first worker, whose FUNCTION LOAD is allowed; only admin can flush it."""
    admin = acl_redis.client("admin")
    worker = Connection(Settings.from_env(acl_redis.env("worker")))
    worker.ensure_functions()
    assert worker.client.fcall_ro("wc_version", 0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        admin.fcall_ro("wc_version", 0)
    assert admin.function_flush() is True
    assert admin.function_list() == []
    worker.ensure_functions()  # "Function not found" -> FUNCTION LOAD as the worker
    assert [lib["library_name"] for lib in admin.function_list()] == [LIBRARY]
    # a NOPERM through our Connection names the user and is exit 4
    with pytest.raises(RedisUnavailableError, match="user worker") as e:
        worker.call(lambda r: r.flushall())
    assert e.value.exit_code == EXIT_REDIS
    worker.close()
    admin.close()


@pytest.mark.parametrize("queue", ["stream", "lease"])
def test_a_whole_job_runs_with_worker_and_client_credentials(acl_redis, small_corpus,
                                                             small_oracle, tmp_path, queue):
    """Two `wordcount worker` processes as the worker user, `wordcount submit` as the client
    user, each with REDIS_USERNAME and REDIS_PASSWORD_FILE only (as in the compose cluster):
    the full table equals the oracle's."""
    workers = []
    worker_env = {**acl_redis.env("worker"), "WORDCOUNT_QUEUE": queue}
    logs = tmp_path / "workers.log"
    with open(logs, "w") as log:
        for _ in range(2):
            workers.append(wc_bg("worker", "--claim-timeout", "2000", base_env=worker_env,
                                 stdout=log, stderr=subprocess.STDOUT))
    counts = tmp_path / "counts.tsv"
    try:
        out = run_wc("submit", str(small_corpus), "--fresh", "--chunk-size", "200000",
                     "--counts-out", str(counts), "--quiet", "--timeout", "240",
                     base_env={**acl_redis.env("client"), "WORDCOUNT_QUEUE": queue},
                     timeout=300)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
    assert out.returncode == EXIT_OK, (f"submit exited {out.returncode}: {out.stderr[-3000:]}\n"
                                       f"workers: {logs.read_text()[-3000:]}")
    text = counts.read_text(encoding="utf-8")
    got = Counter({w: int(n) for w, n in (line.split("\t") for line in text.splitlines())})
    assert_counts_equal(got, small_oracle)
    assert text == tsv(small_oracle)  # and written in the documented order
    assert "NOPERM" not in logs.read_text()  # no worker was refused anything on the way


def test_a_missing_password_file_is_a_usage_error(acl_redis, tmp_path):
    env = {**acl_redis.env("client"), "REDIS_PASSWORD_FILE": str(tmp_path / "nope")}
    out = run_wc("submit", str(tmp_path), base_env=env, timeout=60)
    assert out.returncode == 2
    assert "REDIS_PASSWORD_FILE" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_the_renderer_refuses_a_missing_password(tmp_path):
    _need("sh")
    _need("sha256sum")
    out = subprocess.run(["sh", str(ACL_SCRIPT), str(USERS)], capture_output=True, text=True,
                         env={**os.environ, "WORDCOUNT_SECRETS": str(tmp_path)}, timeout=30)
    assert out.returncode == 64
    assert "redis-admin-password" in out.stderr


def test_the_renderer_generates_missing_passwords_once(tmp_path):
    """--generate, as the entrypoints run it on the compose clusters' password volumes (one
    directory per user): an empty directory gets a random password; six renderers racing on
    the same directories (the three RedisRaft nodes start at once) agree on one each and leave
    nothing else behind; a second run keeps them; a file beside the directory wins; without
    --generate nothing is made. No password reaches the output."""
    _need("sh")
    _need("sha256sum")
    base = tmp_path / "secrets"
    modes = {"admin": 0o700, "worker": 0o755, "client": 0o755, "dashboard": 0o755,
             "chaos": 0o755, "raft": 0o700}
    for user, mode in modes.items():
        (base / user).mkdir(parents=True)
        (base / user).chmod(mode)
    env = {**os.environ, "WORDCOUNT_SECRETS": str(base)}
    templates = [str(USERS), str(RAFT_USERS)]

    def render(*args: str) -> subprocess.Popen:
        return subprocess.Popen(["sh", str(ACL_SCRIPT), *args, *templates], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    plain = render()
    assert plain.wait(timeout=30) == 64 and not any(base.rglob("*password*"))

    racers = [render("--generate") for _ in range(6)]
    outputs = [r.communicate(timeout=60) for r in racers]
    assert [r.returncode for r in racers] == [0] * 6, [e for _, e in outputs]
    assert len({out for out, _ in outputs}) == 1, "the renderers disagree on a password"
    passwords = {}
    for user, mode in modes.items():
        assert [f.name for f in (base / user).iterdir()] == [f"redis-{user}-password"]
        path = base / user / f"redis-{user}-password"
        assert path.stat().st_mode & 0o777 == (0o644 if mode & 0o005 else 0o600), user
        passwords[user] = path.read_text()
        assert re.fullmatch(r"[0-9a-f]{48}", passwords[user]), user
    assert len(set(passwords.values())) == len(modes)
    text = outputs[0][0]
    for user, pw in passwords.items():
        assert pw not in text and not any(pw in err for _, err in outputs)
        digest = hashlib.sha256(pw.encode()).hexdigest()
        assert any(line.startswith(f"user {user} ") and line.endswith(f"#{digest}")
                   for line in text.splitlines()), user

    again = render("--generate")
    assert again.communicate(timeout=30)[0] == text  # kept, not made again

    (base / "redis-worker-password").write_text("explicit\n")  # a file beside the directory
    out, _ = render("--generate").communicate(timeout=30)
    digest = hashlib.sha256(b"explicit").hexdigest()
    assert any(line.startswith("user worker ") and line.endswith(f"#{digest}")
               for line in out.splitlines())
    assert (base / "worker" / "redis-worker-password").read_text() == passwords["worker"]


def test_raft_node_gates_the_same_way(raft_binaries, tmp_path):
    """A one-node RedisRaft cluster with the nodes' aclfile: the worker and client users (with
    +raft, the wrapper RedisRaft turns every command into) are refused the same commands; the
    wrapped command is checked against their ACL."""
    server = AclRedis(tmp_path, server=raft_binaries.redis_server, module=raft_binaries.module)
    server.start()
    try:
        for user in ROLES:
            _assert_role_is_gated(server, user)
            conn = server.client(user)
            _assert_refused(conn, "RAFT.CLUSTER", ("RAFT.CLUSTER", "INIT"))
            conn.function_load(library_code(), replace=True)  # the reload path works on Raft
            assert conn.fcall_ro("wc_version", 0)
            conn.close()
        with pytest.raises(redis.exceptions.AuthenticationError):
            server.client(None, password=server.passwords["admin"]).ping()
    finally:
        server.stop()


def test_operators_read_jobs_and_workers_as_admin_and_change_them_as_client(acl_redis):
    """admin may not FCALL, so the read-only operator commands must not need a Function
    (jobs, status, workers, result); cancel and requeue run Functions: the client user's."""
    def wc(user: str, *args: str) -> subprocess.CompletedProcess:
        return run_wc(*args, base_env=acl_redis.env(user), timeout=60)

    for args in (["jobs"], ["status", "--json"], ["workers"]):
        out = wc("admin", *args)
        assert out.returncode == EXIT_OK, (args, out.stderr)
    assert wc("admin", "result", "nope").returncode == 2  # no such job, not NOPERM
    refused = wc("admin", "cancel", "nope")
    assert refused.returncode == EXIT_REDIS and "user admin" in refused.stderr
    assert wc("client", "cancel", "nope").returncode == 2  # the client user gets that far


# -- the dashboard user: reads what the dashboard shows, writes nothing ------------------------

def _dashboard_conn(server: AclRedis) -> Connection:
    """A Connection as `wordcount dashboard` makes one in the compose clusters: the dashboard
    user, its password from a file."""
    return Connection(Settings.from_env(server.env(DASHBOARD), retry_seconds=0.0),
                      name="wordcount-dashboard")


def _assert_dashboard_writes_nothing(server: AclRedis) -> None:
    """Every write (wc:* keys included), FCALL, FUNCTION and dangerous command is refused to
    the dashboard user, and nothing changed: its reads of the same keys still work."""
    raft = server.module is not None
    admin = server.client("admin")
    admin.set("secret", "admin's")
    admin.set("wc:probe", "1")
    admin.hset(keys.workers(), "w", "{}")
    before = {k: admin.dump(k) for k in admin.keys("*")}
    conn = server.client(DASHBOARD)
    assert conn.ping() and conn.get("wc:probe") == "1"  # it reads wc:*...
    assert conn.info()["redis_version"]  # ... and INFO
    for what, cmd in REFUSED + WRITES:
        if what == "SET outside wc:*":  # (its SET wc:probe is in WRITES)
            continue
        _assert_refused(conn, what, cmd, raft)
    _assert_refused(conn, "SET wc:probe", ("SET", "wc:probe", "2"), raft)
    assert {k: admin.dump(k) for k in admin.keys("*")} == before, "the dashboard user changed data"
    conn.close()
    admin.close()


def test_dashboard_user_reads_what_the_dashboard_shows_and_writes_nothing(acl_redis, tmp_path):
    """A job run with the worker and client users, then the dashboard's Observer samples Redis
    as the dashboard user (as the compose service does): Redis reachable, the job done, the
    worker listed, the job's detail (top words) read. The registry's pruning of stale reports
    is a write: refused to that user, so the dashboard reads the registry with prune=False."""
    from wordcount import registry
    from wordcount.dashboard.state import Observer, read_detail

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 200
                                        + f"file{i}\n")
    logs = tmp_path / "worker.log"
    with open(logs, "w") as log:
        worker = wc_bg("worker", "--claim-timeout", "2000", base_env=acl_redis.env("worker"),
                       stdout=log, stderr=subprocess.STDOUT)
    try:
        out = run_wc("submit", str(data), "--fresh", "--json", "--quiet", "--timeout", "120",
                     base_env=acl_redis.env("client"), timeout=180)
        assert out.returncode == EXIT_OK, out.stderr[-3000:]
        job = json.loads(out.stdout.strip().splitlines()[-1])["job"]

        conn = _dashboard_conn(acl_redis)
        obs = Observer(conn)
        obs.sample([job])
        assert obs.redis["reachable"] is True, obs.redis
        assert obs.redis["run_id"] and obs.redis["version"]
        row = obs.jobs[job]
        assert row["state"] == "done" and row["done"] == row["total"] > 0 and row["dead"] == 0
        assert row["words"] == 3 * (9 * 200 + 1)
        assert [w["name"] for w in obs.workers.values()] and \
            not any(w["lost"] for w in obs.workers.values())
        assert obs.details[job]["top"][0] == ["the", 3 * 400]
        detail = read_detail(conn, job, list(obs.workers.values()))
        assert detail["dead_total"] == 0 and detail["top"] == obs.details[job]["top"]
        assert obs.snapshot()["jobs"] == [row]

        # a stale report (older than FORGET_S): read past, not deleted, by the dashboard user
        admin = acl_redis.client("admin")
        admin.hset(keys.workers(), "ghost", '{"name": "ghost", "beat_ms": 1}')
        names = [r.name for r in registry.reports(conn, prune=False)]
        assert "ghost" not in names and len(names) == len(obs.workers)
        assert admin.hexists(keys.workers(), "ghost")
        with pytest.raises(RedisUnavailableError, match="user dashboard"):
            registry.reports(conn)  # pruning is a write: NOPERM
        assert admin.hexists(keys.workers(), "ghost")
        conn.close()
        admin.close()
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    _assert_dashboard_writes_nothing(acl_redis)


def test_raft_dashboard_user_reads_and_writes_nothing(raft_binaries, tmp_path):
    """On a RedisRaft node (the nodes' aclfile: raft-users.acl's `append dashboard +raft`), the
    dashboard user's reads pass the RAFT wrapper (a sample sees the node's raft state and the
    registry) and its writes are refused."""
    from wordcount.dashboard.state import Observer

    server = AclRedis(tmp_path, server=raft_binaries.redis_server, module=raft_binaries.module)
    server.start()
    try:
        admin = server.client("admin")
        admin.hset(keys.workers(), "w1", json.dumps({"name": "w1",
                                                     "beat_ms": int(time.time() * 1000)}))
        admin.close()
        conn = _dashboard_conn(server)
        obs = Observer(conn)
        obs.sample()
        assert obs.redis["reachable"] is True, obs.redis
        assert obs.redis["raft"] and obs.redis["raft"]["role"] == "leader"
        assert list(obs.workers) == ["w1"] and obs.jobs == {}
        conn.close()
        _assert_dashboard_writes_nothing(server)
    finally:
        server.stop()


# -- the chaos user: records events, nothing else ---------------------------------------------

def test_chaos_user_records_its_events_and_nothing_else(acl_redis):
    """The chaos monkey's Feed, made as the compose service makes it (the chaos user, its
    password from a file), records a kill in the shared event feed once the library is in
    Redis (a worker or client loads it), at the kill's own time, and the dashboard's Observer
    reads it back as a marker. Every other write is refused to that user, a Function that
    touches a job's keys (wc_cancel) included, and it cannot load the library."""
    from chaos.monkey import feed_from
    from wordcount import events, functions
    from wordcount.dashboard.state import Observer

    feed = feed_from(acl_redis.env(CHAOS))
    feed.note("killed redis proj-redis-1 (#1), started again after 2.0 s", 1_700_000_000.0)
    time.sleep(1.5)  # Redis has no library yet: not recorded, kept
    assert feed.recorded == 0
    client = Connection(Settings.from_env(acl_redis.env("client"), retry_seconds=0.0),
                        name="wordcount-client")
    client.ensure_functions()
    assert feed.close(grace=10) == 0 and feed.recorded == 1
    admin = acl_redis.client("admin")
    (line,) = admin.lrange(keys.events(), 0, -1)
    assert line == ("1700000000000 chaos - chaos killed redis proj-redis-1 (#1), started "
                    "again after 2.0 s"), line
    seen = Observer(Connection(Settings.from_env(acl_redis.env(DASHBOARD), retry_seconds=0.0),
                               name="wordcount-dashboard"))
    seen.sample()
    assert [(m["kind"], m["t"], m["text"]) for m in seen.markers] == [
        ("chaos", 1_700_000_000_000, f"chaos: {line.split(' chaos ', 2)[2]}")]
    # nothing else: plain writes, wc:* keys other than the feed's, other Functions, loading
    admin.set("wc:probe", "1")
    before = {k: admin.dump(k) for k in admin.keys("*")}
    conn = acl_redis.client(CHAOS)
    for what, cmd in REFUSED + WRITES:
        if what == "FCALL of a writing Function":
            continue  # (FCALL is allowed: refused below by the keys a Function names)
        _assert_refused(conn, what, cmd)
    _assert_refused(conn, "FCALL wc_cancel of a job", (
        "FCALL", "wc_cancel", "2", keys.meta("j"), keys.active(), functions.IDENTITY, "0",
        "j", ""))
    _assert_refused(conn, "RPUSH of a job's key", ("RPUSH", keys.history("j"), "forged"))
    _assert_refused(conn, "SET of a job's key", ("SET", keys.meta("j"), "x"))
    _assert_refused(conn, "LRANGE wc:events", ("LRANGE", keys.events(), "0", "-1"))
    assert {k: admin.dump(k) for k in admin.keys("*")} == before, "the chaos user changed data"
    assert events.record(_chaos_conn(acl_redis), "chaos", "chaos", "one more") is True
    conn.close()
    admin.close()


def _chaos_conn(server: AclRedis) -> Connection:
    return Connection(Settings.from_env(server.env(CHAOS), retry_seconds=0.0),
                      name="wordcount-chaos")
