"""PageRank, Piccolo-style: rounds of kernel tasks over a link graph, each round one exactly-once
job, in fixed-point integers so that every run is bit-identical to the sequential oracle.

Input: files of lines ``page<TAB>target`` (a link; ``#`` comments and blank lines are skipped; a
page is any text without a tab or newline). Tasks are byte ranges cut after a newline
(``line_records``). A line that is not a link sets its task aside with that message.

The rounds (``PageRank.iterate``, driven by the client; Piccolo's control thread):

0. ``links``: a job counting every page's out-links and in-links (keys ``out<TAB>page``,
   ``in<TAB>page``); its pages are the graph's N pages, those with no out-link the dangling ones.
1. round r = 1, 2, ...: a job of app ``pagerank?...`` over the same inputs, whose kernel maps each
   link p -> q to q's share of p's rank, ``rank(p) * dn // (dd * outdeg(p))`` (damping dn/dd),
   reading rank(p) from round r-1's table and outdeg(p) from the links table (the shared tables;
   each worker reads them once per round). The framework sums the shares per page exactly once
   (ZINCRBY/ZADD in the commit that settles each task) -- the accumulation into the next table.
2. the job's end is the barrier; then the client computes the round's base, what every page
   gets besides its in-links, ``((dd - dn) * SCALE + dn * dangling) // (dd * N)`` (dangling:
   the previous ranks of the pages with no out-link), and rank_r(q) = base_r + table_r(q): the
   swap is naming round r's job, and its base, in round r+1's parameters.
3. it stops after ``rounds`` rounds, or once the L1 change of the ranks is at most ``epsilon``.

Ranks are integers in units of 1/SCALE (SCALE = 10**15: the ranks sum to about 1; every value
stays below 2**53, so Redis's double scores hold it exactly). Every share is floor-divided on
its own, and integer addition is associative: any split into tasks, any order of commits, a
task counted twice (applied once), a round counted again after a Redis rollback, gives the same
bits. Floats would not: float addition is not associative, so the sum of one page's shares
would depend on which tasks a worker happened to combine and in which order the commits
reached Redis -- two exact runs would differ in their last bits, and no run could be checked
bit for bit against an oracle.

Every round is a job: its plan id names its parameters (the previous round's job and base), so
a client that restarts reuses the rounds already finished (checkpoints: each round's table
stays in Redis with its job). A round whose kernel finds an earlier round's table missing or
unfinished (Redis restarted from a snapshot taken before that round ended) sets its tasks aside
(``PREREQ``); the client then counts the earlier rounds again (reusing any that survived) and
the round afresh. The result is the same: a round's table is a function of the graph and the
round's parameters only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import IO, Any

from . import App, TableReader, TaskError

SCALE = 10**15
DEFAULTS = {"rounds": 30, "epsilon": "1e-9", "damping": "0.85"}
# A round counted again at most this often when the tables of earlier rounds vanished (Redis
# rolled back past them): each recount redoes the earlier rounds first. Under Redis kills about
# every 2 s a recount was hit again about one time in three, and 5 gave up in E25.
REDO_ATTEMPTS = 20
OUT, IN = "out\t", "in\t"


def as_decimal(rank: int) -> str:
    """A rank in units of 1/SCALE as its exact decimal."""
    return f"{rank // SCALE}.{rank % SCALE:015d}"


def damping_of(text: str) -> Fraction:
    d = Fraction(text)
    if not 0 <= d < 1:
        raise ValueError(f"damping must be in [0, 1): {text}")
    return d


# A link line (``page<TAB>target``, an optional CR) and a line that is none: no blank line, no
# comment. Names hold no tab, CR or LF. Matched over a whole buffer at once (C speed).
_LINK = re.compile(rb"^([^\t\n\r#][^\t\n\r]*)\t([^\t\n\r]+)\r?$", re.M)
_BAD = re.compile(rb"^(?!#|\r?$)(?![^\t\n\r#][^\t\n\r]*\t[^\t\n\r]+\r?$).*$", re.M)


def _check(body: bytes) -> None:
    bad = _BAD.search(body)
    if bad:
        line = bad.group(0).removesuffix(b"\r")
        raise TaskError(f"not a page<TAB>target line: {line[:80]!r}")


class _Links:
    """Feeds the links of complete lines, as (page, target) byte strings, to ``emit(out,
    pairs)``, a buffer at a time; a line cut between two buffers waits for its end (buffers
    are cut anywhere a word could end, not only at newlines). Keys are decoded once, at the
    end."""

    __slots__ = ("carry", "emit", "out")

    def __init__(self, emit: Callable[[Counter[bytes], list[tuple[bytes, bytes]]], None]
                 ) -> None:
        self.carry, self.emit, self.out = b"", emit, Counter()

    def add(self, data: bytes) -> None:
        data = self.carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.carry = data
            return
        self.carry = data[cut + 1:]
        self._body(data[:cut + 1])

    def _body(self, body: bytes) -> None:
        _check(body)
        self.emit(self.out, _LINK.findall(body))

    def counts(self) -> Counter[str]:
        if self.carry:
            line, self.carry = self.carry, b""
            self._body(line + b"\n")
        return Counter({k.decode("utf-8", "surrogateescape"): n for k, n in self.out.items()
                        if n})


def parse_graph(data: bytes) -> list[tuple[str, str]]:
    """Every link of a whole file, line by line (the oracle's reading: no buffers, no carry,
    no regular expression)."""
    links = []
    for line in data.split(b"\n"):
        line = line.removesuffix(b"\r")
        if not line or line.startswith(b"#"):
            continue
        page, tab, target = line.partition(b"\t")
        if not tab or not page or not target or b"\t" in target or b"\r" in line:
            raise TaskError(f"not a page<TAB>target line: {line[:80]!r}")
        links.append((page.decode("utf-8", "surrogateescape"),
                      target.decode("utf-8", "surrogateescape")))
    return links


_OUT, _IN = OUT.encode(), IN.encode()


def _count_links(out: Counter[bytes], pairs: list[tuple[bytes, bytes]]) -> None:
    out.update(_OUT + p for p, _ in pairs)
    out.update(_IN + q for _, q in pairs)


class Links(App):
    """Round 0: the graph's pages and their out- and in-degrees."""

    name = "links"
    summary = "a link graph's pages with their out- and in-links (PageRank's round 0)"
    line_records = True
    key_noun, total_noun = "degree entries", "link ends"

    def mapper(self, doc: str) -> _Links:
        return _Links(_count_links)

    def reference(self, data: bytes, doc: str) -> Counter[str]:
        out: Counter[str] = Counter()
        for page, target in parse_graph(data):
            out[OUT + page] += 1
            out[IN + target] += 1
        return out

    def write(self, counts: Counter[str], path: str) -> None:
        from ..report import write_counts
        write_counts(counts, path)


