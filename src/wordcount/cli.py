"""Command line: ``wordcount <command> ...``. Thin: parse, call one module, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import exceptions as exc
from .planner import DEFAULT_CHUNK_SIZE

Handler = Callable[[argparse.Namespace], int]


def _size(text: str) -> int:
    from .corpus import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top", type=int, default=10, metavar="K", help="words to show (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--counts-out", metavar="PATH",
                   help="write every word as word<TAB>count, by count desc then word")


def add_chunk_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-size", type=_size, default=DEFAULT_CHUNK_SIZE, metavar="BYTES",
                   help="split files larger than this into byte-range tasks (default 64MiB; "
                        "suffixes K, M, G)")


# -- count ------------------------------------------------------------------------------------

def cmd_count(args: argparse.Namespace) -> int:
    from . import engines, report

    result = engines.count_inputs(args.inputs, args.engine, args.workers, args.chunk_size)
    report.emit(result, args.top, args.json, args.counts_out)
    return exc.EXIT_INPUT_ERRORS if result.errors else exc.EXIT_OK


def _count_parser(sub) -> None:
    from .engines import ENGINES

    p = sub.add_parser("count", help="count words locally (serial, threads or processes)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    p.add_argument("--engine", choices=ENGINES, default="serial")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="threads/processes (default: CPU count)")
    add_chunk_arg(p)
    add_output_args(p)
    p.set_defaults(handler=cmd_count)


# -- corpus -----------------------------------------------------------------------------------

def cmd_corpus(args: argparse.Namespace) -> int:
    from . import corpus

    try:
        paths = corpus.generate(args.outdir, args.files, args.size, args.skew_size, args.seed,
                                unicode=args.unicode)
    except ValueError as e:
        raise exc.UsageError(str(e)) from None
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {total:,} bytes to {args.outdir}")
    return exc.EXIT_OK


def _corpus_parser(sub) -> None:
    p = sub.add_parser("corpus", help="generate a deterministic text corpus")
    p.add_argument("outdir")
    p.add_argument("--files", type=int, required=True)
    p.add_argument("--size", type=_size, required=True, metavar="BYTES", help="bytes per file")
    p.add_argument("--skew-size", type=_size, default=0, metavar="BYTES",
                   help="add one file of this size (skew experiments)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unicode", action="store_true", help="mix in non-ASCII words")
    p.set_defaults(handler=cmd_corpus)


# -- bench ------------------------------------------------------------------------------------

def _bench_parser(sub) -> None:
    from . import bench

    bench.add_parser(sub)


PARSERS = [_count_parser, _corpus_parser, _bench_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wordcount", description="Exact word count: local engines and a Redis cluster.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except exc.WordcountError as e:
        print(f"wordcount: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("wordcount: interrupted", file=sys.stderr)
        return exc.EXIT_INTERRUPTED
    except BrokenPipeError:
        return exc.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
