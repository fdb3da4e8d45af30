"""Prices: what a call cost, and what it could cost at worst.

Prices come from the genai-prices catalogue (input, cached input, cache writes, output and
reasoning tokens, tiered prices included) unless the thread's context overrides them per
model (`prices[model] = {"input": …, "output": …, "cached_input": …}` in USD per million
tokens; a free, self-hosted model is `{"input": 0, "output": 0}`).

Amounts are integers of nano-dollars (1e-9 USD), rounded up: sums in the ledger are exact,
and rounding can only make enduro stop earlier, never later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from enduro.errors import ConfigError

if TYPE_CHECKING:
    import genai_prices

NANO_PER_USD = 1_000_000_000
_MTOK = Decimal(1_000_000)


@lru_cache(maxsize=1)
def load_catalog() -> None:
    """Import genai-prices and load its bundled catalogue (once per process).

    Not at import time of this module: the status, list and report commands need the
    ledger's amounts but no price, and the catalogue costs ~0.2 s to load. `enduro.graph`
    calls this when it is imported, because a node must not do blocking file reads on the
    event loop (`langgraph dev` rejects them).
    """
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()


@dataclass(frozen=True)
class TokenCounts:
    """Tokens of one call as the provider reported them (LangChain `usage_metadata`)."""

    input: int
    """All prompt tokens, cached ones included."""
    output: int = 0
    """All completion tokens, reasoning ones included."""
    cached_input: int = 0
    """Prompt tokens read from the provider's cache (cheaper)."""
    cache_write: int = 0
    """Prompt tokens written to the provider's cache (dearer, where priced)."""
    reasoning: int = 0
    """Completion tokens spent on hidden reasoning."""

    @property
    def total(self) -> int:
        """Prompt plus completion tokens (cached and reasoning ones are inside these)."""
        return self.input + self.output


class Price(Protocol):
    """How one model's calls are priced, in US dollars.

    Implemented by `OverridePrice` (the context's `prices`) and `CatalogPrice` (the
    genai-prices catalogue); `price_for` picks one.
    """

    @property
    def source(self) -> str:
        """Where the price comes from (catalogue entry, override, free)."""
        ...

    def cost(self, tokens: TokenCounts) -> Decimal:
        """USD for tokens the provider reported."""
        ...

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """USD upper bound for a call of at most this many input and output tokens.

        It holds however the provider splits them into cached, cache-write and reasoning tokens.
        """
        ...


@dataclass(frozen=True)
class OverridePrice:
    """A per-model price from the context (USD per million tokens)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    source: str = "override"

    def cost(self, tokens: TokenCounts) -> Decimal:
        """Dollars for one call: uncached input, cached input and output at their prices."""
        cached = min(tokens.cached_input, tokens.input)
        # Cache writes and reasoning are billed as plain input and output by the
        # OpenAI-compatible servers an override is for.
        return (
            (tokens.input - cached) * self.input
            + cached * self.cached_input
            + tokens.output * self.output
        ) / _MTOK

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Most a call of these token counts can cost, in dollars (what is reserved).

        Every input token is priced at the dearer input price, plain or cached.
        """
        return (
            input_tokens * max(self.input, self.cached_input) + output_tokens * self.output
        ) / _MTOK


