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


# -- packing small ranges into tasks (planner.pack, engines.count_pack) ------------------------

@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=5000), max_size=80),
       target=st.integers(min_value=0, max_value=6000),
       max_parts=st.integers(min_value=2, max_value=9))
def test_pack_keeps_every_range_once_in_order_within_its_bounds(sizes, target, max_parts):
    tasks = [planner.Task(f"f{i}", 0, n, f"id{i}") for i, n in enumerate(sizes)]
    packed = planner.pack(tasks, target, max_parts)
    assert [r for t in packed for r in t.ranges()] == tasks  # every range, once, in order
    assert [r.ident for t in packed for r in t.ranges()] == [t.ident for t in tasks]
    for t in packed:
        if t.parts:
            assert 2 <= len(t.parts) <= max_parts
            assert t.nbytes == sum(r.nbytes for r in t.parts) <= target
            assert all(r.nbytes < target for r in t.parts)
    if target == 0:
        assert packed == tasks and not any(t.parts for t in packed)
    # a range of the target size or more is never packed
    big = {t for t in tasks if t.nbytes >= target}
    assert big <= {t for t in packed if not t.parts}


def test_pack_refuses_to_pack_a_pack():
    pack = planner.pack([planner.Task("a", 0, 1), planner.Task("b", 0, 1)], 10)
    with pytest.raises(ValueError):
        planner.pack(pack, 10)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.lists(ALPHABET, max_size=60).map(b"".join), min_size=1, max_size=12),
       buf=st.integers(min_value=1, max_value=200))
def test_a_packed_task_counts_as_its_files_do_one_by_one(tmp_path_factory, files, buf):
    """Joining small files into one buffer never joins words across them, nor changes a
    lowercasing context (a final sigma at the end of a file stays final)."""
    from wordcount.engines import count_pack

    d = tmp_path_factory.mktemp("pack")
    tasks = []
    for i, data in enumerate(files):
        (d / f"{i}.bin").write_bytes(data)
        tasks.append(planner.Task(f"{i}.bin", 0, len(data)))
    (task,) = planner.pack(tasks, 10**6) if len(tasks) > 1 else tasks
    counts, nbytes = count_pack(task, lambda p: str(d / p), False, buffer_size=buf)
    expected = Counter()
    for data in files:
        expected.update(reference_counts(data))
    assert counts == expected and nbytes == sum(map(len, files))


def test_a_packed_task_fails_whole_naming_its_unreadable_parts(tmp_path):
    """A pack is the unit of failure, as a one-range task is: a part that cannot be read (or
    that changed) fails the whole task, named, so that its dead letter can be requeued and
    counted whole, once, when the cause is fixed."""
    from wordcount.engines import count_pack

    texts = {"a": "one two", "b": "three", "c": "two four"}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    from wordcount.identity import Identity

    (task,) = planner.pack([planner.Task(n, 0, len(t), Identity.of_stat(
        os.stat(tmp_path / n)).text()) for n, t in texts.items()], 100)
    assert count_pack(task, lambda p: str(tmp_path / p), False) == (
        Counter({"two": 2, "one": 1, "three": 1, "four": 1}), 20)
    (tmp_path / "b").rename(tmp_path / "b.aside")
    with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] b \[0:5\]: No such file"):
        count_pack(task, lambda p: str(tmp_path / p), False)
    (tmp_path / "a").rename(tmp_path / "a.aside")
    with pytest.raises(FileNotFoundError, match=r"a \[0:7\]: No such file or directory "
                                                r"\(and 1 more of its files\)"):
        count_pack(task, lambda p: str(tmp_path / p), False)
    for n in "ab":
        (tmp_path / f"{n}.aside").rename(tmp_path / n)
    (tmp_path / "c").write_text("two four and more")  # changed: the whole task fails, named
    with pytest.raises(planner.FileChangedError,
                       match=r"c \[0:8\]: the file differs from the plan \(size 8 -> 17"):
        count_pack(task, lambda p: str(tmp_path / p), False)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.integers(min_value=1, max_value=7), max_size=40),
       limit=st.integers(min_value=1, max_value=12))
def test_a_submission_batch_holds_at_most_limit_ranges_and_at_least_one_task(parts, limit):
    from wordcount.client import batch_end

    tasks = [planner.Task(f"t{i}", 0, n, "", tuple(planner.Task(f"t{i}.{k}", 0, 1)
                                                    for k in range(n)) if n > 1 else ())
             for i, n in enumerate(parts)]
    start, covered = 0, []
    while start < len(tasks):
        end = batch_end(tasks, start, limit)
        assert end > start
        ranges = sum(len(t.ranges()) for t in tasks[start:end])
        assert ranges <= limit or end == start + 1
        assert end == len(tasks) or ranges + len(tasks[end].ranges()) > limit
        covered += tasks[start:end]
        start = end
    assert covered == tasks
