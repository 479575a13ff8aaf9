"""Inputs → tasks, and tasks → buffers.

A *task* is a byte range ``[start, end)`` of one file. Files larger than the chunk size are split;
a boundary is only ever placed right after an ASCII whitespace byte, so no word, no UTF-8 sequence
and no lowercasing context is cut (see ``words``). A range with no whitespace grows until it finds
one (or the end of the file). Inside a task, buffers are cut the same way or, in a stretch with no
whitespace, right after ASCII punctuation that is just as safe (``CUT_BYTES``); only a single
word longer than the buffer makes a buffer grow.

Every engine, local or distributed, plans with ``plan`` and reads with ``read_range``.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .exceptions import NoInputError

DEFAULT_CHUNK_SIZE = 64 << 20  # bytes per task
READ_BUFFER = 8 << 20  # bytes read at a time inside a task: bounds a worker's memory
# Bytes a buffer may end with: ASCII (never inside a UTF-8 sequence), not alphanumeric (never
# inside a word), neither cased nor case-ignorable (so str.lower()'s one context rule, the Greek
# final sigma, sees the same neighbours on both sides of the cut). ASCII whitespace, and every
# other ASCII punctuation/control byte except ' . : ^ ` (case-ignorable: "ΑΣ.Β" lowercases to
# "ασ.β" whole, but "ας." + "β" cut). Proven by a property test (tests/test_bad_input.py).
CUT_BYTES = bytes(c for c in range(128) if not chr(c).isalnum() and chr(c) not in "'.:^`")
_CUT_MARKS = bytes(32 if c in CUT_BYTES else 120 for c in range(256))  # cut → " ", else "x"

ASCII_WHITESPACE = b" \t\n\r\v\f"
_WS_RE = re.compile(rb"[ \t\n\r\v\f]")


def last_whitespace(data: bytes | memoryview) -> int:
    """Index of the last ASCII whitespace byte in ``data``, or -1."""
    n = len(data)
    lo = max(0, n - 4096)
    while True:
        window = bytes(data[lo:n])
        best = max(window.rfind(c) for c in ASCII_WHITESPACE)
        if best >= 0:
            return lo + best
        if lo == 0:
            return -1
        n, lo = lo, max(0, lo - (1 << 20))


def first_whitespace(data: bytes, pos: int = 0) -> int:
    """Index of the first ASCII whitespace byte at or after ``pos``, or -1."""
    m = _WS_RE.search(data, pos)
    return m.start() if m else -1


_PROBE = 64 << 10  # bytes read at a time while looking for a boundary


@dataclass(frozen=True, order=True)
class Task:
    path: str  # as given to the planner (absolute for local jobs, root-relative in Redis)
    start: int
    end: int
    # the identity of its file when it was planned (wordcount.identity; "" for local tasks)
    ident: str = field(default="", compare=False)
    # A packed task (``pack``): the small ranges it counts, each a Task of its own (with its
    # own file identity); then path is "", start 0 and end the bytes of all of them.
    parts: tuple[Task, ...] = field(default=(), compare=False)

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    def ranges(self) -> tuple[Task, ...]:
        """The byte ranges this task counts: its parts, or itself."""
        return self.parts or (self,)

    def describe(self) -> str:
        """For messages: ``path [start:end]``, or a pack's files."""
        if not self.parts:
            return f"{self.path} [{self.start}:{self.end}]"
        first, last = self.parts[0].path, self.parts[-1].path
        return f"{len(self.parts)} packed ranges ({first} .. {last}, {self.nbytes} bytes)"


@dataclass(frozen=True)
class InputError:
    path: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "error": self.error}


def describe(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def _walk(top: str, files: list[str], errors: list[InputError]) -> None:
    def onerror(exc: OSError) -> None:
        errors.append(InputError(exc.filename or top, describe(exc)))

    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):  # symlinks inside a walk are skipped
                files.append(path)


