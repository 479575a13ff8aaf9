"""Local engines: serial, threads, processes (and the naive reference, the oracle).

All of them run the same pipeline: ``planner.plan`` → ``count_task`` per task → merge. The
distributed engine (``worker``) calls the same ``count_checked``/``count_pack``. What a task's
bytes become is the app's business (``wordcount.apps``: its mapper), never looked into here.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from . import apps, planner
from .apps import App, Mapper
from .planner import InputError, Task

ENGINES = ("serial", "threads", "processes", "reference")


def count_task(task: Task, path: str | None = None, buffer_size: int = planner.READ_BUFFER,
               on_buffer: Callable[[int], None] | None = None, app: App | None = None,
               doc: str | None = None) -> Counter[str]:
    """Count one task (``path`` overrides ``task.path``, e.g. resolved under a data root;
    ``doc``: the document the app sees, default the path). Raises OSError if the file can't
    be read."""
    return tally_task(task, path, buffer_size, on_buffer, app, doc).counts()


def tally_task(task: Task, path: str | None = None, buffer_size: int = planner.READ_BUFFER,
               on_buffer: Callable[[int], None] | None = None, app: App | None = None,
               doc: str | None = None) -> Mapper:
    """``count_task``'s mapper, its pairs not yet combined into a table (word count's Tally:
    see ``Tally.absorb``)."""
    tally = (app or apps.get()).mapper(task.path if doc is None else doc)
    for data in planner.read_range(path or task.path, task.start, task.end, buffer_size):
        tally.add(data)
        if on_buffer is not None:
            on_buffer(len(data))
    return tally


def _checked_buffers(task: Task, path: str, mapped: bool, buffer_size: int) -> Iterator[bytes]:
    """The buffers of one range, checking that the file at ``path`` is the one the plan
    recorded (``task.ident``: see wordcount.identity) before the first and after the last;
    the checks after the last buffer raise once it has been yielded."""
    from . import identity

    expected = identity.Identity.parse(task.ident) if task.ident else None
    digest = identity.range_hash() if expected is not None and expected.digest else None
    nbytes = 0
    with open(path, "rb") as f:
        identity.check(expected, os.fstat(f.fileno()), mapped, path)
        for data in planner.read_range(path, task.start, task.end, buffer_size, f):
            nbytes += len(data)
            if digest is not None:
                digest.update(data)
            yield data
        identity.check(expected, os.fstat(f.fileno()), mapped, path)
    if digest is not None and digest.hexdigest() != expected.digest:  # type: ignore[union-attr]
        raise planner.FileChangedError(0, "the bytes of the range differ from the plan's "
                                          "(content fingerprint)", path)
    if nbytes != task.nbytes:
        raise planner.FileChangedError(0, f"read {nbytes} bytes, the plan has {task.nbytes}",
                                       path)


def count_checked(task: Task, path: str, mapped: bool, buffer_size: int = planner.READ_BUFFER,
                  on_buffer: Callable[[int], None] | None = None, app: App | None = None
                  ) -> tuple[Counter[str], int]:
    """Count one task of a planned job (one range; the app sees ``task.path``, relative to
    the job's root, as its document), checking that the file at ``path`` is the one the plan
    recorded before and after its range is read; ``mapped``: read under a worker's own data
    root. Returns the counts and the bytes actually read. Raises FileChangedError (the file is
    not what was planned) or another OSError."""
    tally, nbytes = (app or apps.get()).mapper(task.path), 0
    for data in _checked_buffers(task, path, mapped, buffer_size):
        tally.add(data)
        nbytes += len(data)
        if on_buffer is not None:  # (after the buffer is counted: a --slowdown paces both)
            on_buffer(len(data))
    counts = tally.counts()
    if on_buffer is not None:  # the final count (the Tally defers its work): paced too
        on_buffer(0)
    return counts, nbytes


def count_pack(task: Task, resolve: Callable[[str], str], mapped: bool,
               buffer_size: int = planner.READ_BUFFER,
               on_buffer: Callable[[int], None] | None = None, app: App | None = None
               ) -> tuple[Counter[str], int]:
    """Count a packed task: each range checked as ``count_checked`` checks one (``resolve``
    maps a part's path to the file to read, raising OSError when it may not be read), read
    whole before any of it is counted (a part is small: under the pack size). Many small parts
    are counted as one buffer, joined by a newline (an ASCII whitespace byte: no word, no UTF-8
    sequence, no lowercasing context spans it),
    when the app's pairs do not depend on the document (``App.joins_documents``); else each
    part goes through a mapper of its own. Returns the counts and the bytes read.
    The task is the unit of failure, as a one-range task is: FileChangedError when a part is
    not what the plan recorded (the task's input changed), OSError when a part cannot be read
    (named, with how many others cannot: every part is tried, so that the operator learns all
    of them before ``requeue``). A part that fails adds nothing; the worker sets the whole
    task aside, and a requeue once the cause is fixed counts all of it, once."""
    app = app or apps.get()
    tally, nbytes = app.mapper(""), 0
    per_doc: Counter[str] = Counter()  # an app that maps each document apart: its pairs
    batch: list[bytes] = []
    batched = 0
    failed: list[tuple[Task, OSError]] = []

    def flush() -> None:
        nonlocal nbytes, batch, batched
        tally.add(b"\n".join(batch))
        nbytes += batched
        if on_buffer is not None:
            on_buffer(batched)
        batch, batched = [], 0

    for part in task.ranges():
        try:
            data = list(_checked_buffers(part, resolve(part.path), mapped, buffer_size))
        except planner.FileChangedError as exc:  # named by its path in the plan
            raise planner.FileChangedError(exc.errno, f"{part.path} [{part.start}:{part.end}]: "
                                           f"{planner.describe(exc)}", exc.filename) from exc
        except OSError as exc:
            failed.append((part, exc))
            continue
        if failed:  # the task fails whole: the rest are read (checked), not counted
            continue
        if not app.joins_documents:
            one = app.mapper(part.path)
            for d in data:
                one.add(d)
            merge_into(per_doc, one.counts())
            nbytes += sum(len(d) for d in data)
            if on_buffer is not None:
                on_buffer(sum(len(d) for d in data))
            continue
        batch += data
        batched += sum(len(d) for d in data)
        if batched >= buffer_size:
            flush()
    if batch:
        flush()
    if failed:
        part, exc = failed[0]
        raise type(exc)(exc.errno, f"{part.path} [{part.start}:{part.end}]: "
                        f"{planner.describe(exc)}"
                        + (f" (and {len(failed) - 1} more of its files)" if len(failed) > 1
                           else ""), exc.filename)
    counts = tally.counts() if app.joins_documents else per_doc
    if on_buffer is not None:  # the final count (the Tally defers its work): paced too
        on_buffer(0)
    return counts, nbytes


def _reference_task(task: Task, app: App, doc: str) -> Counter[str]:
    """The naive way: read the whole range at once, the app's reference map."""
    with open(task.path, "rb") as f:
        f.seek(task.start)
        return app.reference(f.read(task.nbytes), doc)


@dataclass
class Outcome:
    task: Task
    counts: Counter[str] | Mapper | None  # a mapper from the serial engine (see count_inputs)
    error: str | None = None


def _attempt(fn: Callable[..., Counter[str] | Mapper], task: Task, *args: object) -> Outcome:
    try:
        return Outcome(task, fn(task, *args))
    except OSError as exc:
        return Outcome(task, None, planner.describe(exc))


def _doc(task: Task, root: str | None) -> str:
    return os.path.relpath(task.path, root) if root else task.path


def _count(task: Task, app_name: str = apps.DEFAULT, root: str | None = None) -> Outcome:
    """(By the app's name: what a process pool's child resolves on its side.)"""
    return _attempt(count_task, task, None, planner.READ_BUFFER, None, apps.get(app_name),
                    _doc(task, root))


def execute(tasks: Sequence[Task], engine: str = "serial", workers: int | None = None,
            app_name: str = apps.DEFAULT, root: str | None = None) -> Iterator[Outcome]:
    """Run tasks on an engine, yielding outcomes as they complete. ``root``: documents are
    task paths relative to it (the app's ``doc``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    app = apps.get(app_name)
    if engine == "reference":
        yield from (_attempt(_reference_task, t, app, _doc(t, root)) for t in tasks)
        return
    if engine == "serial":
        yield from (_attempt(tally_task, t, None, planner.READ_BUFFER, None, app,
                             _doc(t, root)) for t in tasks)
        return
    workers = workers or os.cpu_count() or 1
    pool: Executor
    if engine == "threads":
        pool = ThreadPoolExecutor(max_workers=workers)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
    with pool:
        # Largest tasks first: better load balance at the end of the job.
        order = sorted(tasks, key=lambda t: -t.nbytes)
        yield from pool.map(partial(_count, app_name=app_name, root=root), order, chunksize=1)


@dataclass
class Result:
    counts: Counter[str] = field(default_factory=Counter)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: list[InputError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def count_inputs(inputs: Sequence[str], engine: str = "serial", workers: int | None = None,
                 chunk_size: int = planner.DEFAULT_CHUNK_SIZE, app_name: str = apps.DEFAULT
                 ) -> Result:
    """The whole local job: discover, plan, count, merge. Raises NoInputError. The app's
    documents are the files' paths relative to their common directory (as a distributed job's
    are relative to its root)."""
    started = time.perf_counter()
    files, errors = planner.discover(inputs)
    app = apps.get(app_name)
    tasks, plan_errors = planner.plan(files, chunk_size, app.line_records)
    result = Result(errors=errors + plan_errors)
    failed: set[str] = set()
    # the serial engine's word count: its tasks' tallies counted together (Tally.absorb)
    tally = app.mapper("") if app.joins_documents else None
    root = planner.common_root(files) if files else None
    for outcome in execute(tasks, engine, workers, app_name, root):
        if outcome.counts is None:
            if outcome.task.path not in failed:
                failed.add(outcome.task.path)
                result.errors.append(InputError(outcome.task.path, outcome.error or "error"))
            continue
        if isinstance(outcome.counts, Counter):
            merge_into(result.counts, outcome.counts)
        elif tally is not None and hasattr(tally, "absorb"):
            tally.absorb(outcome.counts)
        else:
            merge_into(result.counts, outcome.counts.counts())
        result.bytes += outcome.task.nbytes
    if tally is not None:
        merge_into(result.counts, tally.counts())
    result.files = len({t.path for t in tasks} - failed)
    result.seconds = time.perf_counter() - started
    return result


def merge_into(total: Counter[str], part: Counter[str]) -> None:
    if not total:
        total.update(part)
        return
    get = total.get
    for word, n in part.items():
        total[word] = get(word, 0) + n