@dataclass(frozen=True)
class CatalogPrice:
    """A price from the genai-prices catalogue."""

    model: str
    source: str

    def cost(self, tokens: TokenCounts) -> Decimal:
        """Dollars for one call by the catalogue's rules (cache reads/writes, tiers).

        Counts the catalogue rejects as inconsistent (more cached than input tokens) are
        priced at `worst_case` instead.
        """
        try:
            return self._calc(_usage(tokens))
        except ValueError:
            # Inconsistent details (e.g. more cached than input tokens): price the plain
            # counts at the dearest split instead of guessing.
            return self.worst_case(tokens.input, tokens.output)

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Most a call of these token counts can cost, in dollars (what is reserved).

        Prices are linear or tiered-increasing per kind of token, so the dearest split puts
        all input tokens in one kind; each kind is priced and the largest wins.
        """
        # Prices are linear (or tiered, increasing) in each kind of token, so the dearest
        # split of I input and O output tokens puts all of them in one kind: check each.
        i, o = input_tokens, output_tokens
        candidates = [
            {"input_tokens": i, "output_tokens": o},
            {"input_tokens": i, "cache_write_tokens": i, "output_tokens": o},
            {
                "input_tokens": i,
                "cache_write_tokens": i,
                "cache_write_1h_tokens": i,
                "output_tokens": o,
            },
            {"input_tokens": i, "output_tokens": o, "output_reasoning_tokens": o},
        ]
        import genai_prices

        best = Decimal(0)
        for values in candidates:
            try:
                best = max(best, self._calc(genai_prices.Usage(**values)))
            except ValueError:
                continue
        return best

    def _calc(self, usage: genai_prices.Usage) -> Decimal:
        import genai_prices

        total = genai_prices.calc_price(usage, self.model).total_price
        return Decimal(total)


FREE = OverridePrice(Decimal(0), Decimal(0), Decimal(0), source="free")


def _usage(tokens: TokenCounts) -> genai_prices.Usage:
    import genai_prices

    values = {
        "input_tokens": tokens.input,
        "output_tokens": tokens.output,
        "cache_read_tokens": tokens.cached_input,
        "cache_write_tokens": tokens.cache_write,
        "output_reasoning_tokens": tokens.reasoning,
    }
    return genai_prices.Usage(**{k: v for k, v in values.items() if v})


@lru_cache(maxsize=256)
def catalog_price(model: str) -> CatalogPrice | None:
    """The catalogue's price for `model`, or None when the catalogue does not know it."""
    import genai_prices

    load_catalog()
    try:
        found = genai_prices.calc_price(genai_prices.Usage(input_tokens=1), model)
    except LookupError:
        return None
    return CatalogPrice(model, source=f"genai-prices:{found.provider.id}/{found.model.id}")


def override_price(spec: Mapping[str, float | None]) -> OverridePrice:
    """An override from its context form; `cached_input` defaults to `input` (the safe side)."""
    values: dict[str, Decimal] = {}
    for key in ("input", "output", "cached_input"):
        raw = spec.get(key)
        if raw is None:
            continue
        if not isinstance(raw, int | float) or not math.isfinite(raw) or raw < 0:
            raise ConfigError(
                f"price {key}={raw!r} is not a number >= 0: give USD per million tokens, "
                "e.g. --price-input 0.15"
            )
        values[key] = Decimal(str(raw))
    missing = [k for k in ("input", "output") if k not in values]
    if missing:
        raise ConfigError(
            f"a price override needs both input and output prices; missing {', '.join(missing)}"
            " (pass --price-input and --price-output, or --free-model for a self-hosted model)"
        )
    free = values["input"] == 0 and values["output"] == 0 and not values.get("cached_input")
    return OverridePrice(
        values["input"],
        values["output"],
        values.get("cached_input", values["input"]),
        source="free" if free else "override",
    )


def resolve_price(model: str, overrides: Mapping[str, Mapping[str, float | None]]) -> Price | None:
    """The price used for `model`: the context's override, else the catalogue, else None."""
    spec = (overrides or {}).get(model)
    if spec is not None:
        return override_price(spec)
    return catalog_price(model)


def unknown_price_message(model: str) -> str:
    """Why a run with --max-usd cannot call `model` (no price known), and the flags to fix it."""
    return (
        f"no known price for model {model!r}, and a dollar limit (--max-usd) is set: enduro "
        f"cannot keep spend under a limit it cannot price. Pass --price-input and "
        f"--price-output (USD per million tokens) for {model!r}, or --free-model if it is "
        "self-hosted and costs nothing per token"
    )


def require_price(model: str, overrides: Mapping[str, Mapping[str, float | None]]) -> None:
    """Fail closed: a run with a dollar limit must be able to price its model."""
    if resolve_price(model, overrides) is None:
        raise ConfigError(unknown_price_message(model))


def to_nano(usd: Decimal) -> int:
    """USD to nano-dollars, rounded up."""
    return math.ceil(usd * NANO_PER_USD)


def nano_to_usd(nano: int) -> float:
    """Nano-dollars (the ledger's integer unit, 1e-9 USD) as US dollars."""
    return nano / NANO_PER_USD


def usd_to_nano_floor(usd: float) -> int:
    """A limit in nano-dollars, rounded down (the safe side for a limit)."""
    return math.floor(Decimal(str(usd)) * NANO_PER_USD)
