"""The inverted index (MapReduce's "index generation"): for every word, the documents (files)
it occurs in and how often in each. Same word rule as word count.

A pair's key is ``word<TAB>document`` (a word never holds a tab: the word rule keeps only
``isalnum`` runs), its value the word's count in that document; so an index job is a word count
over (word, document) pairs, and it rides the same exactly-once protocol unchanged. The
document is the file's path relative to the job's root (a big file's byte ranges all map to it).

Output (``--counts-out``), sorted by word, like the 6.5840 MapReduce lab's indexer
(``word N doc1,doc2``), each document with its count:

    word<TAB>N<TAB>doc1:count1,doc2:count2,...     (documents sorted by name)

a path's ``%``, tab, newline, carriage return, ``,`` and ``:`` written as ``%25``, ``%09``,
``%0A``, ``%0D``, ``%2C``, ``%3A``; or, with a path ending in ``.json``, one JSON object
``{word: {document: count}}`` (nothing escaped).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from typing import IO, Any

from .. import words
from . import App, shorten

SEP = "\t"
_ESCAPES = str.maketrans({"%": "%25", "\t": "%09", "\n": "%0A", "\r": "%0D", ",": "%2C",
                          ":": "%3A"})


def key(word: str, doc: str) -> str:
    return f"{word}{SEP}{doc}"


def split(k: str) -> tuple[str, str]:
    word, _, doc = k.partition(SEP)
    return word, doc


def postings(counts: Counter[str]) -> dict[str, dict[str, int]]:
    """The table as word -> {document: count}, words and documents sorted."""
    by_word: dict[str, dict[str, int]] = defaultdict(dict)
    for k in sorted(counts):  # (word, then document: the tab sorts below every other text)
        word, doc = split(k)
        by_word[word][doc] = counts[k]
    return by_word


class _Mapper:
    """A Tally of one document whose words become (word, document) keys."""

    __slots__ = ("doc", "tally")

    def __init__(self, doc: str) -> None:
        self.doc, self.tally = doc, words.Tally()

    def add(self, data: bytes) -> None:
        self.tally.add(data)

    def counts(self) -> Counter[str]:
        suffix = SEP + self.doc
        return Counter({w + suffix: n for w, n in self.tally.counts().items()})


class Index(App):
    name = "index"
    summary = "every word and the documents (files) it occurs in, with its count in each"
    joins_documents = False  # a mapper per file: its keys name the file
    key_noun, total_noun = "distinct words", "words"

    def mapper(self, doc: str) -> _Mapper:
        return _Mapper(doc)

    def reference(self, data: bytes, doc: str) -> Counter[str]:
        return Counter({key(w, doc): n for w, n in words.reference_counts(data).items()})

    def distinct(self, counts: Counter[str]) -> int:
        return len({split(k)[0] for k in counts})

    def top(self, counts: Counter[str], k: int) -> list[Any]:
        """The K words found in the most documents: [word, documents, total count]."""
        if k <= 0:
            return []
        docs: Counter[str] = Counter()
        total: Counter[str] = Counter()
        for key_, n in counts.items():
            word = split(key_)[0]
            docs[word] += 1
            total[word] += n
        rows = sorted(docs.items(), key=lambda wn: (-wn[1], -total[wn[0]], wn[0]))[:k]
        return [[w, n, total[w]] for w, n in rows]

    def text(self, rows: list[Any], out: IO[str]) -> None:
        width = max((len(shorten(r[0])) for r in rows), default=4)
        for word, ndocs, n in rows:
            noun = "document " if ndocs == 1 else "documents"
            out.write(f"{shorten(word):<{width}}  {ndocs:>8,} {noun}  {n:>12,}\n")

    def write(self, counts: Counter[str], path: str) -> None:
        from ..report import replace_atomically
        index = postings(counts)
        if path.endswith(".json"):
            replace_atomically(path, lambda f: json.dump(index, f, ensure_ascii=False),
                               "the index")
            return

        def lines(f: IO[str]) -> None:
            for word, docs in index.items():
                listed = ",".join(f"{d.translate(_ESCAPES)}:{n}" for d, n in docs.items())
                f.write(f"{word}\t{len(docs)}\t{listed}\n")
        replace_atomically(path, lines, "the index")

    def lookup(self, conn, job: str, queries):
        """Each query word (through the word rule): [word, documents, {document: count}],
        from a ZSCAN of the job's table matching ``word<TAB>*`` (a word holds no glob
        character: the word rule keeps only isalnum runs)."""
        from .. import keys
        table = keys.counts(job)
        found = []
        for word in [w for q in queries for w in words.reference_counts(q.encode())]:
            def scan(r, word=word) -> dict[str, int]:
                return {split(m)[1]: int(s) for m, s in
                        r.zscan_iter(table, match=f"{word}{SEP}*", count=10_000)}
            docs = dict(sorted(conn.call(scan).items()))
            found.append([word, len(docs), docs])
        return found

    def lookup_line(self, row) -> str:
        word, ndocs, docs = row
        listed = ", ".join(f"{d} ({n})" for d, n in docs.items()) or "-"
        return f"{word}\t{ndocs} documents\t{listed}"


APP = Index()


def oracle(paths: list[str], root: str) -> Counter[str]:
    """The sequential index of whole files (each read at once): the tests' truth."""
    out: Counter[str] = Counter()
    for p in paths:
        with open(p, "rb") as f:
            out.update(APP.reference(f.read(), os.path.relpath(p, root)))
    return out
