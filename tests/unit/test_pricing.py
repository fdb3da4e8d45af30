"""Pricing from genai-prices and per-model overrides, in nano-dollars rounded the safe way."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enduro.budgets.pricing import (
    FREE,
    TokenCounts,
    catalog_price,
    override_price,
    require_price,
    resolve_price,
    to_nano,
    usd_to_nano_floor,
)
from enduro.errors import ConfigError

MINI = "gpt-4o-mini"  # $0.15 in, $0.075 cached in, $0.60 out per million tokens


def test_catalogue_prices_input_cached_and_output() -> None:
    price = catalog_price(MINI)
    assert price is not None and "openai" in price.source
    assert price.cost(TokenCounts(input=1_000_000, output=0)) == Decimal("0.15")
    assert price.cost(TokenCounts(input=0, output=1_000_000)) == Decimal("0.6")
    half_cached = TokenCounts(input=1_000_000, cached_input=500_000)
    assert price.cost(half_cached) == Decimal("0.1125")


def test_reasoning_tokens_are_part_of_output_not_extra() -> None:
    price = catalog_price("o3-mini")
    assert price is not None
    plain = price.cost(TokenCounts(input=1000, output=1000))
    assert price.cost(TokenCounts(input=1000, output=1000, reasoning=800)) == plain


def test_cache_writes_priced_where_the_catalogue_prices_them() -> None:
    price = catalog_price("claude-sonnet-4")
    assert price is not None
    plain = price.cost(TokenCounts(input=1000, output=0))
    assert price.cost(TokenCounts(input=1000, cache_write=1000)) > plain
    # The worst case covers the dearest split: all input written to the cache.
    assert price.worst_case(1000, 0) >= price.cost(TokenCounts(input=1000, cache_write=1000))


def test_inconsistent_details_fall_back_to_the_worst_case() -> None:
    price = catalog_price(MINI)
    assert price is not None
    bad = TokenCounts(input=10, cached_input=50, output=10)
    assert price.cost(bad) == price.worst_case(10, 10)


def test_tiered_prices_rise_past_the_threshold() -> None:
    price = catalog_price("gemini-2.5-pro")
    assert price is not None
    per_token_small = price.worst_case(100_000, 0) / 100_000
    per_token_large = price.worst_case(300_000, 0) / 300_000
    assert per_token_large > per_token_small


@given(
    inputs=st.integers(0, 2_000_000),
    cached=st.integers(0, 2_000_000),
    outputs=st.integers(0, 200_000),
    reasoning=st.integers(0, 200_000),
    model=st.sampled_from([MINI, "o3-mini", "claude-sonnet-4", "gemini-2.5-pro", "gpt-4o"]),
)
def test_worst_case_bounds_every_split(
    inputs: int, cached: int, outputs: int, reasoning: int, model: str
) -> None:
    price = catalog_price(model)
    assert price is not None
    counts = TokenCounts(
        input=inputs,
        output=outputs,
        cached_input=min(cached, inputs),
        reasoning=min(reasoning, outputs),
    )
    assert price.cost(counts) <= price.worst_case(inputs, outputs)


def test_override_price_and_its_defaults() -> None:
    price = override_price({"input": 2.0, "output": 8.0})
    assert price.cached_input == Decimal("2.0"), "cached input defaults to the input price"
    assert price.cost(TokenCounts(input=500_000, output=250_000)) == Decimal("3")
    cheap_cache = override_price({"input": 2.0, "output": 8.0, "cached_input": 0.5})
    assert cheap_cache.cost(TokenCounts(input=1_000_000, cached_input=1_000_000)) == Decimal("0.5")
    assert cheap_cache.worst_case(1_000_000, 0) == Decimal("2")


def test_free_model() -> None:
    price = override_price({"input": 0, "output": 0})
    assert price.source == "free" and price.worst_case(10**9, 10**9) == 0
    assert FREE.cost(TokenCounts(input=5, output=5)) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"input": 1.0}, "missing output"),
        ({"input": -1, "output": 1}, "input=-1"),
        ({"input": float("nan"), "output": 1}, "input=nan"),
        ({"input": "cheap", "output": 1}, "input='cheap'"),
    ],
)
def test_bad_overrides_name_the_bad_value(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        override_price(spec)  # type: ignore[arg-type]


def test_resolution_order_override_then_catalogue_then_unknown() -> None:
    overrides = {MINI: {"input": 9.0, "output": 9.0}}
    resolved = resolve_price(MINI, overrides)
    assert resolved is not None and resolved.source == "override"
    assert resolve_price(MINI, {}) == catalog_price(MINI)
    assert resolve_price("llama3-local", {}) is None


def test_unknown_price_fails_closed_with_what_to_do() -> None:
    with pytest.raises(ConfigError) as exc:
        require_price("llama3-local", {})
    text = str(exc.value)
    assert "'llama3-local'" in text
    assert "--price-input" in text and "--price-output" in text and "--free-model" in text
    require_price("llama3-local", {"llama3-local": {"input": 0, "output": 0}})


def test_rounding_is_on_the_safe_side() -> None:
    assert to_nano(Decimal("0.0000000001")) == 1, "a cost rounds up"
    assert to_nano(Decimal("0.15")) == 150_000_000
    assert usd_to_nano_floor(0.1) == 100_000_000, "no float error on a limit"
    assert usd_to_nano_floor(1e-10) == 0, "a limit rounds down"
