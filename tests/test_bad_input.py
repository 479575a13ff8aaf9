"""Bad input and faults, as a user meets them: every one is one clear line on stderr with its
documented exit code, never a traceback, and leaves nothing behind. A property test sweeps every
option of every command with random bad values."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wordcount import planner
from wordcount.argtypes import parse_size
from wordcount.cli import main
from wordcount.embedded import LocalCluster, free_port
from wordcount.engines import count_task
from wordcount.exceptions import (
    EXIT_INPUT_ERRORS,
    EXIT_OK,
    EXIT_REDIS,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from wordcount.lab.clirun import wc as run_wc
from wordcount.report import TEXT_WORD_MAX
from wordcount.words import count_bytes, reference_counts

# the exit codes a command may end with on bad input (1, "unexpected error", is a bug here)
DOCUMENTED = {EXIT_OK, EXIT_USAGE, EXIT_INPUT_ERRORS, EXIT_REDIS, EXIT_TIMEOUT}


def wc(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
       cwd: str | None = None) -> subprocess.CompletedProcess:
    return run_wc(*args, env=env, timeout=timeout, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("wordcount"), proc.stderr
    for needle in needles:
        assert needle in last, proc.stderr


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "a.txt"
    path.write_text("b a b c b a\n")
    return path


@pytest.fixture
def dead_redis(monkeypatch) -> str:
    """A Redis URL on loopback where nothing listens (and a password, so that is not the
    error)."""
    monkeypatch.setenv("REDIS_PASSWORD", "x")
    return f"redis://127.0.0.1:{free_port()}/0"


# -- usage errors: one line, exit 2, before any work ---------------------------------------------

BAD_VALUES = [
    ("--chunk-size", "0", "at least 1 byte"), ("--chunk-size", "-1K", "invalid size"),
    ("--top", "-1", "at least 0"), ("--top", "x", "not an integer"),
]
RUN_BAD = [
    ("--timeout", "0", "greater than 0"), ("--timeout", "-1", "greater than 0"),
    ("--timeout", "nan", "greater than 0"), ("--workers", "0", "at least 1"),
    ("--workers", "100000", "at most 1024"), ("--crash-prob", "2", "at most 1"),
    ("--crash-prob", "-0.1", "at least 0"), ("--crash-prob", "nan", "at most 1"),
    ("--stall-prob", "1.5", "at most 1"), ("--stall-max", "-1", "at least 0"),
    ("--slowdown", "0.5", "at least 1"), ("--slowdown", "inf", "at least 1"),
    ("--speculate-factor", "-1", "at least 0"), ("--claim-timeout", "5", "at least 10"),
    ("--max-attempts", "0", "at least 1"), ("--commit-pairs", "0", "at least 1"),
    ("--stragglers", "-1", "at least 0"),
]


@pytest.mark.parametrize("option,value,message", BAD_VALUES + [
    ("--workers", "0", "at least 1"), ("--workers", "2000", "at most 1024")])
def test_count_refuses_bad_values(text_file, option, value, message):
    proc = wc("count", str(text_file), f"{option}={value}")
    assert_one_line_error(proc, EXIT_USAGE, option, message)


@pytest.mark.parametrize("option,value,message", BAD_VALUES + [
    ("--timeout", "0", "greater than 0"), ("--timeout", "-1", "greater than 0")])
def test_submit_refuses_bad_values(text_file, dead_redis, option, value, message):
    proc = wc("submit", str(text_file), "--redis-url", dead_redis, f"{option}={value}")
    assert_one_line_error(proc, EXIT_USAGE, option, message)


@pytest.mark.parametrize("option,value,message", BAD_VALUES + RUN_BAD)
def test_run_refuses_bad_values(text_file, tmp_path, option, value, message):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = wc("run", str(text_file), f"{option}={value}", env={"TMPDIR": str(tmpdir)})
    assert_one_line_error(proc, EXIT_USAGE, option, message)
    assert list(tmpdir.iterdir()) == []  # nothing was started


def test_more_stragglers_than_workers(text_file):
    proc = wc("run", str(text_file), "--workers", "2", "--stragglers", "3")
    assert_one_line_error(proc, EXIT_USAGE, "--stragglers 3 is more than --workers 2")


@pytest.mark.parametrize("value,message", [("2", "at most 1"), ("x", "not a number")])
def test_worker_refuses_bad_fault_values(dead_redis, value, message):
    proc = wc("worker", "--redis-url", dead_redis, "--crash-at", "any", "--crash-prob", value)
    assert_one_line_error(proc, EXIT_USAGE, "--crash-prob", message)


@pytest.mark.parametrize("command", ["count", "submit", "run"])
def test_counts_out_into_a_missing_directory_is_refused_before_counting(
        tmp_path, text_file, dead_redis, command):
    missing = tmp_path / "no" / "such" / "counts.tsv"
    extra = ["--redis-url", dead_redis] if command == "submit" else []
    started = time.monotonic()
    proc = wc(command, str(text_file), "--counts-out", str(missing), *extra)
    # submit would otherwise have retried the dead Redis: refused before anything else
    assert time.monotonic() - started < 20
    assert_one_line_error(proc, EXIT_USAGE, "--counts-out", "no such directory")
    assert not missing.parent.exists()


def test_outputs_are_checked_before_any_work(tmp_path, text_file, monkeypatch, capsys):
    """No counting, no Redis, no cluster before the outputs are known to be writable."""
    from wordcount import client, embedded, engines

    def must_not_run(*_a, **_k):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(engines, "count_inputs", must_not_run)
    monkeypatch.setattr(client, "plan_job", must_not_run)
    monkeypatch.setattr(embedded, "RedisServer", must_not_run)
    monkeypatch.setenv("REDIS_PASSWORD", "x")
    a_dir = str(tmp_path)
    for argv in (["count", str(text_file), "--counts-out", a_dir],
                 ["submit", str(text_file), "--counts-out", a_dir],
                 ["run", str(text_file), "--counts-out", a_dir],
                 ["run", str(text_file), "--worker-log", str(tmp_path / "x" / "w.log")]):
        assert main(argv) == EXIT_USAGE, argv
    err = capsys.readouterr().err
    assert err.count("is a directory") == 3 and "no such directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no probe left


def test_counts_out_that_fails_after_counting_still_shows_the_result(tmp_path, text_file,
                                                                     monkeypatch, capsys):
    from wordcount import report

    real = report.write_counts

    def disk_full(counts, path):
        real(counts, str(tmp_path / "full" / "x"))  # ENOENT here stands for ENOSPC

    monkeypatch.setattr(report, "write_counts", disk_full)
    assert main(["count", str(text_file), "--counts-out", str(tmp_path / "c.tsv")]) == 1
    captured = capsys.readouterr()
    assert "6 words, 3 distinct" in captured.out
    assert captured.err.strip().splitlines()[-1].startswith("wordcount: error: cannot write the "
                                                            "counts to")


def test_counts_out_to_a_device_is_written_in_place(text_file, tmp_path):
    """--counts-out /dev/stdout writes there; it never replaces the device node."""
    proc = wc("count", str(text_file), "--top", "0", "--counts-out", "/dev/stdout")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("b\t3\na\t2\nc\t1\n")
    assert os.path.islink("/dev/stdout")
    with open(tmp_path / "out.txt", "w") as out:  # stdout a regular file: still not replaced
        proc = run_wc("count", str(text_file), "--top", "0", "--counts-out", "/dev/stdout",
                      stdout=out, stderr=None, timeout=60)  # stderr: not captured
    assert proc.returncode == 0
    assert os.path.islink("/dev/stdout")


def test_empty_directory_is_the_same_usage_error_everywhere(tmp_path, dead_redis):
    empty = tmp_path / "empty"
    empty.mkdir()
    procs = [wc("count", str(empty)), wc("submit", str(empty), "--redis-url", dead_redis),
             wc("run", str(empty))]
    for proc in procs:
        assert_one_line_error(proc, EXIT_USAGE, "nothing to count: no file in")
    assert len({p.stderr.strip().splitlines()[-1] for p in procs}) == 1


def test_bad_redis_urls_are_usage_errors(text_file, monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", "x")
    for url, message in [("http://127.0.0.1:1/0", "not a Redis URL"),
                         ("redis://[127.0.0.1", "bad Redis URL"),
                         ("redis://127.0.0.1:99999/0", "a port must be 1-65535"),
                         ("redis://127.0.0.1:x/0", "bad Redis node"),
                         ("redis://127.0.0.1:6379/zero", "bad Redis database")]:
        proc = wc("submit", str(text_file), "--redis-url", url, timeout=30)
        assert_one_line_error(proc, EXIT_USAGE, message)


def test_database_index_out_of_range(redis_server, text_file):
    """Redis has 16 databases by default: /99 is a usage error (the URL is wrong), one line."""
    env = {"REDIS_PASSWORD": redis_server.password}
    url = f"redis://127.0.0.1:{redis_server.port}/99"
    for argv in (["submit", str(text_file)], ["status"], ["worker", "--exit-when-idle"]):
        proc = wc(*argv, "--redis-url", url, env=env, timeout=60)
        assert_one_line_error(proc, EXIT_USAGE, "DB index is out of range", "/DB")


# -- --timeout: one deadline for the whole command ------------------------------------------------

def test_timeout_bounds_the_wait_for_an_unreachable_redis(text_file, dead_redis):
    started = time.monotonic()
    proc = wc("submit", str(text_file), "--redis-url", dead_redis, "--timeout", "3")
    elapsed = time.monotonic() - started
    assert_one_line_error(proc, EXIT_TIMEOUT, "no result within --timeout 3 s",
                          "unreachable")
    assert 2.5 < elapsed < 6, elapsed  # not retry_seconds (120 s)


def test_timeout_of_a_job_that_does_not_finish(redis_server, text_file):
    """No worker: the job cannot finish; exit 6 at the deadline, and the job stays submitted."""
    env = {**redis_server.env()}
    started = time.monotonic()
    proc = wc("submit", str(text_file), "--timeout", "2", env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert_one_line_error(proc, EXIT_TIMEOUT, "no result within --timeout 2 s",
                          "keeps running")
    assert elapsed < 6
    status = wc("status", "--json", env=env, timeout=60)
    assert json.loads(status.stdout)[0]["state"] == "running"


def test_run_timeout_stops_the_local_cluster(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"{i}.txt").write_bytes(b"alpha beta gamma\n" * 200_000)  # 3.4 MB each
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    started = time.monotonic()
    proc = wc("run", str(data), "--slowdown", "200", "--stragglers", "2", "--timeout", "2",
              env={"TMPDIR": str(tmpdir)}, timeout=60)
    assert_one_line_error(proc, EXIT_TIMEOUT, "no result within --timeout 2 s",
                          "the local cluster was stopped")
    assert time.monotonic() - started < 15
    assert list(tmpdir.iterdir()) == []


# -- --version, --quiet ---------------------------------------------------------------------------

def test_version():
    proc = wc("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"wordcount {metadata.version('wordcount')}"


def test_quiet_run_prints_the_result_and_no_progress(text_file):
    loud = wc("run", str(text_file))
    quiet = wc("run", str(text_file), "--quiet")
    assert loud.returncode == quiet.returncode == 0
    assert "tasks settled" in loud.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.splitlines()[:3] == loud.stdout.splitlines()[:3]
    assert quiet.stdout.splitlines()[0].split() == ["b", "3"]


def test_quiet_submit_prints_the_result_and_no_progress(redis_server, text_file, tmp_path):
    env = redis_server.env()
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        proc = wc("submit", str(text_file), "-q", env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[0].split() == ["b", "3"]
    assert "6 words, 3 distinct" in proc.stdout


# -- a very long word -----------------------------------------------------------------------------

def test_long_word_is_shortened_in_text_and_whole_in_tsv_and_json(tmp_path):
    word = "ab" * 100_000
    path = tmp_path / "long.txt"
    path.write_text(f"{word} end\n")
    tsv = tmp_path / "c.tsv"
    text = wc("count", str(path), "--counts-out", str(tsv))
    assert text.returncode == 0
    shown = f"{word[:TEXT_WORD_MAX]}…(200,000 chars)"
    assert [line.rsplit(None, 1) for line in text.stdout.splitlines()[:2]] == [
        [shown, "1"], ["end", "1"]]
    assert max(map(len, text.stdout.splitlines())) < 200
    assert tsv.read_text(encoding="utf-8") == f"{word}\t1\nend\t1\n"
    doc = json.loads(wc("count", str(path), "--json").stdout)
    assert doc["top"] == [[word, 1], ["end", 1]]


@given(st.lists(st.sampled_from([b"a", b"B", b"1", "\u03a3".encode(), "\u03c3".encode(), b"\xc3",
                                 b"\xa9", b"'", b".", b":", b"^", b"`", b",", b"-", b"_", b"!",
                                 b"\x00", b" ", "\u0130".encode()]), max_size=40),
       st.data())
def test_cut_bytes_never_change_the_count(pieces, data):
    """Cutting right after any CUT_BYTES byte: the two halves count exactly as the whole."""
    whole = b"".join(pieces)
    cuts = [i + 1 for i, b in enumerate(whole) if b in planner.CUT_BYTES]
    assume(cuts)
    i = data.draw(st.sampled_from(cuts))
    assert reference_counts(whole[:i]) + reference_counts(whole[i:]) == reference_counts(whole)


@pytest.mark.parametrize("separator", [b",", b"-", b"\xff", b"."])
def test_read_range_bounds_buffers_without_whitespace(tmp_path, separator):
    """A stretch with no whitespace is cut at punctuation; only a single word longer than the
    buffer makes one buffer longer, and it holds that word whole."""
    word = b"Ab" * 6000  # 12,000 bytes: longer than the 4 KiB buffer
    data = (b"x" + separator) * 5000 + word + b"," + (b"y" + separator) * 5000 + b" end"
    path = tmp_path / "nows.bin"
    path.write_bytes(data)
    buffers = list(planner.read_range(str(path), 0, len(data), buffer_size=4096))
    assert b"".join(buffers) == data
    long = [b for b in buffers if len(b) > 4096]
    if separator in planner.CUT_BYTES:
        assert long == [word + b","]
    else:  # "\xff" and "." are no cut: the whole stretch is one buffer (still exact)
        assert len(long) >= 1
    total = Counter()
    for b in buffers:
        total += count_bytes(b)
    assert total == reference_counts(data)
    task = planner.Task(str(path), 0, len(data))
    assert count_task(task, buffer_size=4096) == reference_counts(data)


def _peak_rss_mb(tmp_path: Path, argv: list[str]) -> float:
    code = ("import resource, sys\nfrom wordcount.cli import main\nrc = main(sys.argv[1:])\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1]) / 1024


def test_memory_of_a_50_mb_line_without_whitespace(tmp_path):
    """Punctuation-separated: bounded like ordinary text. One 30 MB word: held whole, a few
    times over (the README's figure), never a quadratic or per-block copy."""
    mb = 1 << 20
    (tmp_path / "text.txt").write_bytes(b"ab, " * (12 * mb))  # 48 MiB, ordinary text
    (tmp_path / "punct.txt").write_bytes(b"ab," * (16 * mb) + b"\n")  # 48 MiB, one line
    (tmp_path / "word.txt").write_bytes(b"Ab" * (15 * mb) + b" end\n")  # a 30 MiB word
    text = _peak_rss_mb(tmp_path, ["count", "text.txt"])
    punct = _peak_rss_mb(tmp_path, ["count", "punct.txt"])
    word = _peak_rss_mb(tmp_path, ["count", "word.txt", "--top", "1"])
    assert punct < text + 40, (punct, text)  # was +500 MB: the line was read whole
    assert word < text + 8 * 30, (word, text)


def test_fifty_mb_word_is_counted_as_one_word(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"x" * (50 << 20) + b"\n")
    proc = wc("count", str(path), "--json", "--top", "0")
    assert proc.returncode == 0 and json.loads(proc.stdout)["total"] == 1


# -- the sweep: every option of every command, random bad values, in-process ---------------------

OPTIONS = {
    "count": ["--workers", "--chunk-size", "--top", "--counts-out", "--engine"],
    "submit": ["--chunk-size", "--top", "--counts-out", "--timeout", "--claim-timeout",
               "--max-attempts", "--commit-pairs", "--redis-url", "--data-root", "--job",
               "--queue", "--fingerprint"],
    "run": ["--workers", "--timeout", "--stragglers", "--crash-prob", "--stall-prob",
            "--stall-max", "--slowdown", "--speculate-factor", "--claim-timeout",
            "--max-attempts", "--commit-pairs", "--chunk-size", "--top", "--counts-out",
            "--worker-log", "--job", "--data-root", "--crash-at", "--commit", "--queue"],
    "worker": ["--claim-timeout", "--max-attempts", "--commit-pairs", "--crash-prob",
               "--stall-prob", "--stall-max", "--slowdown", "--speculate-factor",
               "--redis-url", "--data-root", "--crash-at", "--commit"],
    "status": ["--job", "--redis-url"],
    "jobs": ["--redis-url"],
    "result": ["--top", "--counts-out", "--redis-url"],
    "wait": ["--timeout", "--top", "--counts-out", "--redis-url"],
    "cancel": ["--redis-url"],
    "delete": ["--redis-url"],
    "requeue": ["--redis-url"],
    "workers": ["--redis-url"],
}
JOB_COMMANDS = ["result", "wait", "cancel", "delete", "requeue"]  # they take a job name
CORPUS_OPTIONS = ["--files", "--size", "--skew-size", "--seed"]
SPECIAL = ["", " ", "0", "-0", "-1", "nan", "-nan", "inf", "-inf", "1e999", "1e-999", "0x10",
           "1_000", "١٢", "1K", "-1K", "1.5", "0.5K", "1e3", "+5", "99999999999999999999999",
           "\0", "a\0b", "~", ".", "x" * 300, "é", "*", "**", "[", "-", "--"]


def _safe_text(text: str) -> bool:
    """Relative paths inside the sweep's directory only, and no URL of a real host."""
    lowered = text.strip().lower()
    return not (text.startswith("/") or ".." in text
                or lowered.startswith(("redis", "unix", "rediss")))


VALUES = st.one_of(st.sampled_from(SPECIAL), st.integers(-2**70, 2**70).map(str),
                   st.floats().map(repr), st.text(max_size=24).filter(_safe_text))


def _urls(port: int) -> list[str]:
    at = f"127.0.0.1:{port}"
    return ["redis://", "redis://[", "redis://[::1", f"redis://{at}/99", f"redis://{at}/x",
            f"redis://{at}/-1", "redis://127.0.0.1:0/0", "redis://127.0.0.1:99999/0",
            "redis://127.0.0.1:-1/0", f"rediss://{at}/0", "unix://", "unix:///nonexistent.sock",
            f"redis://:@{at}", f"redis://{at},{at}/0", f"redis://[::1]:{port}/0", "http://x",
            f"redis://user:pw@{at}/0", f"redis://{at}/0?db=x", "redis:///0"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A directory to run in (relative paths land there), a tiny input, a Redis URL where
    nothing listens, and no retrying: any value that passes the checks ends at once."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "in.txt").write_text("b a b c\n")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
        mp.setenv("REDIS_PASSWORD", "x")
        mp.setenv("WORDCOUNT_RETRY_SECONDS", "0")
        mp.delenv("WORDCOUNT_QUEUE", raising=False)
        yield root, port


def invoke(argv: list[str]) -> tuple[int, str]:
    """main(argv) in this process: its return code (argparse's SystemExit must be 2) and
    stderr. Any other exception escapes (and fails the test)."""
    out, err = io.StringIO(), io.StringIO()
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    handlers = {s: signal.getsignal(s) for s in stops}
    root = logging.getLogger()
    log_handlers, log_level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:
                assert e.code == EXIT_USAGE, (argv, e.code, err.getvalue())
                rc = EXIT_USAGE
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        root.handlers[:] = log_handlers
        root.setLevel(log_level)
    return rc, err.getvalue()


SWEEP = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@pytest.mark.parametrize("command,option", [(c, o) for c, opts in OPTIONS.items()
                                            for o in opts])
@SWEEP
@given(value=VALUES, url=st.integers(0, 100))
def test_sweep_every_option(sweep, command, option, value, url):
    root, port = sweep
    if option == "--redis-url" and url < 40:  # tricky URLs, all on loopback
        value = _urls(port)[url % len(_urls(port))]
    base = {"count": ["count", "in.txt"], "submit": ["submit", "in.txt"],
            "run": ["run", "no-such-input"], "worker": ["worker", "--exit-when-idle"],
            "status": ["status"], "jobs": ["jobs"], "workers": ["workers"],
            **{c: [c, "some-job"] for c in JOB_COMMANDS}}[command]
    rc, err = invoke([*base, f"{option}={value}"])
    assert rc in DOCUMENTED, (rc, err)
    assert "Traceback" not in err, err
    if rc != EXIT_OK:  # a message of ours or argparse's (a value may hold a newline)
        assert re.search(r"^wordcount[^\n]*: error: ", err, re.M), err
    left = [p for p in root.iterdir() if p.name != "in.txt"]
    assert not [p for p in left if ".tmp." in p.name]  # no probe, no half-written output
    assert rc == EXIT_OK or not left  # only a command that succeeded wrote an output
    for p in left:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


@pytest.mark.parametrize("command", JOB_COMMANDS)
@SWEEP
@given(name=VALUES)
def test_sweep_job_names(sweep, command, name):
    """Any job name: a usage error naming the rule, or (a valid name) Redis unreachable."""
    rc, err = invoke([command, "--", name])
    assert rc in (EXIT_USAGE, EXIT_REDIS), (rc, err)
    assert "Traceback" not in err and re.search(r"^wordcount[^\n]*: error: ", err, re.M), err


def _acceptable_corpus_value(option: str, value: str) -> bool:
    """Values corpus would act on (they could write a lot): the sweep sends only others."""
    try:
        if option == "--seed":
            int(value)
        elif option == "--files":
            return int(value) >= 0
        else:
            return parse_size(value) >= 0
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("option", CORPUS_OPTIONS)
@SWEEP
@given(value=VALUES)
def test_sweep_corpus_options(sweep, option, value):
    root, _ = sweep
    assume(not _acceptable_corpus_value(option, value))
    rc, err = invoke(["corpus", "out", "--files", "1", "--size", "10", f"{option}={value}"])
    assert rc == EXIT_USAGE and "Traceback" not in err, (rc, err)
    assert not (root / "out").exists()


@pytest.mark.parametrize("command,mode", [("submit", "atomic"), ("run", "atomic"),
                                          ("run", "per-word")])  # (per-word: no job's mode)
def test_reduces_without_the_shuffle_is_refused(text_file, dead_redis, command, mode):
    """`--reduces` names the shuffle's reduce tasks: beside a one-phase mode it is a usage
    error (exit 2, before anything runs), never silently a shuffle job or ignored."""
    extra = ["--redis-url", dead_redis] if command == "submit" else []
    proc = wc(command, str(text_file), "--commit", mode, "--reduces", "3", *extra)
    assert_one_line_error(proc, EXIT_USAGE, "--reduces", f"--commit {mode}")