_DEGREES: list = []  # [(links table, its degrees)]: the last one derived, for the next round


def degrees(table: Counter[str]) -> tuple[list[str], dict[str, int]]:
    """The links table as (every page, sorted; page -> out-degree); the same table object
    (a worker keeps it while its job's incarnation is the same) is derived once."""
    if _DEGREES and _DEGREES[0][0] is table:
        return _DEGREES[0][1]
    pages = sorted({k.split("\t", 1)[1] for k in table})
    found = pages, {k[len(OUT):]: n for k, n in table.items() if k.startswith(OUT)}
    _DEGREES[:] = [(table, found)]
    return found


class PageRank(App):
    """A round's kernel (configured with its parameters), and the rounds' driver."""

    name = "pagerank"
    summary = ("PageRank of a link graph (page<TAB>target lines), Piccolo-style rounds in "
               "fixed point: --rounds, --epsilon, --damping")
    line_records = True
    iterative = True
    key_noun, total_noun = "pages", "rank units (1e-15)"

    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = params or {}
        self.tables: TableReader | None = None
        # (the tables they were derived from, page -> its share per out-link)
        self._shared: tuple[tuple, dict[bytes, int]] | None = None

    def configure(self, params: dict[str, str]) -> PageRank:
        missing = {"links", "prev", "base", "n", "damping"} - set(params)
        if missing:
            raise TaskError(f"a pagerank round needs {sorted(missing)}")
        return PageRank(params)

    def bind(self, tables: TableReader) -> None:
        self.tables = tables

    # -- the kernel ------------------------------------------------------------------------

    def _read_shared(self) -> dict[bytes, int]:
        """Each page's share of its rank per out-link, this round (page as its bytes). The
        reader hands out the same table object while the job's finished incarnation is the
        same (a worker keeps the last few), so they are derived once per worker and round --
        and again when a job of that name was counted anew (``--fresh``, other inputs)."""
        if self.tables is None:
            raise TaskError("a pagerank round reads earlier tables from Redis: it runs on "
                            "workers (run/submit), not on a local engine")
        links = self.tables(self.params["links"])
        prev = self.tables(self.params["prev"]) if self.params["prev"] else None
        if self._shared is None or self._shared[0][0] is not links \
                or self._shared[0][1] is not prev:
            _, outdeg = degrees(links)
            d = Fraction(self.params["damping"])
            dn, dd = d.numerator, d.denominator
            if prev is not None:
                base, get = int(self.params["base"]), prev.get
                shares = {p: (base + get(p, 0)) * dn // (dd * n) for p, n in outdeg.items()}
            else:
                first = SCALE // int(self.params["n"])
                shares = {p: first * dn // (dd * n) for p, n in outdeg.items()}
            self._shared = ((links, prev), {p.encode("utf-8", "surrogateescape"): v
                                            for p, v in shares.items()})
        return self._shared[1]

    def mapper(self, doc: str) -> _Links:
        if not self.params:
            raise TaskError("the pagerank app runs as rounds: `wordcount run/submit --app "
                            "pagerank` (a round is configured by the client)")
        shares = self._read_shared()

        def share(out: Counter[bytes], pairs: list[tuple[bytes, bytes]]) -> None:
            get = out.get
            for page, target in pairs:
                out[target] = get(target, 0) + shares[page]
        return _Links(share)

    def reference(self, data: bytes, doc: str) -> Counter[str]:
        mapper = self.mapper(doc)
        mapper.add(data + b"\n")
        return mapper.counts()

    # -- the rounds (the client's control loop) --------------------------------------------

    def iterate(self, run_round, options: dict[str, Any]) -> tuple[Counter[str], dict[str, Any]]:
        rounds = int(options.get("rounds") or DEFAULTS["rounds"])
        damping = damping_of(str(options.get("damping") or DEFAULTS["damping"]))
        limit = int(Fraction(str(options.get("epsilon") or DEFAULTS["epsilon"])) * SCALE)
        done: list[tuple[str, str]] = []  # (spec, suffix) of the rounds so far, for a redo

        def run(spec: str, suffix: str, upto: int):
            """Round ``suffix``; when its kernel found an earlier table gone (PREREQ), the
            rounds before it (``done[:upto]``) again, in order (a finished one is reused, one
            that lost its own earlier tables is counted afresh), then this one afresh."""
            for attempt in range(REDO_ATTEMPTS):
                result, name = run_round(spec, suffix, attempt > 0)
                if not any("PREREQ" in e.error for e in result.errors):
                    if result.errors:
                        raise TaskError(f"round {suffix.lstrip('-')}: {result.errors[0].path}: "
                                        f"{result.errors[0].error}")
                    return result, name
                for i, earlier in enumerate(done[:upto]):
                    run(*earlier, i)
            raise TaskError(f"round {suffix.lstrip('-')}: its earlier rounds vanished "
                            f"{REDO_ATTEMPTS} times (Redis kept rolling back past them, or "
                            "someone keeps deleting them)")

        links, links_job = run("links", "-links", 0)
        done.append(("links", "-links"))
        pages, outdeg = degrees(links.counts)
        n = len(pages)
        if not n:
            raise TaskError("the graph has no link")
        dangling = [p for p in pages if p not in outdeg]
        ranks = dict.fromkeys(pages, SCALE // n)
        prev, base, delta, r = "", 0, 0, 0
        seconds = links.seconds
        for r in range(1, rounds + 1):
            spec = (f"pagerank?links={links_job}&prev={prev}&base={base}&n={n}"
                    f"&damping={damping}")
            result, prev = run(spec, f"-r{r}", len(done))
            done.append((spec, f"-r{r}"))
            seconds += result.seconds
            mass = sum(ranks[p] for p in dangling)
            base = ((damping.denominator - damping.numerator) * SCALE
                    + damping.numerator * mass) // (damping.denominator * n)
            get = result.counts.get
            new = {p: base + get(p, 0) for p in pages}
            delta = sum(abs(new[p] - ranks[p]) for p in pages)
            ranks = new
            if delta <= limit:
                break
        return Counter(ranks), {"rounds": r, "delta": as_decimal(delta), "pages": n,
                                "links": sum(outdeg.values()), "scale": SCALE,
                                "round_seconds": round(seconds, 6)}

    # -- output ------------------------------------------------------------------------------

    def top(self, counts: Counter[str], k: int) -> list[Any]:
        rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max(k, 0)]
        return [[page, as_decimal(rank)] for page, rank in rows]

    def text(self, rows: list[Any], out: IO[str]) -> None:
        width = max((len(r[0]) for r in rows), default=4)
        for page, rank in rows:
            out.write(f"{page:<{width}}  {rank}\n")

    def write(self, counts: Counter[str], path: str) -> None:
        """``page<TAB>rank`` (exact decimal), by rank descending then page; ``.json``:
        ``{"scale": SCALE, "ranks": {page: rank in 1/SCALE units}}``."""
        import json

        from ..report import replace_atomically
        rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if path.endswith(".json"):
            replace_atomically(path, lambda f: json.dump(
                {"scale": SCALE, "ranks": dict(rows)}, f, ensure_ascii=False), "the ranks")
            return
        replace_atomically(path, lambda f: f.writelines(
            f"{p}\t{as_decimal(n)}\n" for p, n in rows), "the ranks")

    def oracle(self, paths: Sequence[str], **options: Any) -> tuple[Counter[str], int]:
        return oracle(paths, **options)

    def lookup(self, conn, job: str, queries):
        raise TaskError("a pagerank job's table is one round's shares: `wordcount lookup` "
                        "answers word count and index jobs")


APP = PageRank()
LINKS = Links()


# -- the sequential oracle ---------------------------------------------------------------------

def oracle(paths: Sequence[str], rounds: int = DEFAULTS["rounds"],  # type: ignore[assignment]
           epsilon: str = DEFAULTS["epsilon"], damping: str = DEFAULTS["damping"]
           ) -> tuple[Counter[str], int]:
    """PageRank of the whole graph in one process, the plainest way, in the same fixed point:
    (ranks, rounds run). The truth every distributed run must equal bit for bit."""
    links: list[tuple[str, str]] = []
    for p in paths:
        with open(p, "rb") as f:
            links += parse_graph(f.read())
    pages = sorted({p for p, _ in links} | {q for _, q in links})
    outdeg = Counter(p for p, _ in links)
    d = damping_of(damping)
    limit = int(Fraction(epsilon) * SCALE)
    n = len(pages)
    ranks = dict.fromkeys(pages, SCALE // n)
    ran = 0
    for ran in range(1, rounds + 1):  # noqa: B007 - the rounds run are returned
        shares: Counter[str] = Counter()
        for p, q in links:
            shares[q] += ranks[p] * d.numerator // (d.denominator * outdeg[p])
        mass = sum(ranks[p] for p in pages if not outdeg[p])
        base = ((d.denominator - d.numerator) * SCALE + d.numerator * mass) // (d.denominator * n)
        new = {p: base + shares[p] for p in pages}
        delta = sum(abs(new[p] - ranks[p]) for p in pages)
        ranks = new
        if delta <= limit:
            break
    return Counter(ranks), ran
