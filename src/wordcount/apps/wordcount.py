"""Word count, the first app: every word (``wordcount.words``: the word rule) and how often it
occurs. Its output is the project's original one, byte for byte."""

from __future__ import annotations

from collections import Counter

from .. import report, words
from . import App


class WordCount(App):
    name = "wordcount"
    summary = "every word and how often it occurs (the word rule: wordcount.words)"
    joins_documents = True  # a word's count does not depend on its file
    key_noun, total_noun = "distinct", "words"

    def mapper(self, doc: str) -> words.Tally:
        return words.Tally()

    def reference(self, data: bytes, doc: str) -> Counter[str]:
        return words.reference_counts(data)

    def write(self, counts: Counter[str], path: str) -> None:
        report.write_counts(counts, path)

    def lookup(self, conn, job: str, queries):
        """Each query word (through the word rule) and its count (0: absent)."""
        from .. import keys
        wanted = [w for q in queries for w in words.reference_counts(q.encode())] or []
        scores = conn.call(lambda r: r.zmscore(keys.counts(job), wanted)) if wanted else []
        return [[w, int(s or 0)] for w, s in zip(wanted, scores, strict=True)]


APP = WordCount()
