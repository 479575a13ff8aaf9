"""Values on a command line: byte sizes (``64MiB``), argparse types that check a range, and the
argument parser every command uses. Standard library only: the CLI imports it at start-up."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

__all__ = ["ArgumentParser", "claim_timeout", "float_in", "int_in", "non_negative_int",
           "parse_size", "positive_int", "positive_size", "probability", "seconds", "size",
           "reduces", "workers"]

_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}


def parse_size(text: str) -> int:
    """Parse a byte count: ``"123"``, ``"64K"``, ``"1.5MiB"``, ``"10MB"``, ``"2g"``.

    K/KiB/M/MiB/G/GiB/T/TiB are powers of 1024, KB/MB/GB/TB powers of 1000, B or no suffix is
    bytes; case-insensitive. Fractions are allowed if the result is a whole number of bytes.
    Raises ValueError on anything else (including negative numbers).
    """
    if not isinstance(text, str):
        raise TypeError(f"size must be a string, got {text!r}")
    m = _SIZE_RE.fullmatch(text)
    unit = _SIZE_UNITS.get(m.group(2).lower()) if m else None
    if unit is None:
        raise ValueError(
            f"invalid size {text!r}: expected a number with an optional unit "
            "(B, K/KiB, M/MiB, G/GiB, T/TiB = 1024-based; KB, MB, GB, TB = 1000-based)"
        )
    try:
        value = Decimal(m.group(1)) * unit  # type: ignore[union-attr]
    except InvalidOperation:  # pragma: no cover - the regex only admits valid decimals
        raise ValueError(f"invalid size {text!r}") from None
    if value != value.to_integral_value():
        raise ValueError(f"invalid size {text!r}: not a whole number of bytes ({value})")
    return int(value)


# -- argparse types: each raises ArgumentTypeError, which argparse prints as a usage error -----

def size(text: str) -> int:
    """A byte count (``parse_size``), 0 or more."""
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_size(text: str) -> int:
    value = size(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte: {text!r}")
    return value


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer within [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}: {text}")
        return value
    return parse


def float_in(low: float, high: float = 1e6, above: bool = False) -> Callable[[str], float]:
    """A finite number within [low, high] (``above``: greater than low)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or (above and value == low) or value > high:
            bound = f"greater than {low:g}" if above else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {high:g}: {text}")
        return value
    return parse


def fraction_in(low: int, high: int) -> Callable[[str], str]:
    """An exact decimal or fraction (``0.85``, ``1e-9``, ``17/20``) in [low, high), kept as
    its text: a fixed-point computation turns it into a Fraction, never a float."""
    def parse(text: str) -> str:
        from fractions import Fraction

        try:
            value = Fraction(text.strip())
        except (ValueError, ZeroDivisionError):
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value < high:
            raise argparse.ArgumentTypeError(f"must be at least {low} and below {high}: {text}")
        return text.strip()
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)
workers = int_in(1, 1024)  # --workers
reduces = int_in(1, 256)  # --reduces (shuffle.MAX_REDUCES)
seconds = float_in(0, 1e9, above=True)  # --timeout
probability = float_in(0, 1)
claim_timeout = int_in(10, 2**31 - 1)  # ms


class ArgumentParser(argparse.ArgumentParser):
    """argparse, less one trap: ``--opt=--`` (or ``--opt --``) would give the option an empty
    list, skipping its type check (CPython's argparse strips the first '--' of the values)."""

    def _get_values(self, action, arg_strings):
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)
