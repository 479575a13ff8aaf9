"""``wordcount experiment`` / ``make experiments``: every measurement question of the lab
answered by one command, as JSON (``results/experiments/NAME.json``), a plot each
(``docs/experiments/NAME.png``) and a report (``docs/EXPERIMENTS.md``) regenerated from the
JSON. ``core`` runs an experiment, ``catalog`` holds the questions, ``report`` writes the
plots and the markdown."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ...runtime import stop_on_signals
from .core import Context, run
from .report import InvalidResult, markdown, plot, timeline, validate

EXIT_EXPERIMENT_FAILED = 1  # a run's table was not exact, or its command failed
RESULTS = Path("results/experiments")
DOCS = Path("docs")


def _catalog():
    from .catalog import EXPERIMENTS

    return EXPERIMENTS


def _select(names: list[str]) -> list[str]:
    known = _catalog()
    if not names or names == ["all"]:
        return list(known)
    wanted = []
    for n in names:
        key = n.upper()
        if key not in known:
            raise SystemExit(f"wordcount experiment: no experiment {n!r} (`--list` lists them)")
        wanted.append(key)
    return wanted


def write_report(results: Path, docs: Path) -> Path:
    """docs/EXPERIMENTS.md and docs/experiments/*.png from every JSON in ``results``."""
    known = _catalog()
    found = []
    for path in sorted(results.glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
        found.append(validate(json.loads(path.read_text(encoding="utf-8"))))
    images = docs / "experiments"
    for doc in found:
        if doc.get("skipped"):
            continue
        plot(doc, images / f"{doc['name']}.png")
        timeline(doc, images / f"{doc['name']}-timeline.png")
    answers = {d["name"]: known[d["name"]].answer(d) for d in found
               if d["name"] in known and not d.get("skipped")}
    out = docs / "EXPERIMENTS.md"
    tmp = out.with_suffix(".md.new")
    tmp.write_text(markdown(found, answers, "experiments"), encoding="utf-8")
    os.replace(tmp, out)
    return out


def cmd_experiment(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    known = _catalog()
    if args.list:
        for e in known.values():
            print(f"{e.name:<4} {e.title:<18} {e.question}")
        return 0
    results, docs = Path(args.results), Path(args.docs)
    if args.report:
        try:
            print(write_report(results, docs))
        except InvalidResult as e:
            console.print(f"[red]wordcount experiment: {e}[/]")
            return 2
        return 0
    names = _select(args.names)
    for t in args.text or ():
        if not os.path.isfile(t) or not os.access(t, os.R_OK):
            console.print(f"[red]wordcount experiment: --text {t}: not a readable file[/]")
            return 2
    repeat = args.repeat or (1 if args.tiny else 3)
    own = None if args.workdir else tempfile.TemporaryDirectory(prefix="wordcount-exp-")
    try:  # (SIGTERM/SIGHUP as Ctrl-C: every Redis, cluster and command of a run is stopped)
        with stop_on_signals():
            return _run_all(args, names, repeat, Path(args.workdir or own.name), console)
    finally:
        if own is not None:
            own.cleanup()


def _run_all(args: argparse.Namespace, names: list[str], repeat: int, workdir: Path,
             console) -> int:
    known = _catalog()
    results, docs = Path(args.results), Path(args.docs)
    ctx = Context(workdir=workdir, scale=args.scale, repeat=repeat, tiny=args.tiny,
                  say=console.print, texts=args.text or [], scales=dict(args.scale_for or []))
    total = sum(len(known[n].points(ctx)) * repeat
                * len(known[n].variants) for n in names)  # (an upper bound: some skip points)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    results.mkdir(parents=True, exist_ok=True)
    written = []
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                  console=console, disable=args.quiet) as progress:
        bar = progress.add_task("experiments", total=total)
        ctx.step = lambda what: progress.update(bar, advance=1, description=what)
        for n in names:
            progress.update(bar, description=f"{n}: {known[n].title} (making its corpora)")
            doc = validate(run(known[n], ctx))
            path = results / f"{n}.json"
            tmp = path.with_suffix(".json.new")
            tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                           encoding="utf-8")
            os.replace(tmp, path)
            written.append(path)
            console.print(f"{n}: " + (f"skipped: {doc['skipped']}" if doc.get("skipped")
                                      else known[n].answer(doc)))
    if not args.no_report:
        console.print(f"report: {write_report(results, docs)}")
    console.print(f"{len(written)} experiments in {time.monotonic() - started:.0f} s; "
                  f"JSON in {results}/")
    if ctx.failures:
        console.print(f"[bold red]{len(ctx.failures)} runs FAILED[/] (not plotted):")
        for f in ctx.failures:
            console.print(f"  {f}")
        return EXIT_EXPERIMENT_FAILED
    return 0


def _scale_for(text: str) -> tuple[str, float]:
    name, eq, x = text.partition("=")
    try:
        factor = float(x)
    except ValueError:
        factor = 0.0
    if not eq or factor <= 0 or name.upper() not in _catalog():
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=X, an experiment (`--list`) and "
                                         "a factor > 0")
    return name.upper(), factor


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="E1 ... (default: all)")
    p.add_argument("--list", action="store_true", help="each experiment and its question")
    p.add_argument("--scale", type=float, default=float(os.environ.get("SCALE") or 1),
                   help="multiply every size (default $SCALE or 1: about 30 min here)")
    p.add_argument("--scale-for", type=_scale_for, action="append", metavar="NAME=X",
                   help="one experiment's sizes × X besides --scale (repeatable: --scale-for "
                        "E6=4 takes E6 to 1 GiB)")
    p.add_argument("--text", nargs="+", metavar="FILE",
                   help="real text for the real-text corpus, replicated to each size (default: "
                        "the King James Bible when Debian's bible-kjv-text is installed)")
    p.add_argument("--repeat", type=int, help="runs per cell (default 3; 1 with --tiny)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, one run: seconds")
    p.add_argument("--results", default=str(RESULTS), help="where the JSON goes")
    p.add_argument("--docs", default=str(DOCS), help="where EXPERIMENTS.md and the plots go")
    p.add_argument("--workdir", help="corpora and counts (default: a new temp dir)")
    p.add_argument("--report", action="store_true", help="only remake the report from the JSON")
    p.add_argument("--no-report", action="store_true", help="JSON only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="answer the lab's measurement questions: JSON, "
                                          "plots, docs/EXPERIMENTS.md",
                       description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(handler=cmd_experiment)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wordcount.lab.experiments")
    add_arguments(parser)
    return cmd_experiment(parser.parse_args(argv))


