"""``wordcount chaos``: a chaos monkey for the compose cluster.

Every ``interval`` seconds it SIGKILLs the Redis container (or a random worker: ``--targets
redis,worker`` picks one of the two at random each time), waits ``downtime`` seconds and starts
it again, logging both with a timestamp. It stops once the job's client container has exited
(or after ``--max-kills`` / ``--duration``) and writes what it did to a JSON summary
(default /results/chaos.json): kills by target, and when each one happened.

The target ``raft`` is any RedisRaft node of compose.raft.yml (services raft1, raft2, ...), and
``--mode`` (CHAOS_MODE) says how to disrupt:

- ``kill`` (default): one random container of a target every ``interval`` s, down for
  ``downtime`` s (with ``--targets raft``: a random node at a time, a majority always up);
- ``one-down``: after ``interval`` s, one random container goes down and stays down until the
  client exits (a RedisRaft cluster runs the whole job on two of its three nodes);
- ``majority-down``: every ``interval`` s, kill a majority of a target's containers at once (two
  of three RedisRaft nodes: no quorum) for ``downtime`` s, then start them all again;
- ``partition``: every ``interval`` s, cut one container off every network of the project
  (``docker network disconnect``) for ``downtime`` s, then connect it again with its aliases:
  it keeps running, unreachable (a RedisRaft leader isolated from its followers, a worker that
  keeps counting a task whose lease expires meanwhile);
- ``pause``: every ``interval`` s, freeze one container (``docker pause``: SIGSTOP of its
  processes, as a GC pause, a VM freeze or a stalled disk would) for ``downtime`` s.
With ``--targets raft``, ``partition`` and ``pause`` hit the current leader (found with ``INFO
raft`` inside each node); ``kill`` a random node.

Victims are found through the Docker API by their compose labels: ``com.docker.compose.project``
= our own project (``--project``, else COMPOSE_PROJECT_NAME, else read from the labels of the
container we run in) and ``com.docker.compose.service`` = redis | worker | client | raft<N>. A
container killed through the Docker API is not restarted by its restart policy, so starting it
again is our job, and a target still down when we stop (or are stopped) is started before we
exit.

Each disruption also goes into the cluster's shared event feed (``wordcount.events``, kind
``chaos``, at the moment it began), so the dashboard draws it as a marker on the job's timeline,
also when opened later: as the Redis user ``chaos``, which may only record events (redis/
users.acl). A Redis kill is recorded once Redis is back (a thread retries, never holding up the
next strike); without Redis credentials (REDIS_URL unset) nothing is recorded.

The docker client is passed in (``Chaos(client, config)``): only the CLI handler imports the
docker SDK (the ``chaos`` extra), so the package works without it and the tests use a fake; so
is what records an event (``record``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from wordcount.exceptions import EXIT_OK, UsageError, WordcountError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
TARGETS = ("redis", "worker", "raft")
RAFT_SERVICE = re.compile(r"raft\d+")  # the target "raft": raft1, raft2, ... (not raft-init)
MODES = ("kill", "one-down", "majority-down", "partition", "pause")
ACTIONS = {"partition": "cut off", "pause": "paused"}  # what a strike does in these modes
CLIENT = "client"
# A client container in one of these states has not finished its job yet.
UNFINISHED = ("created", "running", "restarting", "paused")


@dataclass(frozen=True)
class Config:
    project: str
    interval: float = 5.0  # seconds of uptime between a start and the next kill
    downtime: float = 2.0  # seconds a killed container stays down
    targets: tuple[str, ...] = ("redis",)
    max_kills: int = 0  # stop after this many kills (0: no limit)
    duration: float = 0.0  # stop after this many seconds (0: no limit)
    summary: str | None = "/results/chaos.json"
    seed: int | None = None
    poll: float = 0.5  # how often the client's state is checked while waiting
    mode: str = "kill"  # kill | one-down | majority-down (see the module docstring)


@dataclass
class Event:
    kill: int  # 1, 2, ... over all targets
    target: str  # service: redis | worker
    container: str
    killed_at: float  # epoch seconds
    started_at: float | None = None  # None: could not be started again (see errors)
    down_s: float | None = None
    action: str = "kill"  # kill | partition | pause


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


Record = Callable[[str, int], bool]  # (text, at ms) -> recorded in the shared feed


class Feed:
    """What the monkey did, on its way into the shared event feed: a thread records each note
    in order, retrying while Redis is down (or paused, or cut off), so that no call to Redis
    ever holds up a strike. At most ``keep`` notes wait (the oldest dropped); ``close`` gives
    the thread ``grace`` seconds to record what waits."""

    def __init__(self, record: Record, retry_s: float = 1.0, keep: int = 200) -> None:
        self._record = record
        self._retry_s = retry_s
        self._waiting: deque[tuple[str, int]] = deque(maxlen=keep)
        self._cv = threading.Condition()
        self._closed = False
        self.recorded = 0
        self._thread = threading.Thread(target=self._run, name="chaos-feed", daemon=True)
        self._thread.start()

    def note(self, text: str, at_s: float) -> None:
        with self._cv:
            self._waiting.append((text, int(at_s * 1000)))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._waiting and not self._closed:
                    self._cv.wait()
                if not self._waiting:
                    return
                text, at = self._waiting[0]
            try:
                ok = self._record(text, at)
            except Exception:  # noqa: BLE001 - for people only: try again later
                ok = False
            with self._cv:
                if ok:
                    if self._waiting and self._waiting[0] == (text, at):
                        self._waiting.popleft()
                    self.recorded += 1
                elif not self._closed:
                    self._cv.wait(self._retry_s)
                else:
                    return

    def close(self, grace: float = 5.0) -> int:
        """Stop once what waits is recorded, or after ``grace`` s; returns how many notes were
        left unrecorded."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._thread.is_alive():
            with self._cv:
                if not self._waiting:
                    break
            time.sleep(0.05)
        with self._cv:
            self._closed = True
            left = len(self._waiting)
            self._cv.notify()
        self._thread.join(0.5)
        return left


