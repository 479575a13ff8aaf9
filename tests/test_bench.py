"""The benchmarks end to end on tiny corpora: they run, print their figures and compare the
tables (no timing is asserted: the ratios are for people to read). And the comparison itself:
a different table makes the command exit 1."""

from __future__ import annotations

import argparse
import os
import re
import subprocess

import pytest

from wordcount.cli import build_parser
from wordcount.lab import bench, clirun

QUEUE_ROW = re.compile(
    r"^(?P<label>(atomic|shuffle) (stream|lease) (1-Redis|RedisRaft))\s+(?P<seconds>[\d.]+)"
    r"\s+(?P<cpu>[\d.]+|-)\s+(?P<cmds>[\d.]+|-)\s+(?P<fcalls>[\d.]+|-)\s+(?P<log>[\d.]+|-)\*?"
    r"\s+(?P<entries>\d+|-)\s+(?P<wrss>\d+) MiB\s+(?P<rrss>\d+) MiB\s+(?P<rmem>\d+) MiB$",
    re.M)


def wordcount(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return clirun.wc(*argv, timeout=timeout)


def test_bench_distributed_both_modes(tmp_path):
    out = wordcount("bench", "distributed", "--size", "2MiB", "--dir", str(tmp_path / "c"),
                    "--variants", "atomic,shuffle")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for label in ("serial", "processes x2", "run atomic x2", "run shuffle x2 R=4"):
        row = next(line for line in lines if line.startswith(label + " "))
        assert row.endswith("identical"), row
    assert "x serial" in out.stdout and "x procs" in out.stdout
    assert "count tables: all identical to the serial engine's" in out.stdout


def _queue_rows(stdout: str) -> dict[str, dict[str, str]]:
    return {m["label"]: m.groupdict() for m in QUEUE_ROW.finditer(stdout)}


QUEUES = ["bench", "queues", "--corpus", "2000x4KiB", "--size", "2MiB", "--pack-size",
          "256KiB", "--kill-every", "--failovers", "0"]


def _check_one_redis_rows(rows: dict[str, dict[str, str]]) -> None:
    for mode in ("atomic", "shuffle"):
        for queue in ("stream", "lease"):
            row = rows[f"{mode} {queue} 1-Redis"]
            assert float(row["cpu"]) >= 0  # a figure, not '-'
            assert float(row["cmds"]) > 0
            assert float(row["fcalls"]) > 0
            assert row["log"] == "-" and row["entries"] == "-"  # one Redis: no Raft log
            assert int(row["wrss"]) > 0 and int(row["rrss"]) > 0


def test_bench_queues_one_redis_both_modes(tmp_path):
    out = wordcount(*QUEUES, "--dir", str(tmp_path / "c"), "--no-raft")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _queue_rows(out.stdout)
    assert set(rows) == {f"{m} {q} 1-Redis" for m in ("atomic", "shuffle")
                         for q in ("stream", "lease")}, out.stdout
    _check_one_redis_rows(rows)
    assert "tasks per job: atomic 8 map(s); shuffle 8 map(s) + 4 reduces" in out.stdout
    assert "Redis CPU s" in out.stdout and "cmds/task" in out.stdout
    assert "shuffle / atomic: stream 1-Redis" in out.stdout
    assert "count tables: all identical (4 jobs" in out.stdout


def test_bench_queues_raft_both_modes(raft_binaries, tmp_path):
    out = wordcount(*QUEUES, "--dir", str(tmp_path / "c"))
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _queue_rows(out.stdout)
    _check_one_redis_rows(rows)
    for mode in ("atomic", "shuffle"):
        row = rows[f"{mode} lease RedisRaft"]
        assert float(row["cpu"]) > 0 and float(row["cmds"]) > 0
        assert float(row["log"]) > 0 and int(row["entries"]) > 0
        assert re.search(rf"RedisRaft / one Redis, {mode}, lease queue: [\d.]+x wall",
                         out.stdout)
    assert "count tables: all identical (6 jobs" in out.stdout


# -- a different table is a failure ------------------------------------------------------------

def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["bench", *argv])


