"""Tests for the deterministic corpus generator (wordcount.lab.corpus)."""

from __future__ import annotations

import re
import statistics
from collections import Counter

import pytest

from wordcount.argtypes import parse_size
from wordcount.lab import corpus
from wordcount.lab.corpus import UNICODE_WORDS, generate, generate_distinct
from wordcount.words import reference_counts

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
        "import sys; from wordcount.lab.corpus import generate; "
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


# -- generate_distinct: the high-cardinality corpus -------------------------------------------

def _table(paths) -> Counter:
    total: Counter = Counter()
    for p in paths:
        total += reference_counts(p.read_bytes())  # the word rule itself
    return total


def test_distinct_deterministic_for_a_seed(tmp_path):
    kw = dict(files=3, size=50_000, distinct=2_000, skew_size=20_000)
    a = generate_distinct(tmp_path / "a", seed=4, **kw)
    b = generate_distinct(tmp_path / "b", seed=4, **kw)
    c = generate_distinct(tmp_path / "c", seed=5, **kw)
    assert _read(a) == _read(b)
    assert all(x != y for x, y in zip(_read(a), _read(c), strict=True))
    assert len(set(_read(a))) == len(a)  # the files differ from each other
    z1 = generate_distinct(tmp_path / "z1", seed=4, zipf=1.1, **kw)
    z2 = generate_distinct(tmp_path / "z2", seed=4, zipf=1.1, **kw)
    assert _read(z1) == _read(z2) != _read(a)


