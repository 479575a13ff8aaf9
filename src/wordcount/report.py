"""Output formats shared by every command that produces counts (count, submit, run)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

from . import apps
from .apps import TEXT_WORD_MAX, App, shorten, top  # noqa: F401 - (re-exported)
from .engines import Result
from .exceptions import UsageError, WordcountError


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Count descending, then word ascending by code point."""
    return [(w, counts[w]) for w in ranked_words(counts)]


def ranked_words(counts: Counter[str]) -> list[str]:
    """The words in ``ranked`` order, sorted without a Python key function: by word, then
    (stably: ``reverse`` keeps equal elements in order) by count descending."""
    words = sorted(counts)
    words.sort(key=counts.__getitem__, reverse=True)
    return words


def _special(path: str) -> bool:
    """A symlink, a device or a FIFO (/dev/stdout, a link to one): written in place, never
    replaced."""
    return os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)
                                    and not os.path.isdir(path))


def check_output(path: str | None, option: str) -> None:
    """Refuse, before any work is done, an output file that could not be written: the
    temporary file the final write goes through is created and removed again."""
    if path is None:
        return
    try:
        if not path or "\0" in path:
            raise UsageError(f"{option}: not a file path: {path!r}")
        if os.path.isdir(path):
            raise UsageError(f"{option} {path}: is a directory")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"{option} {path}: no such directory: {parent}")
        if _special(path):
            if not os.access(path, os.W_OK):
                raise UsageError(f"{option} {path}: not writable")
            return
        probe = f"{path}.tmp.{os.getpid()}"
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot be written: "
                         f"{e.strerror or type(e).__name__}") from None


ARROW_MIN_WORDS = 10_000  # fewer: the plain Python writer (no import, same bytes)


def _arrow_table(counts: Counter[str]):
    """The counts as an Arrow table in ``ranked`` order (UTF-8 byte order is code point
    order), or None: pyarrow missing, a small table, a word Arrow cannot hold as UTF-8 (a lone
    surrogate) or one that the TSV cannot carry unquoted (never a word of the word rule)."""
    if len(counts) < ARROW_MIN_WORDS:
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return None
    try:
        words = pa.array(list(counts), pa.large_string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return None
    if pc.any(pc.match_substring_regex(words, '[\t\n\r"]')).as_py():
        return None
    table = pa.table({"w": words, "n": pa.array(list(counts.values()), pa.int64())})
    return table.take(pc.sort_indices(table, sort_keys=[("n", "descending"),
                                                         ("w", "ascending")]))


def replace_atomically(path: str, write: Callable[[IO[Any]], None], what: str = "the counts",
                       binary: bool = False) -> None:
    """``write`` into a temporary file beside ``path``, then replace ``path`` with it (a device
    or a FIFO, such as /dev/stdout, is written in place); UTF-8 text unless ``binary``."""
    tmp = path if _special(path) else f"{path}.tmp.{os.getpid()}"
    try:
        if binary:
            with open(tmp, "wb") as fb:
                write(fb)
        else:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                write(f)
        if tmp != path:
            os.replace(tmp, path)
    except OSError as e:
        if tmp != path and os.path.exists(tmp):
            os.remove(tmp)
        raise WordcountError(f"cannot write {what} to {path}: "
                             f"{e.strerror or type(e).__name__}") from None


def write_counts(counts: Counter[str], path: str) -> None:
    """Every distinct word as ``word<TAB>count``, UTF-8, atomically replaced (a device or a
    FIFO, such as /dev/stdout, is written in place); a path ending in ``.json``: one JSON object
    ``{word: count}`` in the same order."""
    if path.endswith(".json"):
        replace_atomically(path, lambda f: json.dump(
            dict(zip(words := ranked_words(counts), map(counts.__getitem__, words),
                     strict=True)), f, ensure_ascii=False))
        return
    table = _arrow_table(counts)
    if table is not None:  # sorted and written by Arrow: 2 M lines in 0.9 s, not 2.4 s
        import pyarrow.csv as pcsv

        replace_atomically(path, lambda fb: pcsv.write_csv(table, fb, pcsv.WriteOptions(
            include_header=False, delimiter="\t", quoting_style="none")), binary=True)
        return

    def lines(f: IO[str]) -> None:
        words, line = ranked_words(counts), "{}\t{}\n".format
        for i in range(0, len(words), 100_000):  # (no Python frame per line)
            part = words[i:i + 100_000]
            f.write("".join(map(line, part, map(counts.__getitem__, part))))
    replace_atomically(path, lines)


def as_json(result: Result, k: int, extra: dict[str, Any] | None = None,
            app: App | None = None) -> dict[str, Any]:
    app = app or apps.get()
    doc: dict[str, Any] = {
        "top": app.top(result.counts, k),
        "total": result.total,
        "distinct": app.distinct(result.counts),
        "files": result.files,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 6),
        "errors": [e.as_dict() for e in result.errors],
    }
    if app.name != apps.DEFAULT:
        doc["app"] = app.name
        doc["keys"] = len(result.counts)
    if extra:
        doc.update(extra)
    return doc