def test_distributed_exits_1_on_a_different_table(tmp_path, monkeypatch, capsys):
    def fake(label, argv, counts_path, env=None):
        text = "the\t3\nend\t1\n" if "shuffle" not in label else "the\t3\nend\t2\n"
        with open(counts_path, "w") as f:
            f.write(text)
        return bench.Measurement(label, 1.0, 1 << 20, counts_path, 10)

    monkeypatch.setattr(bench, "run_measured", fake)
    rc = bench.run(_args("distributed", "--size", "4KiB", "--dir", str(tmp_path / "c")))
    out = capsys.readouterr().out
    assert rc == 1
    assert re.search(r"^run shuffle x2 R=4 .*DIFFERENT$", out, re.M), out
    assert re.search(r"^run atomic x2 .*identical$", out, re.M), out
    assert "count tables: DIFFERENT" in out


def test_queues_exits_1_on_a_different_table(tmp_path, monkeypatch, capsys):
    def fake(label, mode, target, data, kind, workers, chunk, reduces, nemesis=None,
             pack_size=None):
        return bench.JobRun(label, mode, kind, target.where, 1.0, tasks=2,
                            digest="b" if label == "shuffle lease 1-Redis" else "a", words=3)

    monkeypatch.setattr(bench, "_one_job", fake)
    rc = bench.run(_args("queues", "--files", "2", "--size", "4KiB", "--dir", str(tmp_path / "c"),
                         "--no-raft", "--kill-every"))
    out = capsys.readouterr().out
    assert rc == 1
    assert "count tables: DIFFERENT from atomic stream 1-Redis's: shuffle lease 1-Redis" in out


def test_unknown_variant_or_mode_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown variant"):
        bench.run(_args("distributed", "--variants", "atomic,bogus", "--dir", str(tmp_path)))
    with pytest.raises(SystemExit, match="unknown mode"):
        bench.run(_args("queues", "--modes", "per-word", "--dir", str(tmp_path)))


def test_corpus_flags_choose_and_cache_the_corpus(tmp_path, monkeypatch):
    """--corpus/--size/--files/--distinct pick the corpus; it is generated once under
    .cache/ (here in tmp_path) and reused."""
    monkeypatch.chdir(tmp_path)
    args = _args("distributed", "--corpus", "skew", "--size", "18KiB")
    data, spec = bench.corpus_of(args, "8x32MiB")
    assert (spec.files, spec.file_size, spec.skew_size) == (8, 1024, 10240)
    assert data == os.path.join(".cache", spec.key(1))
    assert sorted(os.listdir(data))[-1] == "skew.txt"
    mtime = os.stat(os.path.join(data, "skew.txt")).st_mtime_ns
    assert bench.corpus_of(args, "8x32MiB")[0] == data  # cached: not written again
    assert os.stat(os.path.join(data, "skew.txt")).st_mtime_ns == mtime

    # bench queues without --corpus: --files N --size S are N files of S each, as before
    _, spec = bench.corpus_of(_args("queues", "--files", "3", "--size", "1KiB"), "2000x4KiB",
                              legacy_per_file=True)
    assert (spec.files, spec.file_size) == (3, 1024)
    _, spec = bench.corpus_of(_args("queues", "--corpus", "distinct", "--size", "88KiB",
                                    "--distinct", "500"), "2000x4KiB", legacy_per_file=True)
    assert (spec.files, spec.file_size, spec.distinct) == (8, 11264, 500)
    with pytest.raises(SystemExit, match="unknown corpus"):
        bench.corpus_of(_args("queues", "--corpus", "huge"), "2000x4KiB")


def test_bench_history_prints_both_variants_and_their_ratio():
    """`wordcount bench history`: the Functions with and without the job's history, side by
    side, on both queues (a smoke run: the numbers are for people, never asserted)."""
    for queue in ("stream", "lease"):
        p = wordcount("bench", "history", "--tasks", "40", "--rounds", "2", "--queue", queue)
        assert p.returncode == 0, p.stderr
        assert "with history" in p.stdout and "without" in p.stdout, p.stdout
        assert re.search(r"ratio with/without: Redis CPU \d+\.\d+x", p.stdout), p.stdout