class Chaos:
    def __init__(self, docker: Any, config: Config, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 log: Callable[[str], None] | None = None, feed: Feed | None = None) -> None:
        self.docker = docker
        self.feed = feed  # the shared event feed (None: not recorded)
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random(config.seed)
        self._log = log
        self.events: list[Event] = []
        self.errors: list[str] = []
        self.client_exit_code: int | None = None
        self._seen_client = False
        # disrupted, not restored yet: (container, event, what restores it)
        self._down: list[tuple[Any, Event, Callable[[], None]]] = []
        self.started_at = 0.0

    def log(self, message: str) -> None:
        line = f"{stamp(self.clock())} chaos: {message}"
        if self._log:
            self._log(line)
        else:
            print(line, file=sys.stderr, flush=True)

    # -- finding containers -------------------------------------------------------------------

    def containers(self, service: str, all: bool = False) -> list[Any]:
        """The project's containers of a service; ``raft``: of every raft<N> service."""
        labels = [f"{PROJECT_LABEL}={self.config.project}"]
        if service != "raft":
            labels.append(f"{SERVICE_LABEL}={service}")
        found = self.docker.containers.list(all=all, filters={"label": labels})
        if service == "raft":
            found = [c for c in found
                     if RAFT_SERVICE.fullmatch(c.labels.get(SERVICE_LABEL, ""))]
        return sorted(found, key=lambda c: c.name)

    def client_finished(self) -> bool:
        """True once a client container was seen and none is unfinished any more (an exited
        one, or none left: ``compose run --rm``)."""
        clients = self.containers(CLIENT, all=True)
        if not clients:
            return self._seen_client
        self._seen_client = True
        if any(c.status in UNFINISHED for c in clients):
            return False
        codes = [c.attrs.get("State", {}).get("ExitCode") for c in clients]
        self.client_exit_code = max((c for c in codes if c is not None), default=None)
        return True

    # -- the loop -----------------------------------------------------------------------------

    def stop_reason(self) -> str | None:
        if self.config.max_kills and len(self.events) >= self.config.max_kills:
            return f"max kills ({self.config.max_kills})"
        if self.config.duration and self.clock() - self.started_at >= self.config.duration:
            return f"duration ({self.config.duration:g} s)"
        if self.client_finished():
            return "client exited"
        return None

    def wait(self, seconds: float) -> str | None:
        """Sleep ``seconds`` in small steps; a stop reason as soon as there is one."""
        until = self.clock() + seconds
        while True:
            reason = self.stop_reason()
            if reason or self.clock() >= until:
                return reason
            self.sleep(max(0.0, min(self.config.poll, until - self.clock())))

    def run(self) -> dict[str, Any]:
        c = self.config
        self.started_at = self.clock()
        what = " or ".join(c.targets)
        if c.mode == "one-down":
            self.log(f"project {c.project}: after {c.interval:g} s, one {what} container goes "
                     f"down until the client exits")
        elif c.mode == "majority-down":
            self.log(f"project {c.project}: killing a majority of the {what} containers every "
                     f"{c.interval:g} s for {c.downtime:g} s until the client exits")
        elif c.mode in ACTIONS:
            self.log(f"project {c.project}: {c.mode} of {what} every {c.interval:g} s for "
                     f"{c.downtime:g} s until the client exits")
        else:
            self.log(f"project {c.project}: killing {what} every {c.interval:g} s for "
                     f"{c.downtime:g} s until the client exits")
        reason = "interrupted"
        try:
            if c.mode == "one-down":
                # keep trying until one is down (a target may not be running yet), then hold
                while not (reason := self.wait(c.interval)):
                    if self.strike(restore=False):
                        reason = self.wait(float("inf"))
                        break
            else:
                count = None if c.mode == "majority-down" else 1
                while not (reason := self.wait(c.interval)):
                    self.strike(count)
        except KeyboardInterrupt:  # SIGINT, or SIGTERM (docker stop) via the CLI's handler
            reason = "interrupted"
        finally:
            self.restore()
            if self.feed is not None:
                left = self.feed.close()
                if left:
                    self.error(f"{left} of the events could not be recorded in Redis's event "
                               "feed (Redis unreachable, or the chaos user refused)")
        summary = self.summary(reason)
        self.log(f"stopped ({reason}) after {summary['total_kills']} kills: "
                 + ", ".join(f"{t} {n}" for t, n in summary["kills"].items()))
        if c.summary:
            self.write(summary, c.summary)
        return summary

    def strike(self, count: int | None = 1, restore: bool = True) -> list[Event]:
        """Kill ``count`` random running containers of a random target (``None``: as many as
        it takes to leave only a minority of the target's containers running); then, if
        ``restore``, wait ``downtime`` s and start them again. Returns the kills."""
        target = self.rng.choice(self.config.targets)
        running = [v for v in self.containers(target) if v.status == "running"]
        if count is None:
            total = len(self.containers(target, all=True))
            count = len(running) - (total - (total // 2 + 1))
        if not running or count <= 0:
            self.log(f"no running {target} container to kill: skipped" if not running else
                     f"a majority of the {target} containers is down already: skipped")
            return []
        action = self.config.mode if self.config.mode in ACTIONS else "kill"
        leader = self.leader(running) if target == "raft" and action != "kill" else None
        victims = ([leader] if leader is not None else
                   [self.rng.choice(running)] if count == 1 else
                   sorted(self.rng.sample(running, min(count, len(running))),
                          key=lambda c: c.name))
        killed: list[Event] = []
        for victim in victims:
            event = Event(len(self.events) + 1, target, victim.name, self.clock(),
                          action=action)
            try:
                undo = self.disrupt(victim, action)
            except Exception as e:  # noqa: BLE001 - gone meanwhile (compose down), API hiccup
                self.error(f"could not {action} {victim.name}: {e}")
                continue
            self.events.append(event)
            self._down.append((victim, event, undo))
            killed.append(event)
            what = "killed" if action == "kill" else ACTIONS[action]
            self.log(f"{what} {target} {victim.name}{' (the leader)' if victim is leader else ''}"
                     f" ({'kill ' if action == 'kill' else ''}#{event.kill})")
            if not restore:
                self.tell(event, f"{what} {target} {victim.name}"
                                 f"{' (the leader)' if victim is leader else ''} "
                                 f"(#{event.kill}): down until the client exits")
        if killed and restore:
            self.sleep(self.config.downtime)
            self.restore()
        return killed

    def disrupt(self, victim: Any, action: str) -> Callable[[], None]:
        """Kill, cut off or pause one container; returns what undoes it."""
        if action == "pause":
            victim.pause()
            return victim.unpause
        if action == "partition":
            nets = victim.attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
            aliases = {name: [a for a in (n or {}).get("Aliases") or []
                              if not victim.id.startswith(a)] for name, n in nets.items()}
            for name in aliases:
                self.docker.networks.get(name).disconnect(victim, force=True)

            def reconnect() -> None:
                for name, names in aliases.items():
                    self.docker.networks.get(name).connect(victim, aliases=names or None)
            return reconnect
        victim.kill(signal="SIGKILL")
        victim.wait(timeout=30)  # really down before the downtime starts
        return victim.start

    def leader(self, nodes: list[Any]) -> Any | None:
        """The RedisRaft node that says it is the leader (INFO raft, run inside it), or None."""
        for node in nodes:
            try:
                code, out = node.exec_run(["wordcount-redis-cli", "INFO", "raft"])
            except Exception:  # noqa: BLE001 - the node is going down, an API hiccup
                continue
            text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
            if code == 0 and "raft_role:leader" in text:
                return node
        return None

    def restore(self) -> None:
        """Undo every disruption not undone yet: start what we killed, connect again what we
        cut off, unpause what we paused (a few tries each)."""
        while self._down:
            victim, event, undo = self._down.pop(0)
            for attempt in range(3):
                try:
                    undo()
                    break
                except Exception as e:  # noqa: BLE001
                    self.error((f"could not start {victim.name} again" if event.action == "kill"
                                else f"could not undo the {event.action} of {victim.name}")
                               + f" (try {attempt + 1}): {e}")
                    self.sleep(1.0)
            else:
                continue
            event.started_at = self.clock()
            event.down_s = round(event.started_at - event.killed_at, 3)
            done = {"kill": "started", "partition": "connected", "pause": "unpaused"}
            self.log(f"{done[event.action]} {event.target} {victim.name} again after "
                     f"{event.down_s:.1f} s")
            what = "killed" if event.action == "kill" else ACTIONS[event.action]
            self.tell(event, f"{what} {event.target} {victim.name} (#{event.kill}), "
                             f"{done[event.action]} again after {event.down_s:.1f} s")

    def tell(self, event: Event, text: str) -> None:
        """Into the shared event feed, at the moment the disruption began."""
        if self.feed is not None:
            self.feed.note(text, event.killed_at)

    def error(self, message: str) -> None:
        self.errors.append(message)
        self.log(message)

    # -- summary ------------------------------------------------------------------------------

    def summary(self, reason: str) -> dict[str, Any]:
        ended = self.clock()
        kills = Counter({t: 0 for t in self.config.targets})
        kills.update(e.target for e in self.events)
        return {
            "project": self.config.project,
            "mode": self.config.mode,
            "targets": list(self.config.targets),
            "interval_s": self.config.interval,
            "downtime_s": self.config.downtime,
            "started_at": self.started_at,
            "ended_at": ended,
            "started": stamp(self.started_at),
            "ended": stamp(ended),
            "seconds": round(ended - self.started_at, 3),
            "stopped_because": reason,
            "client_exit_code": self.client_exit_code,
            "kills": dict(kills),
            "total_kills": len(self.events),
            "events": [asdict(e) for e in self.events],
            "errors": self.errors,
        }

    def write(self, summary: dict[str, Any], path: str) -> None:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            tmp = f"{path}.tmp.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2)
                f.write("\n")
            os.replace(tmp, path)
            self.log(f"summary written to {path}")
        except OSError as e:
            self.log(f"could not write the summary to {path}: {e}")


# -- which project we belong to --------------------------------------------------------------

def own_container_ids() -> list[str]:
    """Ways to name the container we run in: its hostname (docker's default is the short id),
    then any container id in /proc/self/cgroup (cgroup v1) or /proc/self/mountinfo."""
    ids = [socket.gethostname()]
    for path in ("/proc/self/cgroup", "/proc/self/mountinfo"):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                ids += re.findall(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])", f.read())
        except OSError:
            pass
    return list(dict.fromkeys(ids))


def own_project(docker: Any, env: Mapping[str, str], ids: list[str] | None = None) -> str | None:
    if env.get("COMPOSE_PROJECT_NAME"):
        return env["COMPOSE_PROJECT_NAME"]
    for cid in own_container_ids() if ids is None else ids:
        try:
            project = docker.containers.get(cid).labels.get(PROJECT_LABEL)
        except Exception:  # noqa: BLE001, S112 - not a container id (e.g. a hostname)
            continue
        if project:
            return project
    return None


# -- CLI ----------------------------------------------------------------------------------------

def _number(args: argparse.Namespace, env: Mapping[str, str], name: str, kind: type,
            default: float) -> Any:
    value = getattr(args, name)
    if value is None:
        raw = env.get(f"CHAOS_{name.upper()}", "")
        try:
            value = kind(raw) if raw.strip() else default
        except ValueError:
            raise UsageError(f"CHAOS_{name.upper()}: not a number: {raw!r}") from None
    if value < 0:
        raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
    return value


def config_from(args: argparse.Namespace, env: Mapping[str, str], docker: Any) -> Config:
    """Flags win over CHAOS_* environment variables, which win over the defaults."""
    targets_text = args.targets or env.get("CHAOS_TARGETS") or "redis"
    targets = tuple(dict.fromkeys(t.strip() for t in targets_text.split(",") if t.strip()))
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise UsageError(f"chaos targets must be among {', '.join(TARGETS)}: {targets_text!r}")
    project = args.project or own_project(docker, env)
    if not project:
        raise UsageError("cannot tell which compose project to disrupt: pass --project or set "
                         "COMPOSE_PROJECT_NAME (inside compose it is read from our own labels)")
    summary = args.summary if args.summary is not None else env.get("CHAOS_SUMMARY",
                                                                      "/results/chaos.json")
    seed = args.seed if args.seed is not None else (
        int(env["CHAOS_SEED"]) if env.get("CHAOS_SEED", "").strip().isdigit() else None)
    interval = _number(args, env, "interval", float, 5.0)
    if interval <= 0:
        raise UsageError("--interval must be > 0")
    mode = (args.mode or env.get("CHAOS_MODE", "").strip() or "kill").lower()
    if mode not in MODES:
        raise UsageError(f"chaos mode must be one of {', '.join(MODES)}: {mode!r}")
    return Config(project=project, interval=interval, mode=mode,
                  downtime=_number(args, env, "downtime", float, 2.0), targets=targets,
                  max_kills=_number(args, env, "max_kills", int, 0),
                  duration=_number(args, env, "duration", float, 0.0),
                  summary=summary or None, seed=seed)


def feed_from(env: Mapping[str, str]) -> Feed | None:
    """A Feed into the shared event feed of the Redis that REDIS_URL (or WORDCOUNT_REDIS_URL)
    names, as REDIS_USERNAME with REDIS_PASSWORD(_FILE) (the compose files: the user
    ``chaos``); None when no URL is set. One try per call: the Feed's thread retries."""
    if not (env.get("REDIS_URL") or env.get("WORDCOUNT_REDIS_URL")):
        return None
    from wordcount import events
    from wordcount.connection import Connection
    from wordcount.settings import Settings

    conn = Connection(Settings.from_env(env, retry_seconds=0), name="wordcount-chaos")
    return Feed(lambda text, at_ms: events.record(conn, "chaos", "chaos", text, at_ms=at_ms))


def _stop_on_sigterm() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def cmd_chaos(args: argparse.Namespace) -> int:
    try:
        import docker
    except ImportError:
        raise UsageError("wordcount chaos needs the docker SDK: pip install "
                         "'wordcount[chaos]'") from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # noqa: BLE001 - DockerException, requests errors, ...
        raise WordcountError(f"cannot reach the Docker engine (is /var/run/docker.sock "
                             f"mounted?): {e}") from None
    config = config_from(args, os.environ, client)
    _stop_on_sigterm()
    Chaos(client, config, feed=feed_from(os.environ)).run()
    return EXIT_OK


def add_parser(sub) -> None:
    p = sub.add_parser(
        "chaos", help="SIGKILL this compose project's Redis, RedisRaft nodes or workers every "
                      "few seconds while a job runs (needs the docker SDK: the chaos extra)",
        description="Unset options come from CHAOS_MODE, CHAOS_INTERVAL, CHAOS_DOWNTIME, "
                    "CHAOS_TARGETS, CHAOS_MAX_KILLS, CHAOS_DURATION, CHAOS_SUMMARY, CHAOS_SEED, "
                    "then the defaults.")
    p.add_argument("--mode", choices=MODES,
                   help="kill: one container every INTERVAL s for DOWNTIME s (default); "
                        "one-down: one container down from INTERVAL s on until the client "
                        "exits; majority-down: a majority of a target's containers (2 of 3 "
                        "RedisRaft nodes) every INTERVAL s for DOWNTIME s")
    p.add_argument("--interval", type=float, metavar="S",
                   help="seconds between starting a target again and the next kill (default 5)")
    p.add_argument("--downtime", type=float, metavar="S",
                   help="seconds a killed target stays down (default 2)")
    p.add_argument("--targets", metavar="LIST",
                   help="comma-separated services to pick from each time: redis, worker, "
                        "raft (any raft<N> node of compose.raft.yml) (default redis)")
    p.add_argument("--max-kills", type=int, metavar="N", help="stop after N kills (default: "
                   "no limit)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds "
                   "(default: no limit)")
    p.add_argument("--project", help="compose project (default: COMPOSE_PROJECT_NAME, else the "
                                     "project of the container we run in)")
    p.add_argument("--summary", metavar="PATH",
                   help="write the JSON summary here (default /results/chaos.json; '' for none)")
    p.add_argument("--seed", type=int, help="random seed for picking targets")
    p.set_defaults(handler=cmd_chaos)


