"""Output formats shared by every command that produces counts (count, submit, run)."""

from __future__ import annotations

import heapq
import json
import os
import sys
from collections import Counter
from typing import IO, Any

from .engines import Result


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Count descending, then word ascending by code point."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def top(counts: Counter[str], k: int) -> list[tuple[str, int]]:
    if k <= 0:
        return []
    return heapq.nsmallest(k, counts.items(), key=lambda kv: (-kv[1], kv[0]))


def write_counts(counts: Counter[str], path: str) -> None:
    """Every distinct word as ``word<TAB>count``, UTF-8, atomically replaced."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{w}\t{n}\n" for w, n in ranked(counts))
    os.replace(tmp, path)


def as_json(result: Result, k: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "top": [[w, n] for w, n in top(result.counts, k)],
        "total": result.total,
        "distinct": len(result.counts),
        "files": result.files,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 6),
        "errors": [e.as_dict() for e in result.errors],
    }
    if extra:
        doc.update(extra)
    return doc


def print_text(result: Result, k: int, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    rows = top(result.counts, k)
    width = max((len(w) for w, _ in rows), default=4)
    for word, n in rows:
        out.write(f"{word:<{width}}  {n:>12,}\n")
    mb_s = result.bytes / result.seconds / 1e6 if result.seconds > 0 else 0.0
    out.write(
        f"-- {result.total:,} words, {len(result.counts):,} distinct, {result.files:,} files, "
        f"{result.bytes:,} bytes in {result.seconds:.2f} s ({mb_s:.1f} MB/s)\n"
    )


def print_errors(result: Result, err: IO[str] | None = None) -> None:
    err = err or sys.stderr
    for e in result.errors:
        err.write(f"wordcount: {e.path}: {e.error}\n")


def emit(result: Result, k: int, as_json_doc: bool, counts_out: str | None,
         extra: dict[str, Any] | None = None, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    print_errors(result)
    if counts_out:
        write_counts(result.counts, counts_out)
    if as_json_doc:
        json.dump(as_json(result, k, extra), out, ensure_ascii=False)
        out.write("\n")
    else:
        print_text(result, k, out)
