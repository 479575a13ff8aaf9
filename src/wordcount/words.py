"""The word rule, the one definition every engine shares.

1. Bytes are decoded as UTF-8; invalid sequences become U+FFFD (``errors="replace"``).
2. The text is lowercased with ``str.lower()``.
3. A word is a maximal run of characters for which ``str.isalnum()`` is true.

``reference_counts`` is that rule written as plainly as possible; it is the oracle the tests
compare everything against. ``Tally`` is the fast path the engines use:

- ASCII text is mapped with ``bytes.translate`` (letters lowercased, digits kept, everything
  else a space), then split by Arrow's compute kernels when pyarrow is importable (C++, no
  Python object per word) and counted with one ``value_counts`` over every buffer split so far
  (up to ``ARROW_PENDING_BYTES``), so a task of a huge vocabulary turns into Python objects
  once, not once per buffer; else by ``bytes.split`` + ``Counter``;
- in a buffer holding non-ASCII bytes, only the whitespace-delimited tokens that contain one go
  through the reference rule; the rest of the buffer still takes the ASCII path.

All paths give identical results on any bytes, as long as buffers (and tokens) are cut only
right after ASCII whitespace, or after an ASCII byte of ``planner.CUT_BYTES`` (ASCII
punctuation that is neither cased nor case-ignorable): such a cut never splits a word or a
UTF-8 sequence and never changes lowercasing context (the Greek final-sigma rule sees the same
neighbours).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# ``\w`` in a str pattern is exactly ``str.isalnum()`` plus "_", so this is "isalnum runs".
WORD_RE = re.compile(r"[^\W_]+")

ASCII_WHITESPACE = b" \t\n\r\v\f"

# ASCII letters lowercased, digits kept, every other byte becomes a space. Only ever applied to
# pure-ASCII data.
_ASCII_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122) else 32 for c in range(256)
)

try:
    import pyarrow as _pa
    import pyarrow.compute as _pc
except ImportError:  # the optional 'fast' extra is not installed
    _pa = None

USE_ARROW = _pa is not None
# Split ASCII buffers kept (as Arrow arrays) before they are counted together, at most this
# many bytes or words: memory is the bytes plus 8 per word (offsets), whatever the task's size
# (words of two letters: 8 MiB of text is 2.8 M words, 22 MB of offsets)
ARROW_PENDING_BYTES = 64 << 20
ARROW_PENDING_WORDS = 2_000_000

try:  # the C helper behind Counter.update(iterable); falls back to the public method.
    from collections import _count_elements as _count_into  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - non-CPython

    def _count_into(mapping: dict, iterable: Iterable) -> None:
        Counter.update(mapping, iterable)  # type: ignore[arg-type]


def reference_counts(data: bytes) -> Counter[str]:
    """The word rule, verbatim: the oracle for every engine."""
    return Counter(WORD_RE.findall(data.decode("utf-8", "replace").lower()))


class Tally:
    """Accumulates word counts over buffers cut right after ASCII whitespace (or another byte
    of ``planner.CUT_BYTES``).

    ASCII buffers are counted as ``bytes`` keys (cheap), everything else as ``str`` keys; the two
    are merged once, in ``counts()``.
    """

    __slots__ = ("_arrow", "_ascii", "_pending", "_pending_bytes", "_pending_words", "_text")

    def __init__(self) -> None:
        self._ascii: Counter[bytes] = Counter()
        self._text: Counter[str] = Counter()
        self._arrow = USE_ARROW
        self._pending: list = []  # split ASCII buffers (Arrow string arrays) not counted yet
        self._pending_bytes = self._pending_words = 0

    def add(self, data: bytes) -> None:
        if data.isascii():
            self._add_ascii(data)
            return
        # Only the whitespace-delimited tokens that hold a non-ASCII byte need the full rule;
        # such a token decodes and lowercases exactly as in context (see the module doc).
        rest, tokens = split_non_ascii(data)
        self._add_ascii(b" ".join(rest))
        joined = b" ".join(tokens).decode("utf-8", "replace").lower()
        _count_into(self._text, WORD_RE.findall(joined))

    def _add_ascii(self, data: bytes) -> None:
        if self._arrow:
            words = _arrow_split(data)
            self._pending.append(words)
            self._pending_bytes += len(data)
            self._pending_words += len(words)
            if self._full():
                self._flush_arrow()
        else:
            _count_into(self._ascii, data.translate(_ASCII_TABLE).split())

    def _full(self) -> bool:
        return (self._pending_bytes >= ARROW_PENDING_BYTES
                or self._pending_words >= ARROW_PENDING_WORDS)

    def _flush_arrow(self) -> None:
        """Count the pending split buffers together (one value_counts, one conversion)."""
        if not self._pending:
            return
        freq = _pc.value_counts(_pa.chunked_array(self._pending, _pa.large_string()))
        self._pending, self._pending_bytes, self._pending_words = [], 0, 0
        words, ns = freq.field(0).to_pylist(), freq.field(1).to_pylist()
        if not self._text:  # (the common case: one flush, pure ASCII) a dict built in C
            self._text.update(dict(zip(words, ns, strict=True)))
            self._text.pop("", None)
            return
        get, text = self._text.get, self._text
        for word, n in zip(words, ns, strict=True):
            if word:  # runs of spaces yield empty strings
                text[word] = get(word, 0) + n

    def absorb(self, other: Tally) -> None:
        """Add another tally's words (``other`` is left empty). Its split buffers join ours
        uncounted: a serial job's tasks are counted with one value_counts per
        ARROW_PENDING_BYTES, not merged as Python dicts task by task."""
        self._pending += other._pending
        self._pending_bytes += other._pending_bytes
        self._pending_words += other._pending_words
        other._pending, other._pending_bytes, other._pending_words = [], 0, 0
        for mine, theirs in ((self._text, other._text), (self._ascii, other._ascii)):
            get = mine.get
            for word, n in theirs.items():
                mine[word] = get(word, 0) + n
            theirs.clear()
        if self._full():
            self._flush_arrow()

    def counts(self) -> Counter[str]:
        self._flush_arrow()
        merged = self._text
        for word, n in self._ascii.items():
            key = word.decode("ascii")
            merged[key] = merged.get(key, 0) + n
        self._ascii = Counter()
        return merged


def _arrow_split(data: bytes):
    """An ASCII buffer's words as an Arrow string array (with empty strings where spaces
    run: value_counts counts them, and the flush drops them)."""
    mapped = data.translate(_ASCII_TABLE)  # lowercase letters, digits, spaces: valid UTF-8
    offsets = _pa.array([0, len(mapped)], _pa.int64()).buffers()[1]
    text = _pa.Array.from_buffers(_pa.large_string(), 1, [None, offsets, _pa.py_buffer(mapped)])
    return _pc.ascii_split_whitespace(text).flatten()


def count_bytes(data: bytes) -> Counter[str]:
    """Count one buffer that starts and ends on a safe boundary (or is a whole file)."""
    tally = Tally()
    tally.add(data)
    return tally.counts()


# Marks, one byte per input byte: 0x80 non-ASCII, 0x20 ASCII whitespace, 0x00 anything else;
# then memchr-speed find/rfind locate tokens without a Python loop over bytes.
_MARKS = bytes(0x80 if c >= 0x80 else 0x20 if c in ASCII_WHITESPACE else 0 for c in range(256))


def split_non_ascii(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """Split ``data`` into pure-ASCII parts and the maximal runs of non-whitespace bytes that
    contain a non-ASCII byte ("tokens"). Both lists, joined with spaces, count exactly as the
    whole: every cut is at ASCII whitespace."""
    marks = data.translate(_MARKS)
    rest: list[bytes] = []
    tokens: list[bytes] = []
    pos = 0
    hit = marks.find(b"\x80")
    while hit >= 0:
        start = marks.rfind(b" ", pos, hit) + 1 or pos
        stop = marks.find(b" ", hit)
        stop = len(data) if stop < 0 else stop
        rest.append(data[pos:start])
        tokens.append(data[start:stop])
        pos = stop
        hit = marks.find(b"\x80", pos)
    rest.append(data[pos:])
    return rest, tokens
