"""Tests for the deterministic corpus generator (wordcount.corpus)."""

from __future__ import annotations

import re
import statistics
from collections import Counter

import pytest

from wordcount.argtypes import parse_size
from wordcount.corpus import UNICODE_WORDS, generate

WORD_RE = re.compile(r"[^\W_]+")


def _read(paths):
    return [p.read_bytes() for p in paths]


# -- generate: layout and sizes ----------------------------------------------------------------

def test_files_and_exact_sizes(tmp_path):
    out = tmp_path / "a" / "b"  # parents are created
    paths = generate(out, files=3, size=100_000, seed=1)
    assert paths == [out / f"part-{i:05d}.txt" for i in range(3)]
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in paths]
    for p in paths:
        assert p.stat().st_size == 100_000


@pytest.mark.parametrize("unicode", [False, True])
@pytest.mark.parametrize(
    "size", [0, 1, 2, 3, 5, 17, 40, 99, 100, 101, 255, 1000, 4095, 65_536, 300_001]
)
def test_exact_size_any_size(tmp_path, size, unicode):
    (path,) = generate(tmp_path, files=1, size=size, seed=size % 3, unicode=unicode)
    data = path.read_bytes()
    assert len(data) == size
    data.decode("utf-8")  # never cut inside a UTF-8 sequence
    if size:
        assert data.endswith(b"\n")
    if not unicode:
        assert data.isascii()


def test_large_file_exact_size_and_cut_points(tmp_path):
    """Bigger than the largest single write and than the text pool."""
    size = 5 * 1024 * 1024 + 12_345
    (path,) = generate(tmp_path, files=1, size=size, seed=3, unicode=True)
    data = path.read_bytes()
    assert len(data) == size
    text = data.decode("utf-8")
    assert set(re.findall(r"\s", text)) <= {" ", "\n"}
    lines = text.split("\n")[:-1]
    assert max(len(line) for line in lines) <= 150
    assert "" in lines  # occasional blank lines


def test_skew_file(tmp_path):
    paths = generate(tmp_path, files=2, size=10_000, skew_size=123_457, seed=5)
    assert [p.name for p in paths] == ["part-00000.txt", "part-00001.txt", "skew.txt"]
    assert [p.stat().st_size for p in paths] == [10_000, 10_000, 123_457]


def test_only_skew_file(tmp_path):
    paths = generate(tmp_path, files=0, size=0, skew_size=5000)
    assert [p.name for p in paths] == ["skew.txt"]
    assert paths[0].stat().st_size == 5000


def test_zero_size_files(tmp_path):
    paths = generate(tmp_path, files=2, size=0)
    assert [p.stat().st_size for p in paths] == [0, 0]


def test_overwrites_existing_files_and_keeps_others(tmp_path):
    (tmp_path / "part-00000.txt").write_bytes(b"x" * 1_000_000)
    (tmp_path / "other.txt").write_bytes(b"keep")
    generate(tmp_path, files=1, size=500)
    assert (tmp_path / "part-00000.txt").stat().st_size == 500
    assert (tmp_path / "other.txt").read_bytes() == b"keep"


def test_accepts_str_path(tmp_path):
    paths = generate(str(tmp_path / "s"), files=1, size=10)
    assert paths[0].stat().st_size == 10


# -- generate: determinism ---------------------------------------------------------------------

@pytest.mark.parametrize("unicode", [False, True])
def test_deterministic(tmp_path, unicode):
    a = generate(tmp_path / "a", files=3, size=70_000, skew_size=200_000, seed=42, unicode=unicode)
    b = generate(tmp_path / "b", files=3, size=70_000, skew_size=200_000, seed=42, unicode=unicode)
    assert _read(a) == _read(b)
    contents = _read(a)
    assert len(set(contents)) == len(contents)  # the files differ from each other


def test_different_seeds_differ(tmp_path):
    a = generate(tmp_path / "a", files=2, size=50_000, seed=1)
    b = generate(tmp_path / "b", files=2, size=50_000, seed=2)
    for x, y in zip(_read(a), _read(b), strict=True):
        assert x != y