def discover(inputs: Sequence[str]) -> tuple[list[str], list[InputError]]:
    """Expand files, directories (recursively) and glob patterns into a sorted list of files.

    Raises NoInputError when nothing at all matched, or the inputs hold no file at all (empty
    directories: nothing to count). Inputs that exist but can't be used are returned as errors;
    the caller counts the rest.
    """
    files: list[str] = []
    errors: list[InputError] = []
    matched_any = False
    for item in inputs:
        if os.path.lexists(item):
            candidates = [item]
        elif glob.has_magic(item):
            candidates = sorted(glob.glob(item, recursive=True))
        else:
            candidates = []
        if not candidates:
            errors.append(InputError(item, "no such file, directory or match"))
            continue
        matched_any = True
        for path in candidates:
            if os.path.isdir(path):
                _walk(path, files, errors)
            elif os.path.isfile(path):
                files.append(path)
            elif not os.path.exists(path):
                errors.append(InputError(path, "broken symbolic link"))
            else:
                errors.append(InputError(path, "not a regular file"))
    if not matched_any:
        raise NoInputError(f"no input matched: {' '.join(inputs) or '(none given)'}")
    if not files:
        why = "; ".join(f"{e.path}: {e.error}" for e in errors[:3])
        raise NoInputError(f"nothing to count: no file in {' '.join(inputs)}"
                           + (f" ({why})" if why else ""))
    seen: set[str] = set()
    unique: list[str] = []
    for path in files:  # the same file reached twice (a dir and a glob) is counted once
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(os.path.abspath(path))
    return sorted(unique), errors


def split_file(path: str, size: int, chunk_size: int, name: str | None = None,
               lines: bool = False) -> list[Task]:
    """Byte-range tasks for one file of ``size`` bytes, cut right after ASCII whitespace (or,
    ``lines``: right after a newline, for an app whose records are lines)."""
    if chunk_size <= 0:
        raise ValueError("chunk size must be positive")
    name = path if name is None else name
    if size <= chunk_size:
        return [Task(name, 0, size)]
    tasks: list[Task] = []
    start = 0
    with open(path, "rb") as f:
        while start < size:
            target = start + chunk_size
            if target >= size:
                tasks.append(Task(name, start, size))
                break
            end = _boundary_at_or_after(f, target, size, lines)
            tasks.append(Task(name, start, end))
            start = end
    return tasks


def _boundary_at_or_after(f, target: int, size: int, lines: bool = False) -> int:
    """Smallest position p >= target with data[p-1] ASCII whitespace (``lines``: a newline),
    or size."""
    pos = target - 1
    while pos < size:
        f.seek(pos)
        probe = f.read(_PROBE)
        if not probe:
            return size
        i = probe.find(b"\n") if lines else first_whitespace(probe)
        if i >= 0:
            return pos + i + 1
        pos += len(probe)
    return size


def plan(
    files: Sequence[str], chunk_size: int = DEFAULT_CHUNK_SIZE, lines: bool = False
) -> tuple[list[Task], list[InputError]]:
    """Tasks for every readable file (``lines``: ranges cut after a newline); files that can't
    be opened become errors. Each file is opened here, so that one unreadable before the job
    begins is reported like the serial engine reports it, and never planned: a task is the
    unit of failure (a pack fails whole), so a file that a worker cannot read is one that
    changed after planning, and ``requeue`` counts its task once the cause is fixed."""
    tasks: list[Task] = []
    errors: list[InputError] = []
    for path in files:
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            size = os.stat(path).st_size
            tasks.extend(split_file(path, size, chunk_size, lines=lines))
        except OSError as exc:
            errors.append(InputError(path, describe(exc)))
    return tasks, errors


DEFAULT_PACK_SIZE = 4 << 20  # small ranges are packed into tasks of up to this many bytes
MAX_PACK_PARTS = 2048  # ranges per packed task at most: bounds a task's spec (and its stream entry)


def pack(tasks: Sequence[Task], target: int = DEFAULT_PACK_SIZE,
         max_parts: int = MAX_PACK_PARTS) -> list[Task]:
    """Pack runs of consecutive small tasks (each under ``target`` bytes) into tasks of up to
    ``target`` bytes and ``max_parts`` ranges, in plan order: 10,000 files of 1 KiB are then a
    few tasks, not 10,000 claims, heartbeats and commits. A task of ``target`` bytes or more,
    and a run of one, stays as it is; ``target`` 0 packs nothing. Each part keeps its own
    path, range and identity: a worker checks and counts them one by one."""
    if target <= 0:
        return list(tasks)
    out: list[Task] = []
    run: list[Task] = []
    size = 0

    def close() -> None:
        nonlocal size
        if len(run) == 1:
            out.append(run[0])
        elif run:
            out.append(Task("", 0, size, "", tuple(run)))
        run.clear()
        size = 0

    for t in tasks:
        if t.parts:
            raise ValueError("pack: a task is packed already")
        if t.nbytes >= target:
            close()
            out.append(t)
            continue
        if run and (size + t.nbytes > target or len(run) >= max_parts):
            close()
        run.append(t)
        size += t.nbytes
    close()
    return out


