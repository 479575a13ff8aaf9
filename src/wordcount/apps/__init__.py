"""The app seam: what the framework asks of an app, and how it finds one by name.

The framework (planner, engines, worker, queue, client) moves byte ranges, commits key/value
pairs exactly once and sums them; it never looks inside an app. An app says:

- **map** -- how the bytes of one document (a file, or a byte range of one) become pairs:
  ``mapper(doc)`` returns a ``Mapper`` that is fed the range's buffers (``add``) and gives its
  pairs, already combined (``counts``: key -> integer). ``doc`` is the file's path relative to
  the job's root. ``joins_documents``: the pairs do not depend on ``doc``, so the small files of
  a packed task may go through one mapper (word count), or not (the index: a mapper per file).
- **reduce** -- always addition of integers. That is what makes a commit idempotent and
  commutative in Redis (ZINCRBY/ZADD on one sorted set, staged and applied exactly once), and
  what the client's self-check relies on: the table's values sum to the values the accepted
  commits reported. An app whose reduce is not a sum does not fit this framework.
- **store and print** -- the result is a table key -> integer (a Redis sorted set); the app
  writes it (``write``: the full table, ``--counts-out``), shows its top (``top``/``text``),
  and answers point queries from Redis (``lookup``).
- **the oracle** -- ``reference(data, doc)``: the plainest possible map of one whole range, the
  sequential truth the tests compare every engine against.

- **iterate** (an iterative app, ``iterative``): ``iterate(run_round, options)`` runs rounds,
  each one job of the framework under an app spec of its own (``name?key=value&...``: the
  round's parameters, ``configure``), and reads the finished tables of earlier rounds
  (``bind``: a reader of finished jobs' tables, given by the worker). Each round is exactly once
  because it is a job; the job's end is the barrier. See ``apps/pagerank.py``.

Apps are found by name (``APPS``) or by import path (``package.module:attribute``, an App
instance or class), with ``?parameters`` for a configured one; ``wordcount apps`` lists the
named ones. A user's own app must be importable
wherever a worker runs (on the compose clusters: in the image, see README "Apps").
"""

from __future__ import annotations

import heapq
import importlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from typing import IO, Any, Protocol

from ..exceptions import EXIT_INPUT_ERRORS, UsageError, WordcountError

DEFAULT = "wordcount"
TEXT_WORD_MAX = 60  # characters of a word shown in text output (TSV and JSON: every one)
# name -> "module:attribute" (imported only when the app is used)
APPS = {
    "wordcount": "wordcount.apps.wordcount:APP",
    "index": "wordcount.apps.index:APP",
    "pagerank": "wordcount.apps.pagerank:APP",
    "links": "wordcount.apps.pagerank:LINKS",
}


class TaskError(WordcountError):
    """A task the app cannot map (a malformed record, an earlier round's table missing): the
    worker sets the task aside with this message, never retries it forever (and a client
    whose rounds end so exits 3)."""

    exit_code = EXIT_INPUT_ERRORS


# A reader of finished jobs' tables (job name -> its table), for apps that read earlier rounds
TableReader = Callable[[str], "Counter[str]"]


def top(counts: Counter[str], k: int) -> list[tuple[str, int]]:
    if k <= 0:
        return []
    return heapq.nsmallest(k, counts.items(), key=lambda kv: (-kv[1], kv[0]))


def shorten(word: str, limit: int = TEXT_WORD_MAX) -> str:
    """A word as text output shows it: a very long one cut, with its length."""
    return word if len(word) <= limit else f"{word[:limit]}…({len(word):,} chars)"


class Mapper(Protocol):
    def add(self, data: bytes) -> None:
        """One buffer of the range (cut only where ``planner.CUT_BYTES`` allows)."""

    def counts(self) -> Counter[str]:
        """The pairs of everything added, combined (each key once)."""


class App:
    """The interface (and the defaults an app may keep)."""

    name = ""
    summary = ""
    joins_documents = True
    line_records = False  # its records are lines: ranges are cut after a newline
    iterative = False  # it runs rounds of jobs (``iterate``), not one job
    key_noun, total_noun = "keys", "values"  # for the summary line: "-- 5 words, 3 distinct"

    def mapper(self, doc: str) -> Mapper:
        raise NotImplementedError

    def configure(self, params: dict[str, str]) -> App:
        """This app with a round's parameters (the ``?...`` of its spec)."""
        raise UsageError(f"the {self.name} app takes no parameters")

    def bind(self, tables: TableReader) -> None:
        """Where its mappers read earlier jobs' tables (a worker's Redis)."""

    def iterate(self, run_round: Callable[[str, str, bool], Any], options: dict[str, Any]
                ) -> tuple[Counter[str], dict[str, Any]]:
        """An iterative app's rounds: ``run_round(spec, suffix, fresh)`` runs one job of the
        same inputs under app ``spec`` (named the base job's name + ``suffix``; ``fresh``:
        replacing an incarnation that exists) and returns (its Result, the job's name);
        returns the final table and what the JSON result adds."""
        raise NotImplementedError

    def reference(self, data: bytes, doc: str) -> Counter[str]:
        raise NotImplementedError

    def top(self, counts: Counter[str], k: int) -> list[Any]:
        """The K rows ``--top`` shows and ``--json``'s "top" carries."""
        return [list(row) for row in top(counts, k)]

    def text(self, rows: list[Any], out: IO[str]) -> None:
        shown = [(shorten(w), n) for w, n in rows]
        width = max((len(w) for w, _ in shown), default=4)
        for word, n in shown:
            out.write(f"{word:<{width}}  {n:>12,}\n")

    def distinct(self, counts: Counter[str]) -> int:
        """The summary's "distinct" figure."""
        return len(counts)

    def write(self, counts: Counter[str], path: str) -> None:
        """The whole table to ``path`` (atomically replaced)."""
        raise NotImplementedError

    def lookup(self, conn, job: str, queries: Sequence[str]) -> list[Any]:
        """Point queries answered from the job's table in Redis: one row (a JSON-able list)
        per answer."""
        raise UsageError(f"the {self.name} app answers no lookup")

    def lookup_line(self, row: list[Any]) -> str:
        """One ``lookup`` row as ``wordcount lookup`` prints it (without ``--json``)."""
        return "\t".join(map(str, row))


def _load(spec: str) -> App:
    module, _, attr = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr or "APP")
    except (ImportError, AttributeError) as e:
        raise UsageError(f"app {spec!r} cannot be loaded: {e}") from None
    app = found() if isinstance(found, type) else found
    if not isinstance(app, App):
        raise UsageError(f"app {spec!r} is not a wordcount.apps.App")
    return app


@cache
def get(name: str = DEFAULT) -> App:
    """The app called ``name`` (``APPS``), or at import path ``module:attribute``, configured
    with the parameters after a ``?`` (``pagerank?round=2&...``). UsageError when there is
    none."""
    if "?" in name:
        from urllib.parse import parse_qsl

        base, _, query = name.partition("?")
        return get(base).configure(dict(parse_qsl(query, keep_blank_values=True)))
    if name in APPS:
        return _load(APPS[name])
    if ":" in name or "." in name:
        return _load(name)
    raise UsageError(f"no app named {name!r}: choose from {', '.join(APPS)}, or name one by "
                     "import path (package.module:APP)")


def name_of(text: str) -> str:
    """``--app``'s argument type: a known name or an import path (checked on first use)."""
    text = text.strip()
    if not text or os.sep in text or any(c.isspace() for c in text):
        raise UsageError(f"not an app name: {text!r}")
    return text
