"""The shuffle: a map task's counts cut into R partitions, each a compact, compressed,
checksummed piece; a reduce task's sum of its partition's pieces.

A word's partition is ``crc32(utf-8 bytes) mod R``: the same in every process, machine and Python
version (``hash()`` is salted per process). A piece is

    b"WCP2" | crc32 of the rest (4 bytes, big-endian) | zlib(the words seen once, "\\n"-joined,
        b"\\0", the other words, "\\n"-joined, b"\\0", their counts as decimal, " "-joined)

(a word is a run of alphanumeric characters: never a newline, a NUL or a space). Words seen
once come apart because a high-cardinality map output is mostly such words, and the reduce
counts them with ``Counter``'s C helper instead of a Python loop. The reduce verifies the
checksum before it decompresses, and that the words of the piece belong to its partition (every
``CHECK_EVERY``-th word, the first and the last: a map that partitioned with another function,
or a piece under another partition's name, has nearly every word elsewhere), so a piece damaged
in Redis, or sent to the wrong partition, fails the reduce task by name instead of counting
wrong.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping

MAGIC = b"WCP2"
LEVEL = 1  # zlib: the fastest level already shrinks word lists ~3x
MAX_REDUCES = 256
DEFAULT_PER_WORKER = 2  # R = 2 x workers: an idle worker can still take a straggler's partition
CHECK_EVERY = 64  # the reduce checks the partition of every 64th word of a piece

try:  # the C helper behind Counter.update(iterable)
    from collections import _count_elements as _count_into  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - non-CPython
    def _count_into(mapping, iterable) -> None:  # type: ignore[misc]
        Counter.update(mapping, iterable)


class CorruptPiece(ValueError):
    """A partition piece that fails its checksum, does not decode, or holds a word of another
    partition."""


def default_reduces(workers: int) -> int:
    """R when the user gives none: two reduce tasks per worker (at least 2, at most
    MAX_REDUCES), so that every worker reduces and a slow one's partition is backed up while
    the others finish theirs."""
    return max(2, min(MAX_REDUCES, DEFAULT_PER_WORKER * max(workers, 1)))


def partition_of(word: str, reduces: int) -> int:
    return zlib.crc32(word.encode("utf-8", "surrogatepass")) % reduces


def split(counts: Mapping[str, int], reduces: int) -> list[dict[str, int]]:
    """The counts cut into ``reduces`` partitions by ``partition_of``."""
    parts: list[dict[str, int]] = [{} for _ in range(reduces)]
    crc = zlib.crc32
    for word, n in counts.items():
        parts[crc(word.encode("utf-8", "surrogatepass")) % reduces][word] = n
    return parts


def encode(part: Mapping[str, int]) -> bytes:
    once = [w for w, n in part.items() if n == 1]
    more = [w for w, n in part.items() if n != 1]
    body = zlib.compress(
        "\n".join(once).encode("utf-8", "surrogatepass") + b"\0"
        + "\n".join(more).encode("utf-8", "surrogatepass") + b"\0"
        + " ".join([str(part[w]) for w in more]).encode(), LEVEL)
    return MAGIC + struct.pack(">I", zlib.crc32(body)) + body


def pieces(counts: Mapping[str, int], reduces: int) -> list[bytes]:
    """A map task's output: one encoded piece per partition, partition 0 first."""
    return [encode(p) for p in split(counts, reduces)]


def _words(blob: bytes) -> list[str]:
    return blob.decode("utf-8", "surrogatepass").split("\n") if blob else []


def decode(piece: bytes, partition: int, reduces: int
           ) -> tuple[list[str], list[str], list[int]]:
    """A piece's words seen once, and its other words with their counts, after checking it
    (CorruptPiece)."""
    if len(piece) < 8 or piece[:4] != MAGIC:
        raise CorruptPiece("not a partition piece (bad header)")
    body = piece[8:]
    if zlib.crc32(body) != struct.unpack(">I", piece[4:8])[0]:
        raise CorruptPiece("checksum mismatch")
    try:
        once_blob, more_blob, counts_blob = zlib.decompress(body).split(b"\0")
        once, more = _words(once_blob), _words(more_blob)
        counts = list(map(int, counts_blob.split()))
    except (zlib.error, ValueError) as exc:
        raise CorruptPiece(f"does not decode: {exc}") from None
    if len(more) != len(counts):
        raise CorruptPiece(f"{len(more)} words but {len(counts)} counts")
    crc = zlib.crc32
    for words in (once, more):
        sample = words[::CHECK_EVERY] + words[-1:]
        if any(crc(w.encode("utf-8", "surrogatepass")) % reduces != partition for w in sample):
            raise CorruptPiece(f"holds words of another partition than {partition}")
    return once, more, counts


def reduce(pieces_: Iterable[tuple[str, bytes]], partition: int, reduces: int
           ) -> Counter[str]:
    """Sum one partition's pieces ((name, piece) pairs: the name goes into the error of a
    damaged one)."""
    total: Counter[str] = Counter()
    for name, piece in pieces_:
        try:
            once, more, counts = decode(piece, partition, reduces)
        except CorruptPiece as exc:
            raise CorruptPiece(f"partition piece {name}: {exc}") from None
        _count_into(total, once)  # (C: no Python frame per word)
        get = total.get
        for w, n in zip(more, counts, strict=True):
            total[w] = get(w, 0) + n
    return total
