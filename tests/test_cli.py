from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wordcount.cli import main
from wordcount.exceptions import EXIT_INPUT_ERRORS, EXIT_USAGE
from wordcount.lab.clirun import wc as run_wc

from .conftest import tsv


def test_text_output_top_and_totals(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("b a b c b a\n")
    assert main(["count", str(tmp_path), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["b", "3"] and out[1].split() == ["a", "2"]
    assert "6 words, 3 distinct, 1 files" in out[2]


def test_json_and_counts_out(nasty_corpus, nasty_oracle, tmp_path, capsys):
    counts = tmp_path / "counts.tsv"
    rc = main(["count", str(nasty_corpus), "--json", "--top", "5", "--counts-out", str(counts),
               "--engine", "processes", "--workers", "2", "--chunk-size", "4K"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"top", "total", "distinct", "files", "bytes", "seconds", "errors"}
    ranked = sorted(nasty_oracle.items(), key=lambda kv: (-kv[1], kv[0]))
    assert doc["top"] == [list(kv) for kv in ranked[:5]]
    assert doc["total"] == sum(nasty_oracle.values())
    assert doc["distinct"] == len(nasty_oracle)
    assert doc["errors"] == []
    assert counts.read_text(encoding="utf-8") == tsv(nasty_oracle)


def test_no_input_matched_exits_2(tmp_path, capsys):
    assert main(["count", str(tmp_path / "missing"), str(tmp_path / "*.nothing")]) == EXIT_USAGE
    assert "no input matched" in capsys.readouterr().err


def test_missing_input_among_good_exits_3(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("x y")
    rc = main(["count", str(tmp_path / "a.txt"), str(tmp_path / "gone.txt"), "--json"])
    assert rc == EXIT_INPUT_ERRORS
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["total"] == 2
    assert doc["errors"] == [{"path": str(tmp_path / "gone.txt"),
                              "error": "no such file, directory or match"}]
    assert "gone.txt" in captured.err


@pytest.mark.parametrize("argv", [["count"], ["count", "x", "--engine", "gpu"],
                                  ["count", "x", "--chunk-size", "lots"], ["frobnicate"],
                                  ["count", "x", "--chunk-size", "0"], ["count", "x", "--top=-1"],
                                  ["count", "x", "--workers", "0"], ["count", "x", "--top", "--"],
                                  ["submit", "x", "--timeout", "0"], ["run", "x", "--timeout=-1"],
                                  ["run", "x", "--crash-prob", "nan"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == EXIT_USAGE


def test_module_entry_point_and_corpus_command(tmp_path):
    data = tmp_path / "data"
    gen = run_wc("corpus", str(data), "--files", "3", "--size", "20K", "--skew-size", "50K",
                 timeout=None)
    assert gen.returncode == 0, gen.stderr
    assert sorted(p.stat().st_size for p in data.iterdir()) == [20480, 20480, 20480, 51200]
    out = run_wc("count", str(data), "--json", timeout=None)
    assert out.returncode == 0 and json.loads(out.stdout)["files"] == 4


def test_version_flag(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"wordcount {metadata.version('wordcount')}"


def test_text_output_shortens_very_long_words(tmp_path, capsys):
    word = "x" * 1000
    (tmp_path / "a.txt").write_text(f"{word} {word} y\n")
    assert main(["count", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.split() == ["x" * 60 + "…(1,000", "chars)", "2"]


# -- an operator's day: inspection commands against a wrong address --------------------------

def _wc(*args: str, env_extra: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    import os
    import time

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "WORDCOUNT_"))} | {"REDIS_PASSWORD": "x"}
    started = time.monotonic()
    proc = run_wc(*args, env=env_extra, base_env=env, timeout=120)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("command", [["jobs"], ["result", "j1"]])
def test_read_only_commands_fail_fast_on_a_wrong_address_and_say_why(command):
    """As a newcomer typed it: `wordcount jobs --redis-url redis://127.0.0.1:1/0` retried for
    2 min before exit 4. A read-only command now gives up after a few seconds, says how long a
    call retries (WORDCOUNT_RETRY_SECONDS) and takes --timeout (exit 6)."""
    from wordcount.cli import READ_ONLY_RETRY_S
    from wordcount.exceptions import EXIT_REDIS, EXIT_TIMEOUT

    url = ["--redis-url", "redis://127.0.0.1:1/0"]
    proc, took = _wc(*command, *url)
    assert proc.returncode == EXIT_REDIS, proc.stderr
    assert took < READ_ONLY_RETRY_S + 10, took
    assert "unreachable" in proc.stderr and "WORDCOUNT_RETRY_SECONDS" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc, took = _wc(*command, *url, "--timeout", "1")
    assert proc.returncode == EXIT_TIMEOUT, proc.stderr
    assert "unrecognized arguments" not in proc.stderr and took < 1 + 10, took


def test_an_action_takes_timeout_too_and_the_retry_budget_stays_configurable():
    """cancel / delete / requeue keep retrying through an outage (WORDCOUNT_RETRY_SECONDS),
    bounded by --timeout; a read-only command given WORDCOUNT_RETRY_SECONDS uses it."""
    from wordcount.exceptions import EXIT_REDIS, EXIT_TIMEOUT

    url = ["--redis-url", "redis://127.0.0.1:1/0"]
    for action in (["cancel", "j1"], ["delete", "j1"], ["requeue", "j1"]):
        proc, took = _wc(*action, *url, "--timeout", "1")
        assert proc.returncode == EXIT_TIMEOUT and took < 11, (action, proc.stderr, took)
    proc, took = _wc("jobs", *url, env_extra={"WORDCOUNT_RETRY_SECONDS": "1"})
    assert proc.returncode == EXIT_REDIS and took < 11 and "unreachable for 1 s" in proc.stderr


def test_crash_at_alone_finishes_and_a_failed_job_never_says_survived(tmp_path):
    """As a newcomer typed it: `run d --crash-at after-count` crashed every attempt (the
    probability defaulted to 1), every task was set aside, and the last line said the crashes
    were "survived". Now the default probability lets the job finish (exact), and a job that
    ends with tasks set aside reports the crashes without "survived"; the dead letters say how
    many attempts failed, against --max-attempts."""
    from wordcount.exceptions import EXIT_INPUT_ERRORS

    data = tmp_path / "d"
    data.mkdir()
    for i in range(8):
        (data / f"{i}.txt").write_text(f"alpha beta{i} " * 200)
    base = ["run", str(data), "--workers", "2", "--pack-size", "0", "--json", "--claim-timeout",
            "300", "--commit", "atomic"]  # (one phase: 8 tasks, 8 dead letters)
    # (the default 0.3 can still crash one task 4 times in a row, ~1% a task: the job
    # finishing is what is tested here, so attempts are not the limit)
    proc, _ = _wc(*base, "--crash-at", "after-count", "--max-attempts", "100")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dead"] == 0
    assert proc.stderr.count("injected worker crashes") <= 1
    if "injected worker crashes" in proc.stderr:
        assert "crashes survived" in proc.stderr
    proc, _ = _wc(*base, "--crash-at", "after-count", "--crash-prob", "1",
                  "--max-attempts", "2")
    assert proc.returncode == EXIT_INPUT_ERRORS, proc.stderr
    assert "injected worker crashes" in proc.stderr and "survived" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dead"] == 8 and doc["top"] == []
    assert all("2 attempts failed (--max-attempts 2" in e["error"] for e in doc["errors"])


def test_the_readmes_local_example_writes_nothing_the_cluster_counts_or_git_tracks(tmp_path):
    """As a newcomer ran it: the README's local example wrote its corpus into ./data (what
    `make up` counts) and counts.tsv into the repository root. Its commands, run for real here
    (with a small corpus), must write only under ignored directories, never under ./data."""
    import os
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("## Counting on one machine", 1)[1].split("```sh", 1)[1].split("```")[0]
    commands = [shlex.split(line.split("#")[0]) for line in
                block.replace("\\\n", " ").splitlines() if line.strip().startswith(".venv/")]
    assert len(commands) >= 3, block
    work = tmp_path / "checkout"
    work.mkdir()
    for argv in commands:
        argv = argv[1:]  # (wordcount)
        if argv[0] == "corpus":  # the same command, at a test's size
            argv = [a for a in argv if not re.fullmatch(r"\d+MiB|--files|--size|--skew-size|\d+",
                                                        a)] + ["--files", "3", "--size", "20K"]
        proc = run_wc(*argv, cwd=work, timeout=300,
                      base_env={k: v for k, v in os.environ.items()
                                if not k.startswith(("REDIS_", "WORDCOUNT_"))})
        assert proc.returncode == 0, (argv, proc.stderr)
    written = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert written and not any(p.startswith("data") for p in written), written
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=root,
                             capture_output=True, text=True).stdout.split()
    assert sorted(ignored) == written, f"not ignored by git: {set(written) - set(ignored)}"


def test_count_refuses_workers_for_a_one_thread_engine_and_explains_engine(tmp_path, capsys):
    """`count --engine serial --workers 2` was accepted silently; `--engine` had no help."""
    (tmp_path / "a.txt").write_text("a b\n")
    assert main(["count", str(tmp_path), "--engine", "serial", "--workers", "2"]) == EXIT_USAGE
    assert "--workers is for the threads and processes engines" in capsys.readouterr().err
    assert main(["count", str(tmp_path), "--workers", "2"]) == EXIT_USAGE  # (serial: default)
    capsys.readouterr()
    assert main(["count", str(tmp_path), "--engine", "threads", "--workers", "2"]) == 0
    with pytest.raises(SystemExit):
        main(["count", "--help"])
    assert "serial (default): one thread" in capsys.readouterr().out


def test_operator_commands_do_not_offer_worker_flags(capsys):
    """`result --help` listed --claim-timeout, --max-attempts, --commit-pairs, --data-root."""
    for command in (["result", "j"], ["wait", "j"], ["cancel", "j"], ["delete", "j"],
                    ["requeue", "j"], ["jobs"], ["status"], ["workers"]):
        with pytest.raises(SystemExit):
            main([*command[:1], "--help"])
        text = capsys.readouterr().out
        for flag in ("--claim-timeout", "--max-attempts", "--commit-pairs", "--data-root"):
            assert flag not in text, (command, flag)
        assert "--timeout" in text and "--redis-url" in text, command


def test_make_logs_timeline_is_in_time_order_without_the_noise():
    """`make logs` printed each container's log in turn, half of it Redis saving every second
    and worker DEBUG lines: now one timeline, the noise only with LOGS_ALL=1 (--all)."""
    from wordcount.lab.clusterjob import timeline

    raw = [
        "worker-1  | 2026-12-03T10:00:02.000000000Z INFO task j 0-1 applied\n",
        "worker-1  | 2026-12-03T10:00:04.000000000Z 2026-12-03 DEBUG wordcount.worker: beat\n",
        "redis-1   | 2026-12-03T10:00:01.000000000Z * Ready to accept connections\n",
        "redis-1   | 2026-12-03T10:00:03.000000000Z * 1 changes in 1 seconds. Saving...\n",
        "redis-1   | 2026-12-03T10:00:03.100000000Z * Background saving started by pid 7\n",
        "redis-1   | 2026-12-03T10:00:05.000000000Z # User requested shutdown...\n",
        "chaos-1   | 2026-12-03T10:00:02.500000000Z killed redis-1\n",
    ]
    lines = timeline(raw)
    assert [line.split()[0] for line in lines] == ["10:00:01.000", "10:00:02.000",
                                                    "10:00:02.500", "10:00:05.000"]
    assert [line.split()[1] for line in lines] == ["redis-1", "worker-1", "chaos-1", "redis-1"]
    assert not any("Saving" in line or "DEBUG" in line for line in lines)
    assert len(timeline(raw, everything=True)) == len(raw)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8),
                       st.integers(1, 3) | st.integers(1, 2**62), max_size=40))
def test_the_arrow_tsv_writer_writes_the_bytes_of_the_python_one(tmp_path_factory, counts):
    """--counts-out of a big table is sorted and written by Arrow: byte for byte what the
    Python writer writes (ties by code point, UTF-8), and any word Arrow cannot carry (a lone
    surrogate, a tab, a quote, a line end) sends the table to the Python writer."""
    from wordcount import report

    d = tmp_path_factory.mktemp("tsv")
    old = report.ARROW_MIN_WORDS
    try:
        report.ARROW_MIN_WORDS = 0
        report.write_counts(Counter(counts), str(d / "arrow.tsv"))
        report.ARROW_MIN_WORDS = 10**9
        report.write_counts(Counter(counts), str(d / "python.tsv"))
    finally:
        report.ARROW_MIN_WORDS = old
    assert (d / "arrow.tsv").read_bytes() == (d / "python.tsv").read_bytes()