def test_distinct_in_a_fresh_interpreter(tmp_path):
    """No dependence on hash randomisation or process state."""
    import os
    import subprocess
    import sys

    code = ("import sys; from wordcount.lab.corpus import generate_distinct; "
            "generate_distinct(sys.argv[1], files=2, size=30_000, distinct=900, seed=9, "
            "zipf=0.8)")
    outs = []
    for hashseed in ("1", "2"):
        out = tmp_path / hashseed
        subprocess.run([sys.executable, "-c", code, str(out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": hashseed})
        outs.append(_read(sorted(out.iterdir())))
    here = generate_distinct(tmp_path / "here", files=2, size=30_000, distinct=900, seed=9,
                             zipf=0.8)
    assert outs[0] == outs[1] == _read(here)


@pytest.mark.parametrize("zipf", [0.0, 1.1])
def test_distinct_is_exactly_the_vocabulary_asked(tmp_path, zipf):
    """Every vocabulary word occurs at least once when the files hold that many words (11
    bytes each): the table has exactly ``distinct`` words, not about that many."""
    paths = generate_distinct(tmp_path, files=4, size=11 * 2_500 + 7, distinct=3_000,
                              seed=2, zipf=zipf)  # 10,000 word slots, 7 bytes of padding each
    table = _table(paths)
    assert len(table) == 3_000
    assert sum(table.values()) == 10_000
    assert all(len(w) == 10 and w.isascii() and w.isalpha() and w.islower() for w in table)
    for p in paths:
        data = p.read_bytes()
        assert len(data) == 11 * 2_500 + 7 and data.endswith(b"\n")
        assert Counter(data.decode().split()) == reference_counts(data)  # plain words only
        assert len(reference_counts(data)) > 600  # the vocabulary is spread over the files
    freqs = sorted(table.values(), reverse=True)
    if zipf:
        assert freqs[0] > 20 * statistics.median(freqs)  # skewed
    else:
        assert freqs[0] < 15  # uniform: ~3.3 occurrences a word


def test_distinct_more_than_the_files_hold(tmp_path):
    """Fewer word slots than ``distinct``: every word is different."""
    paths = generate_distinct(tmp_path, files=2, size=11 * 400, distinct=1_000_000, seed=1)
    table = _table(paths)
    assert len(table) == 800 and set(table.values()) == {1}


@pytest.mark.parametrize("size", [0, 1, 5, 10, 11, 12, 21, 22, 88, 89, 1000])
def test_distinct_exact_size_any_size(tmp_path, size):
    (path,) = generate_distinct(tmp_path, files=1, size=size, distinct=10, seed=3)
    data = path.read_bytes()
    assert len(data) == size
    assert data.endswith(b"\n") or size == 0
    assert len(data.split()) == size // 11


@pytest.mark.parametrize("kwargs, error", [
    ({"distinct": 0}, ValueError),
    ({"distinct": 26 ** 10 + 1}, ValueError),
    ({"distinct": 10, "zipf": -1.0}, ValueError),
    ({"distinct": 10, "zipf": "1"}, TypeError),
    ({"distinct": 1.5}, TypeError),
])
def test_distinct_bad_arguments(tmp_path, kwargs, error):
    with pytest.raises(error):
        generate_distinct(tmp_path / "out", files=1, size=100, **kwargs)
    assert not (tmp_path / "out").exists()


def test_corpus_command_distinct(tmp_path, capsys):
    from wordcount.cli import main

    out = tmp_path / "d"
    assert main(["corpus", str(out), "--files", "2", "--size", "1100", "--distinct", "150",
                 "--zipf", "1"]) == 0
    assert "wrote 2 files, 2,200 bytes" in capsys.readouterr().out
    assert len(_table(sorted(out.iterdir()))) == 150
    assert main(["corpus", str(out), "--files", "1", "--size", "10", "--zipf", "1"]) == 2
    assert main(["corpus", str(out), "--files", "1", "--size", "10", "--distinct", "5",
                 "--unicode"]) == 2


# -- named corpora (the benchmarks' --corpus) -------------------------------------------------

def test_parse_spec():
    spec = corpus.parse_spec("8x32MiB")
    assert (spec.files, spec.file_size, spec.skew_size, spec.distinct) == (8, 32 << 20, 0, 0)
    assert spec.total == 256 << 20
    assert corpus.parse_spec("10000x1KiB").total == 10000 << 10
    skew = corpus.parse_spec("skew")
    assert skew.files == 8 and skew.skew_size == 10 * skew.file_size
    assert (512 << 20) - 18 < skew.total <= 512 << 20
    hi = corpus.parse_spec("distinct")
    assert hi.distinct == 2_000_000 and hi.zipf == 0 and hi.total == 60 << 20
    # --size: the total, the layout kept; --files: another count, the total kept
    tiny = corpus.parse_spec("skew", size=18 << 10)
    assert (tiny.files, tiny.file_size, tiny.skew_size) == (8, 1 << 10, 10 << 10)
    assert corpus.parse_spec("8x32MiB", size=2 << 20).file_size == 256 << 10
    assert corpus.parse_spec("8x32MiB", files=4).file_size == 64 << 20
    assert corpus.parse_spec("8x1KiB", distinct=50, zipf=1.2).zipf == 1.2
    for bad, kw in (("huge", {}), ("8x", {}), ("8xfoo", {}), ("8x1KiB", {"zipf": 1.0}),
                    ("8x1KiB", {"files": 0}), ("8x1KiB", {"size": 0})):
        with pytest.raises(ValueError):
            corpus.parse_spec(bad, **kw)


def test_ensure_generates_once_and_keeps_corpora_apart(tmp_path):
    spec = corpus.parse_spec("3x1KiB")
    path = corpus.ensure(spec, seed=2, cache=tmp_path)
    assert path == str(tmp_path / spec.key(2))
    names = sorted(p.name for p in (tmp_path / spec.key(2)).iterdir())
    assert names == [f".complete-{spec.key(2)}", "part-00000.txt", "part-00001.txt",
                     "part-00002.txt"]
    (tmp_path / spec.key(2) / "part-00000.txt").write_bytes(b"kept")
    assert corpus.ensure(spec, seed=2, cache=tmp_path) == path  # cached: not written again
    assert (tmp_path / spec.key(2) / "part-00000.txt").read_bytes() == b"kept"
    assert spec.key(2) != spec.key(3) != corpus.parse_spec("3x1KiB", distinct=9).key(2)
    with pytest.raises(ValueError, match="another corpus"):  # a directory given for two
        corpus.ensure(corpus.parse_spec("2x1KiB"), seed=2, directory=path)


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
