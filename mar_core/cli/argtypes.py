"""argparse value types shared by every sub-command (the one home of CLI argument parsing)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A parser of an integer in ``lo..hi`` (``hi`` None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            if hi is None and lo == 1:
                raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi if hi is not None else 'inf'}, got {v}")
        return v

    return parse


positive_int = int_in(1)  # an integer >= 1


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return v


def csv(text: str) -> list[str]:
    """A comma-separated list of non-empty strings."""
    return [t.strip() for t in text.split(",") if t.strip()]


def csv_ints(text: str) -> list[int]:
    """A comma-separated list of integers."""
    try:
        return [int(t) for t in csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
