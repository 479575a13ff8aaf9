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

``generate_distinct()`` writes high-cardinality files instead (logs, crawls: "the vocabulary is
the work"): lowercase 10-letter words, 8 to a line, from a vocabulary of exactly ``distinct``
words. Every vocabulary word occurs at least once when the files hold that many words, so the
number of distinct words in the result is exactly ``min(distinct, words in the files)``, not
only approximately; the other word slots are drawn uniformly (``zipf=0``) or by a Zipf law of
that exponent over the vocabulary's ranks.

``Spec`` / ``parse_spec`` / ``ensure`` name the corpora the benchmarks select (``NxSIZE``,
``skew``, ``distinct``) and cache them, generated once, under ``.cache/``.
"""

from __future__ import annotations

import array
import bisect
import dataclasses
import functools
import itertools
import os
import pathlib
import random
import re

__all__ = ["DISTINCT_WORD_LEN", "PRESETS", "UNICODE_WORDS", "VOCAB_SIZE", "ZIPF_EXPONENT",
           "Spec", "ensure", "generate", "generate_distinct", "parse_spec"]

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


# -- high cardinality --------------------------------------------------------------------------

DISTINCT_WORD_LEN = 10  # letters; with its separator a word slot is 11 bytes
_SLOT = DISTINCT_WORD_LEN + 1
_WORDS_PER_LINE = 8
_SPACE = 26 ** DISTINCT_WORD_LEN  # every 10-letter lowercase word
_MULTIPLIER = 7 ** 17  # odd and no multiple of 13: i -> (M*i + B) mod 26**10 is a bijection
_BATCH = _WORDS_PER_LINE * 8192  # word slots rendered per write (whole lines)


_LETTERS = tuple(bytes([c]) for c in range(ord("a"), ord("z") + 1))


@functools.lru_cache(maxsize=1)
def _triples() -> tuple[bytes, ...]:
    return tuple(a + b + c for a in _LETTERS for b in _LETTERS for c in _LETTERS)


@functools.lru_cache(maxsize=2)
def _zipf_cum(distinct: int, exponent: float) -> array.array:
    """Cumulative Zipf weights over ranks 1..distinct, as integers (exact float copies): scaled
    so that their sum stays below 2**53, whatever the exponent."""
    weights = [r ** -exponent for r in range(1, distinct + 1)]
    scale = 2.0 ** 50 / sum(weights)
    return array.array("d", itertools.accumulate(float(max(1, round(w * scale)))
                                                 for w in weights))


def _render_words(indices: list[int], offset: int) -> list[bytes]:
    """The vocabulary words of these indices: index i is the 10 letters of
    ``(M * i + offset) mod 26**10`` in base 26 (M coprime with 26**10: distinct indices give
    distinct words, and neighbours look unrelated)."""
    t, last = _triples(), _LETTERS
    m, space = _MULTIPLIER, _SPACE
    out = []
    append = out.append
    for i in indices:
        x = (m * i + offset) % space
        append(t[x % 17576] + t[(x // 17576) % 17576] + t[(x // 308915776) % 17576]
               + last[x // 5429503678976])  # (x // 26**9 < 26: one letter)
    return out


def _write_distinct(path: pathlib.Path, nbytes: int, first: int, slots: int, distinct: int,
                    offset: int, zipf: float, rng: random.Random) -> None:
    """One file: word slots ``first .. first + nbytes // 11`` of the corpus's ``slots``.
    Slot k covers vocabulary index ``k * distinct // slots`` when that quotient steps up after
    k (so each index is covered by exactly one slot, spread evenly over the corpus); the other
    slots draw an index."""
    n_words = nbytes // _SLOT
    cum = _zipf_cum(distinct, zipf) if zipf > 0 else None
    population = range(distinct)
    with open(path, "wb", buffering=_MIB) as f:
        for start in range(first, first + n_words, _BATCH):
            end = min(start + _BATCH, first + n_words)
            if distinct >= slots:  # every slot covers a new index
                indices = [k * distinct // slots for k in range(start, end)]
            else:
                covered = (end * distinct // slots) - (start * distinct // slots)
                want = end - start - covered
                if cum is not None:
                    draws = iter(rng.choices(population, cum_weights=cum, k=want))
                else:
                    random_ = rng.random
                    draws = iter([int(random_() * distinct) for _ in range(want)])
                indices = []
                append = indices.append
                j = start * distinct // slots
                for k in range(start, end):
                    nxt = (k + 1) * distinct // slots
                    if nxt > j:
                        append(j)
                        j = nxt
                    else:
                        append(next(draws))
            words = _render_words(indices, offset)
            f.write(b"\n".join(b" ".join(words[i:i + _WORDS_PER_LINE])
                               for i in range(0, len(words), _WORDS_PER_LINE)) + b"\n")
        pad = nbytes - n_words * _SLOT
        if pad:
            f.write(b" " * (pad - 1) + b"\n")


def generate_distinct(outdir: str | os.PathLike, files: int, size: int, distinct: int,
                      skew_size: int = 0, seed: int = 0, zipf: float = 0.0
                      ) -> list[pathlib.Path]:
    """Like ``generate`` (same names, exact sizes, deterministic, arguments checked before
    anything is written), but high-cardinality text: lowercase 10-letter words separated by
    one space, 8 to a line, from a vocabulary of ``distinct`` words.

    The files hold ``size // 11`` words each (the rest of a file's bytes: spaces and a final
    newline). Every vocabulary word occurs at least once if the files hold at least
    ``distinct`` words in all, so the count table has exactly ``min(distinct, total words)``
    distinct words; the remaining words are drawn uniformly (``zipf=0``) or Zipf(``zipf``)
    over the vocabulary's ranks. Pure Python, about 1 s per 10 MB.
    """
    files = _check_int("files", files)
    size = _check_int("size", size)
    skew_size = _check_int("skew_size", skew_size)
    distinct = _check_int("distinct", distinct)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if isinstance(zipf, bool) or not isinstance(zipf, int | float):
        raise TypeError(f"zipf must be a number, got {zipf!r}")
    if not 0 <= zipf <= 10:
        raise ValueError(f"zipf must be between 0 (uniform) and 10, got {zipf}")
    if not 1 <= distinct <= _SPACE:
        raise ValueError(f"distinct must be between 1 and 26**{DISTINCT_WORD_LEN}, "
                         f"got {distinct}")
    if files == 0 and skew_size == 0:
        raise ValueError("nothing to generate: files is 0 and skew_size is 0")

    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"part-{i:05d}.txt", size) for i in range(files)]
    if skew_size > 0:
        jobs.append((out / "skew.txt", skew_size))
    slots = sum(nbytes // _SLOT for _, nbytes in jobs)
    offset = _rng(seed, "distinct", "vocab").randrange(_SPACE)
    first = 0
    for path, nbytes in jobs:
        _write_distinct(path, nbytes, first, slots, distinct, offset, float(zipf),
                        _rng(seed, "distinct", path.name))
        first += nbytes // _SLOT
    return sorted(path for path, _ in jobs)


# -- named corpora (the benchmarks' --corpus) ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Spec:
    """A corpus the benchmarks can ask for: ``files`` files of ``file_size`` bytes, plus one
    ``skew.txt`` of ``skew_size`` bytes; ``distinct > 0``: the high-cardinality generator."""

    name: str
    files: int
    file_size: int
    skew_size: int = 0
    distinct: int = 0
    zipf: float = 0.0

    @property
    def total(self) -> int:
        return self.files * self.file_size + self.skew_size

    def sized(self, total: int) -> Spec:
        """The same layout (file count, the skew file's ratio to the others) in ``total``
        bytes (within a few bytes: each file a whole number of them)."""
        parts = self.files * self.file_size + self.skew_size
        if parts == 0:
            return self
        each = total * self.file_size // parts
        skew = total * self.skew_size // parts if self.skew_size else 0
        return dataclasses.replace(self, file_size=each, skew_size=skew)

    def describe(self) -> str:
        text = f"{self.files} x {human(self.file_size)}"
        if self.skew_size:
            text += f" + skew {human(self.skew_size)}"
        if self.distinct:
            law = f"Zipf {self.zipf:g}" if self.zipf else "uniform"
            text += f", {self.distinct:,} distinct 10-letter words ({law})"
        return f"{text}, {human(self.total)} in all"

    def key(self, seed: int) -> str:
        """A directory name saying everything the files depend on."""
        key = f"{self.files}x{self.file_size}"
        if self.skew_size:
            key += f"+skew{self.skew_size}"
        if self.distinct:
            key += f"-distinct{self.distinct}" + (f"-zipf{self.zipf:g}" if self.zipf else "")
        return f"corpus-{key}-seed{seed}"

    def generate(self, directory: str | os.PathLike, seed: int) -> list[pathlib.Path]:
        if self.distinct:
            return generate_distinct(directory, self.files, self.file_size, self.distinct,
                                     self.skew_size, seed, self.zipf)
        return generate(directory, self.files, self.file_size, self.skew_size, seed)


# -- real text ---------------------------------------------------------------------------------

def replicate(sources: list[str | os.PathLike], outdir: str | os.PathLike, files: int,
              size: int) -> list[pathlib.Path]:
    """The lab's ``cat in.txt in.txt ... > big.txt``: ``files`` files (``part-00000.txt``,
    ...) of ``size`` bytes each, made of the ``sources``' bytes one after another, over and
    over. The last copy in a file is cut right after a line, so no word is split and the file
    ends a line; a file may so fall short of ``size`` by at most one line (a file smaller
    than the first line: cut after a space). ValueError on sources that hold nothing, or
    not even a word that fits."""
    size, files = _check_int("size", size), _check_int("files", files)
    text = b"".join(pathlib.Path(s).read_bytes() for s in sources)
    if not text.strip():
        raise ValueError("the text files given hold no text")
    if not text.endswith(b"\n"):
        text += b"\n"
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = out / f"part-{i:05}.txt"
        left = size
        with open(path, "wb") as f:
            while left >= len(text):
                f.write(text)
                left -= len(text)
            if left:  # a part of one more copy: up to its last whole line
                piece = text[:left]
                cut = piece.rfind(b"\n") + 1
                if not cut and left == size:  # not one line fits: up to a space, then
                    cut = max(piece.rfind(bytes([c])) for c in ASCII_SPACES) + 1
                    if not cut:
                        raise ValueError(f"not one line of the text fits in {size} bytes")
                f.write(piece[:cut])
        paths.append(path)
    return paths


ASCII_SPACES = b" \t\r\v\f"
KJV = "the King James Bible (Debian's bible-kjv-text, through its `bible` program)"


def public_domain_text(into: str | os.PathLike) -> tuple[pathlib.Path, str] | None:
    """A real public-domain text installed on this machine, written to ``into`` (a file),
    and what it is; None when there is none (install Debian's ``bible-kjv-text``)."""
    import shutil
    import subprocess

    bible = shutil.which("bible")
    if bible is None:
        return None
    try:
        text = subprocess.run([bible, "Gen1:1-Rev22:21"], capture_output=True, timeout=60,
                              check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if len(text) < 1_000_000:  # (the whole Bible is 4.3 MB: anything less is not it)
        return None
    path = pathlib.Path(into)
    path.write_bytes(text)
    return path, KJV


def human(n: int) -> str:
    """``n`` bytes as people write them: 100 B, 4 MiB, 1.5 GiB."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:,} B"


DEFAULT_DISTINCT = 2_000_000
# Named corpora. Any "<files>x<size>" (8x32MiB, 10000x1KiB, 2000x4KiB) is one too: that many
# files of that size, the Zipf prose of ``generate``.
PRESETS: dict[str, Spec] = {
    # 512 MiB: 8 files and one file 10 times as big (18 shares of 512 MiB / 18)
    "skew": Spec("skew", 8, (512 << 20) // 18, 10 * ((512 << 20) // 18)),
    # ~63 MB (60 MiB) of 10-letter words, 2 M distinct, uniform (issue 14, item 5)
    "distinct": Spec("distinct", 8, (60 << 20) // 8, distinct=DEFAULT_DISTINCT),
}
_FILES_X_SIZE = re.compile(r"(\d+)x(.+)", re.IGNORECASE)


def parse_spec(text: str, size: int | None = None, files: int | None = None,
               distinct: int | None = None, zipf: float | None = None) -> Spec:
    """``text``: a preset name or ``<files>x<size>``; ``size``: the corpus's total bytes
    instead of the preset's (the layout kept); ``files``: another file count (the total
    kept); ``distinct``/``zipf``: the high-cardinality knobs (``distinct`` turns any layout
    into a high-cardinality corpus). ValueError on anything else."""
    from ..argtypes import parse_size

    spec = PRESETS.get(text)
    if spec is None:
        m = _FILES_X_SIZE.fullmatch(text.strip())
        if not m:
            raise ValueError(f"unknown corpus {text!r}: {', '.join(PRESETS)} or "
                             "<files>x<size> (e.g. 8x32MiB, 2000x4KiB)")
        spec = Spec(text, int(m.group(1)), parse_size(m.group(2)))
    if files is not None:
        if files < 1:
            raise ValueError(f"--files must be at least 1, got {files}")
        spec = dataclasses.replace(spec, files=files,
                                   file_size=spec.files * spec.file_size // files)
    if size is not None:
        spec = spec.sized(size)
    if distinct is not None:
        spec = dataclasses.replace(spec, distinct=distinct)
    if zipf is not None:
        if not spec.distinct:
            raise ValueError("--zipf is for a high-cardinality corpus (--distinct N or "
                             "--corpus distinct)")
        spec = dataclasses.replace(spec, zipf=zipf)
    if spec.total == 0:
        raise ValueError(f"corpus {text!r} would be empty")
    return spec


def ensure(spec: Spec, seed: int = 1, directory: str | os.PathLike | None = None,
           cache: str | os.PathLike = ".cache") -> str:
    """The corpus's directory (``cache/<spec key>`` unless ``directory``), generated the first
    time; a marker file says a generation finished, so an interrupted one is done again."""
    path = pathlib.Path(directory) if directory else pathlib.Path(cache) / spec.key(seed)
    marker = path / f".complete-{spec.key(seed)}"
    others = [m.name for m in path.glob(".complete-*") if m != marker]
    if others:  # its files (more of them, a skew file) would be counted with ours
        raise ValueError(f"{path} holds another corpus ({others[0][len('.complete-'):]}): "
                         "choose another directory")
    if not marker.exists():
        spec.generate(path, seed)
        marker.touch()
    return str(path)
