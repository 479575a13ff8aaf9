"""Deterministic synthetic text corpora for tests, benchmarks and the sample job.

``generate()`` writes ``part-00000.txt``, ``part-00001.txt``, ... (and optionally ``skew.txt``),
each of exactly the requested number of bytes. The text is English-looking prose made of
pronounceable pseudo-words drawn from a Zipf-distributed vocabulary (exponent 1.1), with
capitalised sentence starts and proper nouns, numbers, punctuation, quotes, parentheses,
hyphenated compounds, wrapped lines of 40-100 characters and occasional blank lines.

How it stays fast: a pool of rendered lines (64 KiB .. 4 MiB, depending on how much is asked
for) is built once per call; every file is then assembled from randomly chosen runs of whole
pool lines, written straight from a ``memoryview`` of the pool. Only the last few bytes of a
file are special: a piece of a line cut right before a space and padded with spaces and a
final ``"\\n"`` so that the size is exact. Memory stays bounded by the pool size.

How it stays deterministic: every random stream is a ``random.Random`` seeded with a string
derived from the arguments (string seeds are hashed with SHA-512, independent of
``PYTHONHASHSEED``), the Zipf weights are integers, and nothing iterates over a set or
depends on dict ordering of unordered data. Same arguments -> byte-identical files.

Every file is valid UTF-8, ends with ``"\\n"`` (unless empty) and contains only ASCII
whitespace (space and newline). With ``unicode=False`` (the default) it is pure ASCII.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import pathlib
import random

__all__ = ["UNICODE_WORDS", "VOCAB_SIZE", "ZIPF_EXPONENT", "generate"]

VOCAB_SIZE = 50_000
ZIPF_EXPONENT = 1.1

_KIB = 1024
_MIB = 1024 * 1024
POOL_MIN_BYTES = 64 * _KIB
POOL_MAX_BYTES = 4 * _MIB
PIECE_MIN_BYTES = 16 * _KIB  # runs of whole pool lines written per f.write()
PIECE_MAX_BYTES = 1 * _MIB

# Syllable parts for pseudo-words. Tuples (ordered), never sets.
_ONSETS = (
    "", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
    "w", "z", "br", "cr", "dr", "fr", "gr", "pr", "tr", "bl", "cl", "fl", "gl", "pl", "sl",
    "st", "sp", "sk", "sh", "ch", "th", "qu", "ph", "wh",
)
_NUCLEI = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "oo", "ou", "ie", "y")
_CODAS = ("", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt", "x", "sh")

# Non-ASCII words mixed into the vocabulary (at high-frequency ranks) when unicode=True.
# Chosen to exercise tricky lowercasing / isalnum cases: Greek final sigma, Turkish dotted and
# dotless i, German sharp s, CJK, emoji (incl. multi-code-point sequences), combining marks,
# ligatures, Latin accents, Cyrillic, full-width letters and digits.
UNICODE_WORDS = (
    "ΟΔΟΣ", "λόγος", "ΛΌΓΟΣ", "Σίσυφος", "ΣΊΣΥΦΟΣ", "θάλασσα", "ΘΆΛΑΣΣΑ", "σοφός",
    "İstanbul", "İZMİR", "ılık", "Işık", "kırmızı", "DİYARBAKIR",
    "Straße", "STRASSE", "groß", "Größe", "weiß", "Fußball",
    "東京", "日本語", "中文", "北京", "漢字", "ひらがな", "カタカナ", "한국어",
    "🙂", "🚀", "👍🏽", "🇩🇪", "👩‍💻",
    "café", "cafe\u0301", "naïve", "Ångström", "señor", "ﬁnancial", "Ǆemal",
    "Москва", "привет", "ＡＢＣ", "２０２４",
)

_WHITESPACE = (b" ", b"\n")


def _rng(seed: int, *parts: str) -> random.Random:
    return random.Random(":".join(("wordcount-corpus", str(seed), *parts)))


@functools.lru_cache(maxsize=8)
def _vocabulary(seed: int, unicode: bool) -> tuple[tuple[str, ...], tuple[str, ...],
                                                  tuple[float, ...]]:
    """(words by rank, capitalised words by rank, cumulative Zipf weights)."""
    rng = _rng(seed, "vocab")
    random_ = rng.random
    choice = rng.choice
    # Every onset+nucleus+coda combination, repeats included: one choice() per syllable.
    syllables = [o + n + c for o in _ONSETS for n in _NUCLEI for c in _CODAS]
    seen: set[str] = set()  # membership only; the order comes from ``words``
    words: list[str] = []
    while len(words) < VOCAB_SIZE:
        # Frequent ranks get short words, like real text: 1 syllable for the top 150, mostly
        # 1-2 up to rank 3000, then 1-4 (mostly 2-3).
        rank = len(words)
        r = random_()
        if rank < 150:
            n = 1
        elif rank < 3000:
            n = 1 if r < 0.35 else 2
        else:
            n = 1 if r < 0.08 else 2 if r < 0.55 else 3 if r < 0.9 else 4
        w = choice(syllables) if n == 1 else "".join([choice(syllables) for _ in range(n)])
        if len(w) > 1 and w not in seen:
            seen.add(w)
            words.append(w)
    if unicode:
        for i, w in enumerate(UNICODE_WORDS):
            words[15 + 11 * i] = w  # ranks 16 .. ~500: frequent enough to show up in small files
    caps = tuple(w[:1].upper() + w[1:] for w in words)
    # Integer weights, so they are identical on every platform; the sums stay below 2**53, so
    # the float copies are exact (and bisect compares floats with floats, twice as fast).
    weights = (round(1e9 / r**ZIPF_EXPONENT) for r in range(1, len(words) + 1))
    cum = tuple(float(c) for c in itertools.accumulate(weights))
    return tuple(words), caps, cum


def _render_pool(seed: int, unicode: bool, target: int) -> tuple[bytes, list[int]]:
    """Render at least ``target`` bytes of text; return it and its line starts (+ end)."""
    words, caps, cum = _vocabulary(seed, unicode)
    rng = _rng(seed, "pool", "unicode" if unicode else "ascii")
    random_ = rng.random
    population = range(len(words))

    chunks: list[bytes] = []
    total = 0
    line: list[str] = []
    linelen = 0
    width = 40 + int(random_() * 61)
    sentence_left = 0
    quote_left = 0  # words until the open quote closes (0: none open)
    paren_left = 0
    close_quote = '"'

    while total < target:
        for wi in rng.choices(population, cum_weights=cum, k=8192):
            r = random_()
            if sentence_left == 0:  # start a sentence
                sentence_left = 3 + int(r * 18)
                tok = caps[wi]
            elif r >= 0.073:  # the common case: a plain word
                tok = words[wi]
            elif r < 0.012:  # a number instead of a word
                r = random_()
                if r < 0.5:
                    tok = str(1900 + int(r * 260))  # a year, 1900..2029
                elif r < 0.9:
                    tok = str(int((r - 0.5) * 2500))
                else:
                    tok = f"{int((r - 0.9) * 10000)}.{int(random_() * 100):02d}"
            elif r < 0.045:
                tok = caps[wi]  # a proper noun
            elif r < 0.048:
                tok = words[wi].upper()
            elif r < 0.058:  # hyphenated compound
                tok = words[wi] + "-" + words[int(random_() * 500)]
            else:
                tok = words[wi] + "'s"

            r = random_()  # < 0.014: opening mark; > 0.91: punctuation after the word
            if r < 0.014 and sentence_left > 2:
                if r < 0.008:
                    if not quote_left:
                        if unicode and r < 0.0025:
                            tok, close_quote = "«" + tok, "»"
                        else:
                            tok, close_quote = '"' + tok, '"'
                        quote_left = 1 + int(random_() * min(6, sentence_left - 1))
                elif not paren_left:
                    tok = "(" + tok
                    paren_left = 1 + int(random_() * min(5, sentence_left - 1))

            sentence_left -= 1
            if quote_left:
                quote_left -= 1
                if not quote_left:
                    tok += close_quote
            if paren_left:
                paren_left -= 1
                if not paren_left:
                    tok += ")"

            if sentence_left == 0:  # end the sentence
                if quote_left:
                    tok += close_quote
                    quote_left = 0
                if paren_left:
                    tok += ")"
                    paren_left = 0
                r = random_()
                tok += "." if r < 0.84 else "?" if r < 0.93 else "!" if r < 0.98 else "..."
            elif r >= 0.91:
                if r < 0.98:
                    tok += ","
                elif r < 0.987:
                    tok += ";"
                elif r < 0.992:
                    tok += ":"
                else:
                    tok += " —" if unicode and r >= 0.997 else " -"

            if linelen + len(tok) > width and line:  # wrap
                b = (" ".join(line) + "\n").encode()
                chunks.append(b)
                total += len(b)
                line = [tok]
                linelen = len(tok) + 1
                width = 40 + int(random_() * 61)
            else:
                line.append(tok)
                linelen += len(tok) + 1

            if sentence_left == 0 and random_() < 0.05:  # paragraph break
                b = (" ".join(line) + "\n\n").encode()
                chunks.append(b[:-1])
                chunks.append(b"\n")
                total += len(b)
                line = []
                linelen = 0
                width = 40 + int(random_() * 61)
    if line:
        chunks.append((" ".join(line) + "\n").encode())

    starts = [0, *itertools.accumulate(len(c) for c in chunks)]
    return b"".join(chunks), starts


def _tail(pool: bytes, start: int, n: int) -> bytes:
    """Exactly ``n`` (>= 1) bytes: pool text from ``start`` cut before whitespace, padded with
    spaces, ending with ``"\\n"``. The cut never splits a word or a UTF-8 sequence."""
    limit = start + n - 1
    cut = max(pool.rfind(ws, start, limit + 1) for ws in _WHITESPACE)
    text = pool[start:cut] if cut >= start else b""
    return text + b" " * (n - 1 - len(text)) + b"\n"


def _write_file(path: pathlib.Path, size: int, pool: bytes, starts: list[int],
                rng: random.Random) -> None:
    view = memoryview(pool)
    nlines = len(starts) - 1
    remaining = size
    with open(path, "wb", buffering=_MIB) as f:
        while remaining > 0:
            want = min(remaining, rng.randint(PIECE_MIN_BYTES, PIECE_MAX_BYTES))
            i = rng.randrange(nlines)
            start = starts[i]
            end = starts[bisect.bisect_right(starts, start + want, i) - 1]
            if end > start:  # a run of whole lines
                f.write(view[start:end])
                remaining -= end - start
            else:  # fewer bytes left than this line is long: finish exactly
                f.write(_tail(pool, start, remaining))
                remaining = 0


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def generate(outdir: str | os.PathLike, files: int, size: int, skew_size: int = 0,
             seed: int = 0, unicode: bool = False) -> list[pathlib.Path]:
    """Write ``files`` files ``part-NNNNN.txt`` of exactly ``size`` bytes each into ``outdir``
    (created if needed), plus ``skew.txt`` of exactly ``skew_size`` bytes if ``skew_size > 0``.

    Returns the paths written, sorted. Same arguments give byte-identical files. Existing files
    of the same names are overwritten; other files in ``outdir`` are left alone.

    Raises ValueError for negative counts/sizes or when there is nothing to generate
    (``files == 0`` and ``skew_size == 0``), TypeError for non-integer arguments; both before
    anything is written.
    """
    files = _check_int("files", files)
    size = _check_int("size", size)
    skew_size = _check_int("skew_size", skew_size)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if files == 0 and skew_size == 0:
        raise ValueError("nothing to generate: files is 0 and skew_size is 0")

    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"part-{i:05d}.txt", size) for i in range(files)]
    if skew_size > 0:
        jobs.append((out / "skew.txt", skew_size))

    requested = files * size + skew_size
    pool_target = min(POOL_MAX_BYTES, max(POOL_MIN_BYTES, requested))
    pool, starts = _render_pool(seed, bool(unicode), pool_target)
    for path, nbytes in jobs:
        _write_file(path, nbytes, pool, starts, _rng(seed, "file", path.name))
    return sorted(path for path, _ in jobs)
