from __future__ import annotations

import itertools
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wordcount import planner
from wordcount.engines import count_task
from wordcount.exceptions import NoInputError
from wordcount.words import ASCII_WHITESPACE, reference_counts

ALPHABET = st.sampled_from(
    [b"a", b"Z", b"9", b" ", b"\n", b"\r", b"\t", b"\v", b"\f", b"_", b"'", b".",
     "Σ".encode(), "ς".encode(), "İ".encode(), "漢".encode(), "😀".encode(), b"\xff", b"\xc3",
     b"\xe2\x82"])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=3000), st.lists(ALPHABET, max_size=1500).map(b"".join)),
       chunk=st.integers(min_value=1, max_value=700), buf=st.integers(min_value=1, max_value=300))
def test_ranges_sum_to_whole_file(tmp_path, data, chunk, buf):
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    tasks = planner.split_file(str(path), len(data), chunk)
    # ranges tile the file exactly, each boundary right after ASCII whitespace
    assert tasks[0].start == 0 and tasks[-1].end == len(data)
    for a, b in itertools.pairwise(tasks):
        assert a.end == b.start
        assert data[a.end - 1] in ASCII_WHITESPACE
    total: Counter[str] = Counter()
    for t in tasks:
        total += count_task(t, buffer_size=buf)
    assert total == reference_counts(data)


def test_big_file_is_split_and_memory_is_bounded(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"alpha beta\n" * 100_000)  # 1.1 MB
    tasks = planner.split_file(str(path), path.stat().st_size, 100_000)
    assert len(tasks) == 11
    buffers = list(planner.read_range(str(path), 0, path.stat().st_size, buffer_size=4096))
    assert max(map(len, buffers)) <= 4096
    assert b"".join(buffers) == path.read_bytes()


def test_range_without_whitespace_grows(tmp_path):
    path = tmp_path / "nows.bin"
    path.write_bytes(b"x" * 5000 + b" tail")
    tasks = planner.split_file(str(path), 5005, 100)
    assert [(t.start, t.end) for t in tasks] == [(0, 5001), (5001, 5005)]


def test_discover_walks_sorted_skips_symlinks_and_globs(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("b")
    (tmp_path / "d" / "sub" / "a.txt").write_text("a")
    (tmp_path / "outside.txt").write_text("o")
    os.symlink(tmp_path / "outside.txt", tmp_path / "d" / "link.txt")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    files, errors = planner.discover([str(tmp_path / "d")])
    assert [os.path.relpath(f, tmp_path) for f in files] == ["d/b.txt", "d/sub/a.txt"]
    assert errors == []
    # a symlink matched explicitly (by a glob here) is followed; only walks skip them
    files, _ = planner.discover([str(tmp_path / "d" / "*.txt")])
    assert [os.path.relpath(f, tmp_path) for f in files] == ["d/b.txt", "d/link.txt"]
    files, errors = planner.discover([str(tmp_path / "d"), str(tmp_path / "missing")])
    assert len(files) == 2 and errors[0].path.endswith("missing")


def test_discover_nothing_matched(tmp_path):
    with pytest.raises(NoInputError):
        planner.discover([str(tmp_path / "nope"), str(tmp_path / "*.none")])


def test_resolve_under_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.txt").write_text("x")
    os.symlink(tmp_path, root / "up")
    assert planner.resolve_under(str(root), "ok.txt") == str((root / "ok.txt").resolve())
    for bad in ["../x", "/etc/passwd", "up/secret", "a/../../x"]:
        with pytest.raises(PermissionError):
            planner.resolve_under(str(root), bad)


def test_file_shrunk_after_planning(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc def\n" * 10)
    task = planner.Task(str(path), 0, 80)
    path.write_bytes(b"abc\n")
    with pytest.raises(OSError, match="shorter"):
        count_task(task)
