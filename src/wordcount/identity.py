"""What a planned input file is, and the check that a worker reads that very file.

The client records each input file's identity when it plans a job, and every task carries the
identity of its file (``Task.ident``). A worker checks it before it reads the task's range and
again after (``check``), and reports the bytes it actually read; a mismatch is a named failure
of that task ("input changed since planning": the task is set aside, and the client prints no
result that would mix two versions of a file), never a table counted from other bytes.

Two fingerprints (``submit --fingerprint``):

- ``stat`` (default): size, mtime, ctime, inode and device, as ``os.stat`` gives them (all of
  them make the plan id). A worker that reads the job's files where the client planned them
  checks size, mtime, inode and device (not ctime: a chmod or a file moved away and back changes
  it, not the bytes); a worker whose data root maps the job's root elsewhere (a bind mount, an
  rsync -a copy: other inodes and devices) checks size and mtime, which a copy that keeps times
  preserves. A rewrite that puts the mtime back (touch -d) is seen only by ``content``.
- ``content``: the size and a BLAKE2b hash of the task's own byte range (the client reads every
  input once to plan; each worker hashes the bytes it counts): independent of any metadata.

Text form (what Redis stores): ``stat:<size>:<mtime_ns>:<ctime_ns>:<ino>:<dev>`` or
``content:<size>:<hex digest of the range>``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from .planner import FileChangedError, Task, describe

FINGERPRINTS = ("stat", "content")
_READ = 8 << 20


def range_hash() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


@dataclass(frozen=True)
class Identity:
    kind: str  # one of FINGERPRINTS
    size: int
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    dev: int = 0
    digest: str = ""  # content: the hash of the task's byte range

    @classmethod
    def of_stat(cls, st: os.stat_result) -> Identity:
        return cls("stat", st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def text(self) -> str:
        if self.kind == "content":
            return f"content:{self.size}:{self.digest}"
        return f"stat:{self.size}:{self.mtime_ns}:{self.ctime_ns}:{self.ino}:{self.dev}"

    @classmethod
    def parse(cls, text: str) -> Identity | None:
        """The identity a task carries, or None when it carries none (a local task)."""
        kind, _, rest = text.partition(":")
        if kind == "content":
            size, _, digest = rest.partition(":")
            return cls("content", int(size), digest=digest)
        if kind == "stat":
            size, mtime, ctime, ino, dev = (int(v) for v in rest.split(":"))
            return cls("stat", size, mtime, ctime, ino, dev)
        return None

    def differences(self, st: os.stat_result, mapped: bool) -> list[str]:
        """How the file ``st`` describes differs from this identity ([] when it is the same
        file, as far as this fingerprint can tell); ``mapped``: the worker reads the file under
        its own data root, where only size and mtime can match."""
        found = Identity.of_stat(st)
        fields = ["size"] if self.kind == "content" else (
            ["size", "mtime_ns"] if mapped else ["size", "mtime_ns", "ino", "dev"])
        return [f"{name} {getattr(self, name)} -> {getattr(found, name)}" for name in fields
                if getattr(self, name) != getattr(found, name)]


def check(expected: Identity | None, st: os.stat_result, mapped: bool, path: str) -> None:
    """Raise FileChangedError when the file is not the one the plan recorded."""
    if expected is None:
        return
    diff = expected.differences(st, mapped)
    if diff:
        raise FileChangedError(0, f"the file differs from the plan ({', '.join(diff)})", path)


def file_identity(path: str, fingerprint: str = "stat") -> str:
    """What goes into the plan id for one file: its stat identity, or (content) its size and a
    hash of all its bytes. An unreadable file gets a marker (the worker reports it as a dead
    letter)."""
    try:
        st = os.stat(path)
        if fingerprint != "content":
            return Identity.of_stat(st).text()
        digest = range_hash()
        with open(path, "rb") as f:
            while block := f.read(_READ):
                digest.update(block)
        return f"content:{st.st_size}:{digest.hexdigest()}"
    except OSError as exc:
        return f"unreadable:{describe(exc)}"


def task_identities(path: str, tasks: Sequence[Task], fingerprint: str = "stat") -> list[str]:
    """The identity each task of one file carries (``tasks``: that file's, in file order, as
    the planner cut them): the file's stat identity, or (content) its size and a hash of each
    task's own range, from one pass over the file."""
    try:
        st = os.stat(path)
        if fingerprint != "content":
            return [Identity.of_stat(st).text()] * len(tasks)
        out = []
        with open(path, "rb") as f:
            for t in tasks:
                f.seek(t.start)
                digest, left = range_hash(), t.nbytes
                while left > 0 and (block := f.read(min(_READ, left))):
                    digest.update(block)
                    left -= len(block)
                out.append(Identity("content", st.st_size, digest=digest.hexdigest()).text())
        return out
    except OSError:
        return [""] * len(tasks)  # unreadable: the worker reports the OS error itself
