"""Argument types shared by every `enduro` subcommand."""

from __future__ import annotations

import argparse
import math
from typing import Any


def number(kind: type, *, allow_zero: bool = False) -> Any:
    """An argparse type for a finite number > 0 (>= 0 with allow_zero).

    `nan` and `inf` are refused, since either would silently disable a limit.
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = "at least 0" if allow_zero else "greater than 0"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse
