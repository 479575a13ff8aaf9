"""The chaos monkey (chaos/monkey.py) against a fake docker client and a fake clock: no Docker."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

import pytest

from chaos import monkey as chaos_mod
from chaos.monkey import PROJECT_LABEL, SERVICE_LABEL, Chaos, Config, config_from, own_project
from wordcount.cli import build_parser, main
from wordcount.exceptions import UsageError


class Clock:
    """time.time and time.sleep in one: sleeping advances the clock, and runs any callbacks
    scheduled for the new time (e.g. the client container exiting)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.slept = 0.0
        self.at: list[tuple[float, object]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds
        for when, action in list(self.at):
            if self.now >= when:
                self.at.remove((when, action))
                action()


class FakeContainer:
    def __init__(self, name: str, service: str, project: str = "proj",
                 status: str = "running") -> None:
        self.name = name
        self.id = f"id-{name}"
        self.labels = {PROJECT_LABEL: project, SERVICE_LABEL: service}
        self.status = status
        self.exit_code = 0
        self.calls: list[str] = []
        self.fail_start = 0  # this many start() calls raise

    @property
    def attrs(self) -> dict:
        return {"State": {"Status": self.status, "ExitCode": self.exit_code},
                "NetworkSettings": {"Networks": {n: {"Aliases": a}
                                                 for n, a in self.networks.items()}}}

    def kill(self, signal: str = "SIGKILL") -> None:
        assert self.status == "running", f"killed {self.name} while {self.status}"
        self.calls.append(f"kill:{signal}")
        self.status, self.exit_code = "exited", 137

    def wait(self, timeout: float | None = None) -> dict:
        self.calls.append("wait")
        return {"StatusCode": self.exit_code}

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_start:
            self.fail_start -= 1
            raise RuntimeError("500 Server Error: boom")
        self.status = "running"

    def finish(self, code: int = 0) -> None:
        self.status, self.exit_code = "exited", code

    def pause(self) -> None:
        assert self.status == "running"
        self.calls.append("pause")
        self.status = "paused"

    def unpause(self) -> None:
        self.calls.append("unpause")
        self.status = "running"

    leader = False  # a RedisRaft node: what INFO raft says inside it
    networks: dict = {}  # name -> aliases

    def exec_run(self, cmd):
        self.calls.append("exec:" + " ".join(cmd))
        return 0, (b"raft_role:leader\r\n" if self.leader else b"raft_role:follower\r\n")


class FakeContainers:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.all = containers
        self.list_calls: list[dict] = []

    def list(self, all: bool = False, filters: dict | None = None) -> list[FakeContainer]:
        self.list_calls.append({"all": all, "filters": filters})
        wanted = dict(label.split("=", 1) for label in (filters or {}).get("label", []))
        return [c for c in self.all
                if (all or c.status == "running")
                and all_labels_match(c.labels, wanted)]

    def get(self, cid: str) -> FakeContainer:
        for c in self.all:
            if cid in (c.id, c.name):
                return c
        raise LookupError(f"404 no such container: {cid}")


def all_labels_match(labels: dict, wanted: dict) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


class FakeNetwork:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def disconnect(self, container, force: bool = False) -> None:
        self.log.append(f"disconnect {container.name} {self.name}")

    def connect(self, container, aliases=None) -> None:
        self.log.append(f"connect {container.name} {self.name} {sorted(aliases or [])}")


class FakeNetworks:
    def __init__(self) -> None:
        self.log: list[str] = []

    def get(self, name: str) -> FakeNetwork:
        return FakeNetwork(name, self.log)


class FakeDocker:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = FakeContainers(containers)
        self.networks = FakeNetworks()


def cluster(project: str = "proj", workers: int = 3) -> dict[str, FakeContainer]:
    cs = {"redis": FakeContainer(f"{project}-redis-1", "redis", project),
          "client": FakeContainer(f"{project}-client-1", "client", project)}
    for i in range(1, workers + 1):
        cs[f"worker{i}"] = FakeContainer(f"{project}-worker-{i}", "worker", project)
    return cs


def make(cs: dict[str, FakeContainer], clock: Clock, others: list[FakeContainer] = (),
         **config) -> tuple[Chaos, list[str]]:
    lines: list[str] = []
    config.setdefault("summary", None)
    monkey = Chaos(FakeDocker([*cs.values(), *others]), Config(project="proj", **config),
                   clock=clock, sleep=clock.sleep, rng=random.Random(1), log=lines.append)
    return monkey, lines


def test_kills_redis_every_interval_and_stops_when_the_client_exits(tmp_path):
    clock = Clock()
    cs = cluster()
    clock.at.append((clock.now + 23.0, lambda: cs["client"].finish(0)))
    summary_path = tmp_path / "out" / "chaos.json"
    monkey, lines = make(cs, clock, interval=5, downtime=2, summary=str(summary_path))

    summary = monkey.run()

    # kills at t=5, 12, 19 (5 s up, 2 s down each); the client exits at t=23
    assert summary["total_kills"] == 3
    assert summary["kills"] == {"redis": 3}
    assert summary["stopped_because"] == "client exited"
    assert summary["client_exit_code"] == 0
    assert [e["killed_at"] - 1000 for e in summary["events"]] == [5, 12, 19]
    assert all(e["down_s"] == 2 for e in summary["events"])
    assert cs["redis"].calls == ["kill:SIGKILL", "wait", "start"] * 3
    assert cs["redis"].status == "running", "redis must be left running"
    assert all(c.calls == [] for k, c in cs.items() if k.startswith("worker"))
    # timestamped log lines in the documented shape
    kills = [line for line in lines if "killed redis" in line]
    assert kills[2].endswith("chaos: killed redis proj-redis-1 (kill #3)")
    assert kills[0].startswith("1970-01-01T00:16:45.000+00:00 ")
    assert any(line.endswith("started redis proj-redis-1 again after 2.0 s") for line in lines)
    # the JSON summary on disk (directory created)
    on_disk = json.loads(summary_path.read_text())
    assert on_disk["kills"] == {"redis": 3} and len(on_disk["events"]) == 3
    assert on_disk["started_at"] == 1000 and on_disk["ended_at"] >= 1023


def test_client_exiting_mid_downtime_still_starts_the_target_again():
    clock = Clock()
    cs = cluster()
    clock.at.append((clock.now + 6.0, lambda: cs["client"].finish(3)))  # during the downtime
    monkey, _ = make(cs, clock, interval=5, downtime=2)
    summary = monkey.run()
    assert summary["total_kills"] == 1
    assert summary["client_exit_code"] == 3
    assert cs["redis"].status == "running"


def test_random_worker_targets_only_running_workers_of_its_own_project():
    clock = Clock()
    cs = cluster(workers=3)
    cs["worker2"].status = "exited"  # crashed earlier: not a candidate
    stranger = FakeContainer("other-worker-1", "worker", project="other")
    monkey, _ = make(cs, clock, others=[stranger], interval=1, downtime=0.5,
                     targets=("worker",), max_kills=6)
    summary = monkey.run()
    assert summary["kills"] == {"worker": 6}
    assert summary["stopped_because"] == "max kills (6)"
    victims = {e["container"] for e in summary["events"]}
    assert victims <= {"proj-worker-1", "proj-worker-3"}
    assert stranger.calls == [] and cs["worker2"].calls == [] and cs["redis"].calls == []
    filters = monkey.docker.containers.list_calls[0]["filters"]["label"]
    assert f"{PROJECT_LABEL}=proj" in filters


def test_mixed_targets_count_kills_by_target():
    clock = Clock()
    cs = cluster()
    monkey, _ = make(cs, clock, interval=1, downtime=0.1, targets=("redis", "worker"),
                     max_kills=20)
    summary = monkey.run()
    assert summary["total_kills"] == 20
    assert set(summary["kills"]) == {"redis", "worker"}
    assert summary["kills"]["redis"] > 0 and summary["kills"]["worker"] > 0
    assert sum(summary["kills"].values()) == 20
    assert all(c.status == "running" for k, c in cs.items() if k != "client")


def test_duration_limit_and_no_client_container_yet():
    clock = Clock()
    cs = cluster()
    del cs["client"]  # not created yet: keep going until the duration is up
    monkey, _ = make(cs, clock, interval=4, downtime=1, duration=20)
    summary = monkey.run()
    assert summary["stopped_because"] == "duration (20 s)"
    assert summary["total_kills"] == 4  # at 4, 9, 14, 19
    assert summary["client_exit_code"] is None


def test_client_removed_after_it_was_seen_counts_as_exited():
    """`docker compose run --rm client`: the container disappears when it is done."""
    clock = Clock()
    cs = cluster()
    docker_cs = [*cs.values()]
    monkey, _ = make(cs, clock, interval=5, downtime=1)
    monkey.docker = FakeDocker(docker_cs)
    clock.at.append((clock.now + 8, lambda: docker_cs.remove(cs["client"])))
    summary = monkey.run()
    assert summary["stopped_because"] == "client exited"
    assert summary["total_kills"] == 1


def test_no_running_target_is_skipped_not_fatal():
    clock = Clock()
    cs = cluster()
    cs["redis"].status = "exited"
    monkey, lines = make(cs, clock, interval=1, downtime=1, duration=3.5)
    summary = monkey.run()
    assert summary["total_kills"] == 0
    assert any("no running redis container to kill" in line for line in lines)


def test_interrupted_during_downtime_starts_the_target_again(tmp_path):
    clock = Clock()
    cs = cluster()

    def interrupt():
        raise KeyboardInterrupt  # what SIGTERM becomes (docker stop / compose down)
    clock.at.append((clock.now + 6.0, interrupt))
    path = tmp_path / "chaos.json"
    monkey, _ = make(cs, clock, interval=5, downtime=2, summary=str(path))
    summary = monkey.run()
    assert summary["stopped_because"] == "interrupted"
    assert cs["redis"].status == "running"
    assert summary["events"][0]["started_at"] is not None
    assert json.loads(path.read_text())["total_kills"] == 1


def test_failing_start_is_retried_and_reported():
    clock = Clock()
    cs = cluster()
    cs["redis"].fail_start = 2
    monkey, _ = make(cs, clock, interval=5, downtime=2, max_kills=1)
    summary = monkey.run()
    assert cs["redis"].status == "running"
    assert cs["redis"].calls.count("start") == 3
    assert len(summary["errors"]) == 2 and "could not start" in summary["errors"][0]


def test_unwritable_summary_is_logged_not_fatal(tmp_path):
    clock = Clock()
    cs = cluster()
    cs["client"].finish(0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkey, lines = make(cs, clock, summary=str(blocker / "chaos.json"))
    summary = monkey.run()
    assert summary["total_kills"] == 0
    assert any("could not write the summary" in line for line in lines)


# -- configuration ------------------------------------------------------------------------------

def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["chaos", *argv])


def test_own_project_from_env_then_from_own_labels():
    me = FakeContainer("abc123", "chaos", project="fromlabels")
    docker = FakeDocker([me])
    assert own_project(docker, {"COMPOSE_PROJECT_NAME": "fromenv"}, ids=[me.id]) == "fromenv"
    assert own_project(docker, {}, ids=["not-a-container", me.id]) == "fromlabels"
    assert own_project(docker, {}, ids=["nope"]) is None


def test_flags_win_over_env_which_wins_over_defaults():
    docker = FakeDocker([])
    env = {"CHAOS_INTERVAL": "7.5", "CHAOS_DOWNTIME": "1", "CHAOS_TARGETS": "redis, worker",
           "CHAOS_MAX_KILLS": "4", "COMPOSE_PROJECT_NAME": "envproj", "CHAOS_SEED": "9"}
    c = config_from(parse(), env, docker)
    assert (c.project, c.interval, c.downtime, c.targets, c.max_kills, c.seed) == (
        "envproj", 7.5, 1.0, ("redis", "worker"), 4, 9)
    assert c.summary == "/results/chaos.json"
    c = config_from(parse("--interval", "3", "--targets", "worker", "--project", "p",
                          "--summary", ""), env, docker)
    assert (c.project, c.interval, c.targets, c.summary) == ("p", 3.0, ("worker",), None)
    c = config_from(parse("--project", "p"), {}, docker)
    assert (c.interval, c.downtime, c.targets, c.max_kills, c.duration) == (
        5.0, 2.0, ("redis",), 0, 0.0)


@pytest.mark.parametrize("argv, env, message", [
    ([], {"COMPOSE_PROJECT_NAME": "p", "CHAOS_TARGETS": "redis,client"}, "targets"),
    ([], {"COMPOSE_PROJECT_NAME": "p", "CHAOS_INTERVAL": "soon"}, "not a number"),
    (["--interval", "0", "--project", "p"], {}, "> 0"),
    (["--downtime", "-1", "--project", "p"], {}, ">= 0"),
    ([], {}, "compose project"),
])
def test_bad_configuration_is_a_usage_error(argv, env, message):
    with pytest.raises(UsageError, match=message):
        config_from(parse(*argv), env, FakeDocker([]))


def test_cli_registers_chaos_without_importing_docker(capsys):
    code = ("import sys, wordcount.cli as c; p = c.build_parser(); "
            "p.parse_args(['chaos', '--project', 'x']); assert 'docker' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(SystemExit) as e:
        main(["chaos", "--help"])
    assert e.value.code == 0
    assert "CHAOS_INTERVAL" in capsys.readouterr().out


def test_cli_without_the_docker_sdk_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker -> ImportError
    assert main(["chaos", "--project", "p"]) == 2
    assert "wordcount[chaos]" in capsys.readouterr().err


def test_cli_runs_the_monkey_with_a_docker_client(monkeypatch, tmp_path):
    cs = cluster()
    cs["client"].finish(0)
    fake = FakeDocker(list(cs.values()))
    fake.ping = lambda: True

    class FakeSDK:
        @staticmethod
        def from_env():
            return fake
    monkeypatch.setitem(sys.modules, "docker", FakeSDK)
    monkeypatch.setattr(chaos_mod.signal, "signal", lambda *a: None)
    out = tmp_path / "c.json"
    assert main(["chaos", "--project", "proj", "--summary", str(out)]) == 0
    assert json.loads(out.read_text())["stopped_because"] == "client exited"


# -- RedisRaft targets and modes ------------------------------------------------------------------

def raft_cluster(project: str = "proj") -> dict[str, FakeContainer]:
    """compose.raft.yml's containers: three nodes, the finished one-shot init, a worker, the
    client."""
    cs = {f"raft{i}": FakeContainer(f"{project}-raft{i}-1", f"raft{i}", project)
          for i in (1, 2, 3)}
    cs["init"] = FakeContainer(f"{project}-raft-init-1", "raft-init", project, status="exited")
    cs["worker"] = FakeContainer(f"{project}-worker-1", "worker", project)
    cs["client"] = FakeContainer(f"{project}-client-1", "client", project)
    return cs


def nodes(cs: dict[str, FakeContainer]) -> list[FakeContainer]:
    return [cs[f"raft{i}"] for i in (1, 2, 3)]


def max_down_at_once(events: list[dict]) -> int:
    """The most containers that were down at the same moment, from the summary's events."""
    edges = sorted([(e["killed_at"], 1) for e in events]
                   + [(e["started_at"], -1) for e in events if e["started_at"] is not None],
                   key=lambda edge: (edge[0], edge[1]))
    down = most = 0
    for _, step in edges:
        down += step
        most = max(most, down)
    return most


def test_raft_target_kills_one_random_node_at_a_time():
    clock = Clock()
    cs = raft_cluster()
    clock.at.append((clock.now + 41.0, lambda: cs["client"].finish(0)))
    stranger = FakeContainer("other-raft1-1", "raft1", project="other")
    monkey, lines = make(cs, clock, others=[stranger], interval=5, downtime=2,
                         targets=("raft",))
    summary = monkey.run()
    assert summary["mode"] == "kill"
    assert summary["kills"] == {"raft": 6}  # at 5, 12, 19, 26, 33, 40
    victims = [e["container"] for e in summary["events"]]
    assert set(victims) <= {c.name for c in nodes(cs)} and len(set(victims)) > 1
    assert max_down_at_once(summary["events"]) == 1  # a majority always up
    assert all(c.status == "running" for c in nodes(cs))
    assert cs["init"].calls == [] and cs["worker"].calls == [] and stranger.calls == []
    assert any("killed raft proj-raft" in line for line in lines)


def test_one_down_keeps_one_node_down_until_the_client_exits(tmp_path):
    clock = Clock()
    cs = raft_cluster()
    clock.at.append((clock.now + 60.0, lambda: cs["client"].finish(0)))
    path = tmp_path / "chaos.json"
    monkey, lines = make(cs, clock, interval=5, downtime=2, targets=("raft",),
                         mode="one-down", summary=str(path))
    seen_down = []
    clock.at.append((clock.now + 30.0, lambda: seen_down.append(
        [c.name for c in nodes(cs) if c.status != "running"])))
    summary = monkey.run()
    assert summary["total_kills"] == 1 and summary["stopped_because"] == "client exited"
    (event,) = summary["events"]
    assert event["killed_at"] == 1005 and 55 <= event["down_s"] <= 56
    assert seen_down == [[event["container"]]], "down for the whole job"
    assert all(c.status == "running" for c in nodes(cs)), "started again at the end"
    assert json.loads(path.read_text())["mode"] == "one-down"
    assert any("one raft container goes down until the client exits" in line for line in lines)


def test_one_down_waits_until_a_node_is_running():
    clock = Clock()
    cs = raft_cluster()
    for c in nodes(cs):
        c.status = "created"  # compose has not started them yet

    def boot():
        for c in nodes(cs):
            c.status = "running"
    clock.at.append((clock.now + 12.0, boot))
    clock.at.append((clock.now + 40.0, lambda: cs["client"].finish(0)))
    monkey, lines = make(cs, clock, interval=5, targets=("raft",), mode="one-down")
    summary = monkey.run()
    assert summary["total_kills"] == 1
    assert summary["events"][0]["killed_at"] == 1015  # the first strike after the boot
    assert sum("no running raft container" in line for line in lines) == 2


def test_one_down_interrupted_starts_the_node_again():
    clock = Clock()
    cs = raft_cluster()

    def interrupt():
        raise KeyboardInterrupt
    clock.at.append((clock.now + 20.0, interrupt))
    monkey, _ = make(cs, clock, interval=5, targets=("raft",), mode="one-down")
    summary = monkey.run()
    assert summary["stopped_because"] == "interrupted"
    assert summary["total_kills"] == 1 and summary["events"][0]["started_at"] is not None
    assert all(c.status == "running" for c in nodes(cs))


def test_majority_down_kills_two_of_three_then_starts_both():
    clock = Clock()
    cs = raft_cluster()
    monkey, lines = make(cs, clock, interval=5, downtime=3, targets=("raft",),
                         mode="majority-down", max_kills=4)
    down_during = []
    clock.at.append((clock.now + 6.0, lambda: down_during.append(
        sum(c.status != "running" for c in nodes(cs)))))
    summary = monkey.run()
    assert summary["stopped_because"] == "max kills (4)"
    events = summary["events"]
    assert [e["killed_at"] - 1000 for e in events] == [5, 5, 13, 13]  # 5 up, 3 down, 5 up
    assert events[0]["container"] != events[1]["container"]
    assert events[2]["container"] != events[3]["container"]
    assert all(e["down_s"] == 3 for e in events)
    assert down_during == [2] and max_down_at_once(events) == 2
    assert all(c.status == "running" for c in nodes(cs))
    assert any("killing a majority of the raft containers" in line for line in lines)


def test_majority_down_counts_a_node_that_is_already_down():
    clock = Clock()
    cs = raft_cluster()
    cs["raft2"].status = "exited"  # crashed on its own: one more kill loses the quorum
    monkey, _ = make(cs, clock, interval=5, downtime=1, targets=("raft",),
                     mode="majority-down", max_kills=1)
    summary = monkey.run()
    (event,) = summary["events"]
    assert event["container"] in {"proj-raft1-1", "proj-raft3-1"}
    assert cs["raft2"].calls == []


def test_mode_and_raft_target_configuration():
    docker = FakeDocker([])
    c = config_from(parse("--project", "p", "--targets", "raft"),
                    {"CHAOS_MODE": "Majority-Down"}, docker)
    assert (c.mode, c.targets) == ("majority-down", ("raft",))
    c = config_from(parse("--project", "p", "--mode", "one-down"), {"CHAOS_MODE": "kill"},
                    docker)
    assert c.mode == "one-down"
    assert config_from(parse("--project", "p"), {}, docker).mode == "kill"
    with pytest.raises(UsageError, match="chaos mode"):
        config_from(parse("--project", "p"), {"CHAOS_MODE": "all-down"}, docker)
    with pytest.raises(SystemExit):
        parse("--mode", "nope")


# -- wordcount.lab.clusterjob: make chaos's verdict and the compose client's report --------------

def _verdict_dirs(tmp_path, kills_at):
    import json as _json

    from wordcount import report
    from wordcount.engines import count_inputs

    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    results.mkdir()
    (data / "a.txt").write_text("the cat the dog\nthe end\n")
    report.write_counts(count_inputs([str(data)]).counts, str(results / "counts.tsv"))
    (results / "result.json").write_text(_json.dumps({"seconds": 10.0}))
    events = [{"target": "redis", "killed_at": t} for t in kills_at]
    (results / "chaos.json").write_text(_json.dumps({"ended_at": 100.0, "events": events}))
    return data, results


def test_verdict_passes_only_exact_counts_with_kills_mid_job(tmp_path):
    import io

    from wordcount.lab.clusterjob import verdict

    data, results = _verdict_dirs(tmp_path, [85.0, 95.0, 99.0])  # one before the job started
    out = io.StringIO()
    assert verdict(0, data, results, out) == 0
    assert out.getvalue().splitlines()[-1] == "PASS: exact counts after 2 Redis kills"
    out = io.StringIO()
    assert verdict(3, data, results, out) == 1 and "status 3" in out.getvalue()
    (results / "counts.tsv").write_text("the\t3\ncat\t1\n")  # a wrong table
    out = io.StringIO()
    assert verdict(0, data, results, out) == 1 and "differs" in out.getvalue()


def test_verdict_fails_without_kills_during_the_job(tmp_path):
    import io

    from wordcount.lab.clusterjob import verdict

    data, results = _verdict_dirs(tmp_path, [80.0])
    out = io.StringIO()
    assert verdict(0, data, results, out) == 1
    assert "no container was killed" in out.getvalue()


def test_client_report_is_report_py_text_and_says_what_next(tmp_path):
    import io
    from collections import Counter

    from wordcount.lab.clusterjob import next_steps, print_report

    counts = Counter({"the": 3, "cat": 1, "dog": 1, "end": 1})
    doc = {"top": [["the", 3], ["cat", 1]], "distinct": 4, "files": 1, "bytes": 24,
           "seconds": 0.5, "errors": [], "tasks": 1, "stolen": 0, "backups": 0,
           "duplicates": 0, "dead": 0, "resubmits": 0}
    out = io.StringIO()
    print_report(doc, counts, 0, 2, out)
    next_steps({"WORDCOUNT_RESULTS_HOST": "/r", "WORDCOUNT_DATA_HOST": "/d",
                "REDIS_URL": "redis://redis:6379/0"}, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "top 2 of 4 distinct words:"
    assert lines[1].split() == ["the", "3"] and lines[2].split() == ["cat", "1"]
    assert lines[3].startswith("-- 6 words, 4 distinct, 1 files, 24 bytes")
    assert "complete: every task counted exactly once" in out.getvalue()
    assert "/r/counts.tsv" in lines[-3] and "make up" in lines[-2] and "make down" in lines[-1]
    # in the compose clusters the client's environment names the dashboard: the job's page
    out = io.StringIO()
    next_steps({"WORDCOUNT_DASHBOARD_URL": "http://127.0.0.1:8077/"}, out, "sample-job")
    assert ("-- dashboard: http://127.0.0.1:8077/#job=sample-job (its timeline; while the "
            "cluster runs, or after `make start`)") in out.getvalue().splitlines()


def test_partition_cuts_the_raft_leader_off_and_connects_it_again_with_its_aliases():
    clock = Clock()
    nodes = {f"raft{i}": FakeContainer(f"proj-raft{i}-1", f"raft{i}") for i in (1, 2, 3)}
    nodes["raft2"].leader = True
    for n in nodes.values():
        n.networks = {"proj_default": [n.labels[SERVICE_LABEL], n.name, n.id[:12]]}
    worker = FakeContainer("proj-worker-1", "worker")
    worker.networks = {"proj_default": ["worker", "proj-worker-1"]}
    client = FakeContainer("proj-client-1", "client")
    clock.at.append((1_015.0, lambda: client.finish(0)))
    monkey, lines = make({**nodes, "worker": worker, "client": client}, clock,
                         targets=("raft",), mode="partition", interval=5, downtime=2)
    summary = monkey.run()
    assert summary["total_kills"] == 2 and summary["mode"] == "partition"
    assert {e["action"] for e in summary["events"]} == {"partition"}
    assert {e["container"] for e in summary["events"]} == {"proj-raft2-1"}  # the leader
    log = monkey.docker.networks.log
    assert log[:2] == ["disconnect proj-raft2-1 proj_default",
                       "connect proj-raft2-1 proj_default ['proj-raft2-1', 'raft2']"]
    assert all(c.status == "running" for c in nodes.values())  # never killed
    assert any("(the leader)" in line for line in lines)


def test_pause_freezes_a_worker_and_unpauses_it_even_when_stopped_early():
    clock = Clock()
    cs = cluster(workers=1)
    clock.at.append((1_006.0, lambda: cs["client"].finish(0)))
    monkey, _ = make(cs, clock, targets=("worker",), mode="pause", interval=5, downtime=30)
    summary = monkey.run()
    assert [e["action"] for e in summary["events"]] == ["pause"]
    assert cs["worker1"].calls == ["pause", "unpause"]
    assert cs["worker1"].status == "running"


def test_verdict_names_partitions(tmp_path):
    from wordcount.lab import clusterjob

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("one two two\n")
    results = tmp_path / "results"
    results.mkdir()
    (results / "counts.tsv").write_text("two\t2\none\t1\n")
    (results / "result.json").write_text(json.dumps({"seconds": 10}))
    (results / "chaos.json").write_text(json.dumps({
        "ended_at": 1010, "mode": "partition",
        "events": [{"target": "raft", "killed_at": 1005, "action": "partition"}]}))
    import io

    out = io.StringIO()
    assert clusterjob.verdict(0, data, results, out) == 0
    assert "PASS: exact counts after 1 partitions during the job (raft 1)" in out.getvalue()


def test_client_report_of_another_app_shows_its_top_from_the_json():
    """APP=index make up: the client's report prints the index's rows (words by documents)."""
    import io

    from wordcount.lab.clusterjob import next_steps, print_report

    doc = {"app": "index", "top": [["cat", 2, 2], ["big", 1, 1]], "total": 4, "distinct": 3,
           "files": 2, "bytes": 16, "seconds": 0.5, "errors": [], "tasks": 1, "stolen": 0,
           "backups": 0, "duplicates": 0, "dead": 0, "resubmits": 0}
    out = io.StringIO()
    print_report(doc, None, 0, 2, out)
    next_steps({"APP": "index"}, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "top 2 of 3 distinct words (index):"
    assert lines[1].split() == ["cat", "2", "documents", "2"]
    assert lines[3].startswith("-- 4 words, 2 files, 16 bytes")
    assert "counts.tsv (index)" in out.getvalue()


# -- the shared event feed: what the monkey did, recorded in Redis for the dashboard ----------

class Recorder:
    """Stands in for Redis's wc_event: refuses while ``down`` (Redis killed, paused, cut off),
    else keeps (text, at ms)."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.kept: list[tuple[str, int]] = []

    def __call__(self, text: str, at_ms: int) -> bool:
        self.calls += 1
        if self.down:
            return False
        self.kept.append((text, at_ms))
        return True


def test_each_strike_goes_into_the_event_feed_at_its_own_time():
    """Kills, and a node held down (one-down), are noted in the feed at the moment each began,
    with what was done and for how long; the feed records them in order."""
    clock = Clock()
    cs = cluster()
    clock.at.append((clock.now + 16.0, lambda: cs["client"].finish(0)))
    recorder = Recorder()
    feed = chaos_mod.Feed(recorder, retry_s=0.01)
    monkey, _ = make(cs, clock, interval=5, downtime=2)
    monkey.feed = feed
    summary = monkey.run()
    assert summary["total_kills"] == 2 and summary["errors"] == []
    assert recorder.kept == [
        ("killed redis proj-redis-1 (#1), started again after 2.0 s", 1_005_000),
        ("killed redis proj-redis-1 (#2), started again after 2.0 s", 1_012_000)]
    clock2 = Clock()
    rs = raft_cluster()
    clock2.at.append((clock2.now + 20.0, lambda: rs["client"].finish(0)))
    held = Recorder()
    monkey, _ = make(rs, clock2, interval=5, downtime=2, targets=("raft",), mode="one-down")
    monkey.feed = chaos_mod.Feed(held, retry_s=0.01)
    (event,) = monkey.run()["events"]
    assert [t for t, _ in held.kept] == [
        f"killed raft {event['container']} (#1): down until the client exits",
        f"killed raft {event['container']} (#1), started again after 15.0 s"]


def test_the_feed_waits_for_redis_and_never_holds_up_a_strike():
    """Redis down: notes wait, in order, while the caller goes on at once; Redis back: every
    one is recorded, the oldest first. At close, what could not be recorded in the grace
    time is counted (the monkey reports it as an error), never waited for forever."""
    recorder = Recorder()
    recorder.down = True
    feed = chaos_mod.Feed(recorder, retry_s=0.01)
    started = time.monotonic()
    for i in range(3):
        feed.note(f"kill {i}", 100.0 + i)
    assert time.monotonic() - started < 0.5  # (noting never calls Redis itself)
    deadline = time.monotonic() + 5
    while recorder.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.calls >= 3 and recorder.kept == []  # retried, not dropped
    recorder.down = False
    assert feed.close(grace=5) == 0
    assert recorder.kept == [("kill 0", 100_000), ("kill 1", 101_000), ("kill 2", 102_000)]
    stuck = Recorder()
    stuck.down = True
    feed = chaos_mod.Feed(stuck, retry_s=0.01)
    feed.note("never", 1.0)
    assert feed.close(grace=0.2) == 1 and stuck.kept == []


def test_the_cli_records_into_redis_only_when_told_where():
    """Without REDIS_URL the monkey records nothing (no Feed); with it, a Feed as the
    environment's user (the compose files: chaos)."""
    assert chaos_mod.feed_from({}) is None
    feed = chaos_mod.feed_from({"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_USERNAME": "chaos",
                                "REDIS_PASSWORD": "x"})
    try:
        assert isinstance(feed, chaos_mod.Feed)
        feed.note("unreachable", 1.0)
    finally:
        assert feed.close(grace=0.3) == 1  # (nothing listens there: left, counted)
