"""`wordcount run` stopped by a signal, as a supervisor (SIGTERM), a closed terminal (SIGHUP) or
Ctrl-C (SIGINT, to the whole process group) stops it: exit 128 + N with one line, every worker
logs why it stops, and nothing is left behind (no redis-server, no worker, no temp dir)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from wordcount.lab.clirun import wc_bg
from wordcount.lab.corpus import generate


@pytest.fixture(scope="module")
def slow_corpus(tmp_path_factory) -> Path:
    """8 x 4 MiB: at --slowdown 50 two workers need well over 10 s for it."""
    root = tmp_path_factory.mktemp("signals")
    generate(root, 8, 4 << 20, seed=11)
    return root


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from "state" on (comm may hold spaces)


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: pid -> its start time (a pid reused later differs)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[1] == str(pid) and fields[0] != "Z":
                kids[int(entry)] = fields[19]
    return kids


def alive(pid: int, started: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes_inside(directory: Path) -> list[int]:
    """Processes whose working directory is under ``directory`` (redis-server's is its dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == str(directory) or cwd.startswith(f"{directory}/"):
                found.append(int(entry))
    return found


def wait_for(what, timeout: float, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"wordcount run ended early ({proc.returncode}): "
                                 f"{proc.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError("timed out")



def reap(proc: subprocess.Popen, kids: dict[int, str]) -> None:
    """Whatever the test left running: the command's process group and its children."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid, start in kids.items():
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)

@pytest.mark.parametrize("signame,target", [
    ("SIGTERM", "pid"), ("SIGHUP", "pid"), ("SIGINT", "pid"),
    ("SIGINT", "group"),  # Ctrl-C: the terminal signals the whole foreground process group
    ("SIGHUP", "group"),  # the terminal closed
])
def test_run_stops_the_whole_local_cluster(slow_corpus, tmp_path, signame, target):
    signum = getattr(signal, signame)
    tmpdir = tmp_path / "tmp"  # TMPDIR of the run: its temp dirs land here, and must go
    tmpdir.mkdir()
    log = tmp_path / "workers.log"
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = wc_bg("run", str(slow_corpus), "--workers", "2", "--slowdown", "50",
                 "--stragglers", "2", "--worker-log", str(log), base_env=env,
                 start_new_session=True)  # its own process group, as a shell job has
    kids: dict[int, str] = {}
    try:
        # mid-job: Redis and both workers up, both workers ready and counting
        kids = wait_for(lambda: (k := children(proc.pid)) and len(k) == 3 and k, 60, proc)
        wait_for(lambda: log.exists() and log.read_text().count(" ready ") >= 2, 60, proc)
        time.sleep(1.0)
        assert proc.poll() is None, "the job finished before the signal: nothing tested"
        redis = [pid for pid in kids if cmdline(pid).startswith("/usr/bin/redis-server")
                 or "redis-server" in cmdline(pid).split(" ")[0]]
        assert len(redis) == 1, {pid: cmdline(pid) for pid in kids}
        assert processes_inside(tmpdir) == redis  # redis-server runs in the run's temp dir
        if target == "group":
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        reap(proc, kids)

    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"wordcount: stopped by {signame}; the local "
                                            "cluster is stopped")
    assert elapsed < 15, f"took {elapsed:.1f} s to stop"
    assert out == ""  # no result: the job was stopped
    # nothing left: no child process (the redis-server was in its own session), no temp dir
    assert [pid for pid, start in kids.items() if alive(pid, start)] == []
    assert processes_inside(tmpdir) == []
    assert list(tmpdir.iterdir()) == []
    # every worker logged the signal that stopped it
    text = log.read_text()
    assert "Traceback" not in text
    for pid in kids:
        if pid not in redis:
            assert f"-{pid}-" in text and any(
                f"-{pid}-" in line and " received" in line for line in text.splitlines()), text


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_count_with_the_processes_engine_stops_its_pool(tmp_path, signame):
    """The processes engine's workers are forked children too: stopped with the command (the
    pool's own shutdown would count every task left first, or leave them behind)."""
    signum = getattr(signal, signame)
    big = tmp_path / "big.txt"
    big.write_bytes(b"alpha beta gamma delta epsilon\n" * (8 << 20))  # 248 MiB: a few seconds
    proc = wc_bg("count", str(big), "--engine", "processes", "--workers", "2",
                 "--chunk-size", "4M", start_new_session=True)
    kids: dict[int, str] = {}
    try:
        kids = wait_for(lambda: (k := children(proc.pid)) and len(k) == 2 and k, 60, proc)
        time.sleep(0.3)
        assert proc.poll() is None, "counted before the signal: nothing tested"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        reap(proc, kids)
        big.unlink()
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines() == [f"wordcount: stopped by {signame}; nothing was printed"]
    assert out == ""
    time.sleep(0.2)
    assert [pid for pid, start in kids.items() if alive(pid, start)] == []