def test_deterministic_in_fresh_interpreter(tmp_path):
    """No dependence on hash randomisation or process state."""
    import os
    import subprocess
    import sys

    import wordcount

    src = os.path.dirname(os.path.dirname(os.path.abspath(wordcount.__file__)))
    code = (
        "import sys; from wordcount.corpus import generate; "
        "generate(sys.argv[1], files=2, size=30000, skew_size=7000, seed=9, unicode=True)"
    )
    outs = []
    for hashseed in ("1", "2"):
        out = tmp_path / hashseed
        env = {**os.environ, "PYTHONHASHSEED": hashseed,
               "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env)
        outs.append(_read(sorted(out.iterdir())))
    here = generate(tmp_path / "here", files=2, size=30000, skew_size=7000, seed=9, unicode=True)
    assert outs[0] == outs[1] == _read(here)


# -- generate: content -------------------------------------------------------------------------

def test_ascii_by_default_and_looks_like_text(tmp_path):
    (path,) = generate(tmp_path, files=1, size=300_000, seed=7)
    data = path.read_bytes()
    assert data.isascii()
    text = data.decode("ascii")
    for ch in ',.;:!?"()-\'':
        assert ch in text, ch
    assert re.search(r"\b(19|20)\d\d\b", text)  # years
    assert re.search(r"\b[A-Z][a-z]+\b", text)  # capitalised words
    lengths = [len(line) for line in text.split("\n") if line]
    assert 40 <= statistics.mean(lengths) <= 100


def test_unicode_mode(tmp_path):
    (path,) = generate(tmp_path, files=1, size=64 * 1024, seed=0, unicode=True)
    data = path.read_bytes()
    assert not data.isascii()
    text = data.decode("utf-8")  # strict: valid UTF-8
    # Several scripts show up even in a small file.
    assert re.search(r"[\u0370-\u03ff]", text)  # Greek
    present = [w for w in UNICODE_WORDS if w in text]
    assert len(present) >= 10, present


def test_unicode_mode_has_all_the_tricky_cases(tmp_path):
    (path,) = generate(tmp_path, files=1, size=2 * 1024 * 1024, seed=0, unicode=True)
    text = path.read_text("utf-8")
    for needle in ("ς", "Σ", "İ", "ı", "ß", "東京", "🚀"):
        assert needle in text, needle


def test_word_distribution_is_skewed(tmp_path):
    (path,) = generate(tmp_path, files=1, size=1024 * 1024, seed=11)
    counts = Counter(WORD_RE.findall(path.read_text("ascii").lower()))
    freqs = sorted(counts.values(), reverse=True)
    assert len(counts) > 5_000  # a large vocabulary
    median = statistics.median(freqs)
    assert freqs[0] > 1000 * median
    # Roughly Zipf: the top word is about 2**1.1 times as frequent as the second.
    assert 1.5 < freqs[0] / freqs[1] < 3.0


# -- generate: bad arguments -------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"files": -1, "size": 10}, "files"),
        ({"files": 1, "size": -1}, "size"),
        ({"files": 1, "size": 10, "skew_size": -5}, "skew_size"),
        ({"files": 0, "size": 10}, "nothing to generate"),
        ({"files": 0, "size": 0, "skew_size": 0}, "nothing to generate"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # validated before touching the disk


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"files": 1.5, "size": 10}, "files"),
        ({"files": True, "size": 10}, "files"),
        ({"files": 1, "size": "10"}, "size"),
        ({"files": 1, "size": 10, "seed": "x"}, "seed"),
    ],
)
def test_bad_argument_types(tmp_path, kwargs, match):
    with pytest.raises(TypeError, match=match):
        generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


# -- parse_size --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", 0),
        ("123", 123),
        ("  42 ", 42),
        ("10B", 10),
        ("1K", 1024),
        ("1k", 1024),
        ("1KiB", 1024),
        ("1kib", 1024),
        ("1KB", 1000),
        ("1kb", 1000),
        ("64M", 64 * 1024**2),
        ("64MiB", 64 * 1024**2),
        ("64MB", 64 * 1000**2),
        ("2G", 2 * 1024**3),
        ("2GiB", 2 * 1024**3),
        ("2gb", 2 * 1000**3),
        ("1T", 1024**4),
        ("1.5M", 3 * 512 * 1024),
        ("0.5K", 512),
        ("16 MiB", 16 * 1024**2),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "-1", "-1K", "1X", "1KK", "K", "1.5", "0.1K", "1e6", "1 2", "1MiBs", "0x10"],
)
def test_parse_size_errors(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_parse_size_wrong_type():
    with pytest.raises(TypeError):
        parse_size(1024)  # type: ignore[arg-type]