def print_text(result: Result, k: int, out: IO[str] | None = None,
               app: App | None = None) -> None:
    out = out or sys.stdout
    app = app or apps.get()
    app.text(app.top(result.counts, k), out)
    mb_s = result.bytes / result.seconds / 1e6 if result.seconds > 0 else 0.0
    out.write(
        f"-- {result.total:,} {app.total_noun}, {app.distinct(result.counts):,} "
        f"{app.key_noun}, {result.files:,} files, "
        f"{result.bytes:,} bytes in {result.seconds:.2f} s ({mb_s:.1f} MB/s)\n"
    )


def print_errors(result: Result, err: IO[str] | None = None) -> None:
    err = err or sys.stderr
    for e in result.errors:
        err.write(f"wordcount: {e.path}: {e.error}\n")


def emit(result: Result, k: int, as_json_doc: bool, counts_out: str | None,
         extra: dict[str, Any] | None = None, out: IO[str] | None = None,
         app: App | None = None) -> None:
    out = out or sys.stdout
    app = app or apps.get()
    print_errors(result)
    failed: WordcountError | None = None
    if counts_out:
        try:
            app.write(result.counts, counts_out)
        except WordcountError as e:  # e.g. the disk filled up: still show the result, then fail
            failed = e
    if as_json_doc:
        json.dump(as_json(result, k, extra, app), out, ensure_ascii=False)
        out.write("\n")
    else:
        print_text(result, k, out, app)
    if failed is not None:
        raise failed


# -- operating jobs and workers (wordcount jobs / status / workers) ---------------------------

def _age(seconds: float) -> str:
    """3.2s, 4m05s, 2h10m, 3d04h: short, for tables."""
    s = int(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _table(header: list[str], rows: list[list[str]], out: IO[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def print_jobs(docs: list[dict[str, Any]], now_ms: int, out: IO[str] | None = None) -> None:
    """The rows of ``jobs.JobRow.as_dict``: the same figures as their JSON, as a table."""
    out = out or sys.stdout
    if not docs:
        out.write("no job in Redis\n")
        return
    rows = []
    for d in docs:
        age = _age((now_ms - d["created_ms"]) / 1000) if d["created_ms"] else "-"
        state = f"{d['state']} ({d['phase']})" if d["state"] == "running" and d.get("phase") \
            else d["state"]
        rows.append([d["job"], state, f"{d['done']}/{d['total']}", str(d["dead"]),
                     str(d["pending"]), f"{d['done_bytes']:,}/{d['bytes']:,}",
                     f"{d['words']:,}", f"{d['distinct']:,}", age, f"{d['seconds']:.1f}s",
                     d["queue"], d.get("app", "wordcount")])
    _table(["JOB", "STATE", "DONE", "DEAD", "HELD", "BYTES", "WORDS", "DISTINCT", "AGE",
            "TIME", "QUEUE", "APP"], rows, out)


def print_workers(docs: list[dict[str, Any]], now_ms: int, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    if not docs:
        out.write("no worker has reported (none started, or none reached this Redis)\n")
        return
    rows = []
    for d in docs:
        task = f"{d['job']} {d['task']}" if d["task"] else "-"
        held = _age((now_ms - d["task_since_ms"]) / 1000) if d["task_since_ms"] else "-"
        state = "LOST" if d["lost"] else f"{d['state']}?" if d.get("silent") else d["state"]
        if d["lost"]:  # what it held is stolen or will be: it holds nothing; it ran until its
            task, held = "-", "-"  # last report (UP stops counting there)
        up_to = d["beat_ms"] if d["lost"] else now_ms
        rows.append([d["name"], state, task, held, _age(d["age_s"]), str(d["taken"]),
                     str(d["applied"]), str(d["duplicates"]), str(d["dead"]),
                     _age((up_to - d["started_ms"]) / 1000)])
    _table(["WORKER", "STATE", "TASK", "FOR", "BEAT", "TAKEN", "APPLIED", "DUPL", "DEAD",
            "UP"], rows, out)
