"""The budget flags of `enduro run` / `enduro resume`, declared once.

Also the context overrides those flags make.

Every limit and price flag is here (and nowhere else), each with help text naming its
unit; `budget_overrides` turns the ones given on a command line into context overrides
(flags not given carry the stored value over on resume).
"""

from __future__ import annotations

import argparse
from typing import Any

from enduro.budgets.limits import parse_deadline
from enduro.cliargs import number
from enduro.context import LIMIT_KEYS
from enduro.errors import ConfigError


def _deadline(text: str) -> str:
    try:
        return parse_deadline(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_budget_flags(parser: argparse.ArgumentParser) -> None:
    """Add every limit and price flag to `parser` (one argument group)."""
    group = parser.add_argument_group("budget (see docs/budgets.md)")
    group.add_argument(
        "--max-usd",
        type=number(float),
        metavar="USD",
        help="stop before the run's spend could pass this many US dollars",
    )
    group.add_argument(
        "--max-minutes",
        type=number(float),
        metavar="MINUTES",
        help="minutes of active run time (summed over segments; waiting is not counted)",
    )
    group.add_argument(
        "--max-iterations",
        type=number(int),
        metavar="N",
        help="agent-loop iterations (each act model call the guard lets start)",
    )
    group.add_argument(
        "--max-llm-calls",
        type=number(int),
        metavar="N",
        help="model calls of every node (plan, act, reflect, finish)",
    )
    group.add_argument(
        "--max-tool-calls",
        type=number(int),
        metavar="N",
        help="tool calls executed",
    )
    group.add_argument(
        "--max-tokens",
        type=number(int, allow_zero=False),
        metavar="TOKENS",
        help="prompt + completion tokens over the whole run",
    )
    group.add_argument(
        "--deadline",
        type=_deadline,
        metavar="TIME",
        help="stop by this wall-clock time: ISO 8601 (2026-01-31T18:00Z) or relative "
        "to now (+90m, 2h)",
    )
    group.add_argument(
        "--price-input",
        type=number(float, allow_zero=True),
        metavar="USD_PER_MTOK",
        help="input price of --model, USD per million tokens (overrides genai-prices)",
    )
    group.add_argument(
        "--price-output",
        type=number(float, allow_zero=True),
        metavar="USD_PER_MTOK",
        help="output price of --model, USD per million tokens",
    )
    group.add_argument(
        "--price-cached-input",
        type=number(float, allow_zero=True),
        metavar="USD_PER_MTOK",
        help="cached-input price of --model, USD per million tokens (default: the input price)",
    )
    group.add_argument(
        "--free-model",
        action="store_true",
        default=None,
        help="--model is self-hosted and costs nothing per token",
    )
    group.add_argument(
        "--final-reserve-usd",
        type=number(float, allow_zero=True),
        metavar="USD",
        help="US dollars kept back for the final summary (default 5%% of --max-usd)",
    )
    group.add_argument(
        "--max-output-tokens",
        type=number(int, allow_zero=False),
        metavar="TOKENS",
        help="completion tokens allowed per model call, sent as max_tokens (default 2048)",
    )
    group.add_argument(
        "--clear-limit",
        action="append",
        choices=LIMIT_KEYS,
        metavar="LIMIT",
        help="remove a stored limit on resume (repeatable): " + ", ".join(LIMIT_KEYS),
    )


def budget_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Context overrides from the budget flags given on this command line."""
    out: dict[str, Any] = {}
    for name in (*LIMIT_KEYS, "final_reserve_usd", "max_output_tokens"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    price = {
        key: getattr(args, f"price_{key}", None)
        for key in ("input", "output", "cached_input")
        if getattr(args, f"price_{key}", None) is not None
    }
    if getattr(args, "free_model", None):
        if price:
            raise ConfigError("--free-model and --price-* contradict each other: pass one")
        price = {"input": 0.0, "output": 0.0, "cached_input": 0.0}
    if price:
        # "" is the model in effect after this command line's --model (see with_overrides).
        out["prices"] = {"": price}
    if getattr(args, "clear_limit", None):
        out["unset"] = list(args.clear_limit)
    return out
