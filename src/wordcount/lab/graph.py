"""A deterministic link graph for PageRank (``--app pagerank``), for tests and demos
(``wordcount graph``)."""

from __future__ import annotations

import os
import random


def generate(outdir: str, pages: int, links: int, files: int = 1, seed: int = 0) -> list[str]:
    """A deterministic link graph: ``pages`` pages (p0, p1, ...), each with 0..2*``links``
    out-links (some none: dangling pages) to targets skewed towards low numbers (a few popular
    pages), as ``page<TAB>target`` lines in ``files`` files. Returns their paths."""
    rng = random.Random(seed)
    os.makedirs(outdir, exist_ok=True)
    paths = [os.path.join(outdir, f"graph-{i:03}.tsv") for i in range(files)]
    outs = [open(p, "w", encoding="utf-8", newline="\n") for p in paths]
    try:
        for i in range(pages):
            f = outs[i * files // pages]
            for _ in range(rng.randint(0, 2 * links)):
                f.write(f"p{i}\tp{int(pages * rng.random() ** 2)}\n")
    finally:
        for f in outs:
            f.close()
    return paths