class FileChangedError(OSError):
    """The file is not what the plan recorded: shorter than planned, or another identity
    (wordcount.identity)."""


def last_cut(data: bytes) -> int:
    """Index of the last byte of ``data`` a buffer may end with (``CUT_BYTES``), or -1:
    whitespace preferred (the common case, and the cheap search)."""
    cut = last_whitespace(data)
    return cut if cut >= 0 else data.translate(_CUT_MARKS).rfind(b" ")


def read_range(
    path: str, start: int, end: int, buffer_size: int = READ_BUFFER, f=None
) -> Iterator[bytes]:
    """Yield ``[start, end)`` of a file in buffers that each end right after a ``CUT_BYTES``
    byte (the last one ends at ``end``). Each is at most ``buffer_size`` bytes, unless one word
    (a run with no such byte) is longer: that word is found first, then read whole, once, and
    counted as one word however long (memory: the word, plus one buffer). ``f``: the file,
    already open (binary) at ``path``; else it is opened here."""
    if f is None:
        with open(path, "rb") as opened:
            yield from read_range(path, start, end, buffer_size, opened)
        return
    f.seek(start)
    offset = start  # file offset of the first byte not yet yielded
    tail = b""  # the bytes from offset on that were read but not yet yielded (no cut)
    while offset + len(tail) < end:
        block = f.read(min(buffer_size - len(tail), end - offset - len(tail)))
        if not block:
            raise FileChangedError(0, f"file is shorter than planned ({end} bytes)", path)
        data = tail + block if tail else block
        block = tail = b""
        if offset + len(data) == end:
            yield data
            return
        cut = last_cut(data)
        if cut >= 0:
            tail = data[cut + 1 :]
            yield data[: cut + 1] if tail else data
            offset += cut + 1
        elif len(data) < buffer_size:  # a short read
            tail = data
        else:  # one word longer than the buffer
            stop = _word_end(f, offset + len(data), end, buffer_size, path)
            data = b""
            f.seek(offset)
            word = f.read(stop - offset)
            if len(word) < stop - offset:
                raise FileChangedError(0, f"file is shorter than planned ({end} bytes)",
                                       path)
            yield word
            offset = stop


def _word_end(f, pos: int, end: int, probe_size: int, path: str) -> int:
    """Position right after the first ``CUT_BYTES`` byte at or after ``pos`` (or ``end``)."""
    f.seek(pos)
    while pos < end:
        probe = f.read(min(probe_size, end - pos))
        if not probe:
            raise FileChangedError(0, f"file is shorter than planned ({end} bytes)", path)
        i = probe.translate(_CUT_MARKS).find(b" ")
        if i >= 0:
            return pos + i + 1
        pos += len(probe)
    return end


def common_root(files: Sequence[str]) -> str:
    if not files:
        return os.getcwd()
    root = os.path.commonpath([os.path.dirname(p) for p in files])
    return root


def resolve_under(root: str, relpath: str) -> str:
    """Resolve a task path under the data root, refusing anything that escapes it
    (``..``, absolute paths, symlinks pointing out)."""
    return resolver(root)(relpath)


def resolver(root: str) -> Callable[[str], str]:
    """``resolve_under`` for many paths under one root (a packed task's): the root is resolved
    once."""
    real_root = os.path.realpath(root)

    def resolve(relpath: str) -> str:
        if os.path.isabs(relpath) or relpath.startswith("~"):
            raise PermissionError(0, "absolute path in task refused", relpath)
        real = os.path.realpath(os.path.join(real_root, relpath))
        if real != real_root and not real.startswith(real_root + os.sep):
            raise PermissionError(0, "path escapes the data root", relpath)
        return real
    return resolve
