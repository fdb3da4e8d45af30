"""A model call's life in the ledger.

Reserved at its worst case before the call, then settled to the reported usage, kept
charged (lost) or released (refused).

The worst case is the price of upper bounds of the call's input and output tokens
(`enduro.budgets.tokens`), so a reservation the ledger accepts can never be exceeded by what
the provider bills; the ledger refuses one that would pass a limit (see `Ledger.reserve`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage

from enduro.budgets.ledger import Caps, Ledger
from enduro.budgets.pricing import Price, TokenCounts, to_nano

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    """One model call's ledger row, reserved until the call ends.

    Made by `reserve_call`; ended by exactly one of `settle` or `fail`.
    """

    ledger: Ledger
    call_id: str
    usd_nano: int
    """The worst case reserved, in nano-dollars (0 for an unpriced model)."""
    price: Price | None

    async def settle(self, message: AIMessage | None) -> int:
        """Charge the usage the provider reported on `message`; returns nano-dollars charged.

        With no usage reported the provider billed something enduro cannot see, so the row
        stays charged at its reservation.
        """
        counts = token_counts(message) if message is not None else None
        if counts is None:
            await self.ledger.mark_lost(self.call_id, "no usage reported")
            return self.usd_nano
        usd_nano = to_nano(self.price.cost(counts)) if self.price is not None else 0
        if usd_nano > self.usd_nano:
            log.warning(
                "reported usage (%d in, %d out) costs more than the reserved worst case; "
                "recording what was reported",
                counts.input,
                counts.output,
            )
        await self.ledger.settle(self.call_id, usd_nano=usd_nano, counts=counts)
        return usd_nano

    async def fail(self, detail: str, *, billed: bool) -> None:
        """End a failed call's reservation.

        Kept charged when the provider may have billed it (timeout, cut stream, 5xx, an
        unknown error), else released to zero (a refusal).
        """
        if billed:
            await self.ledger.mark_lost(self.call_id, detail)
        else:
            await self.ledger.release(self.call_id, detail)


async def reserve_call(
    ledger: Ledger,
    *,
    thread_id: str,
    node: str,
    model: str,
    price: Price | None,
    input_tokens: int,
    output_tokens: int,
    caps: Caps,
) -> Reservation:
    """Reserve a model call at its worst case before it is made.

    Args:
        ledger: the thread's ledger.
        thread_id: the thread the call is for.
        node: the graph node making it.
        model: the model name, as the report shows it.
        price: its price; None for an unpriced model (reserved at $0, tokens still count).
        input_tokens: upper bound of the prompt tokens it can be billed.
        output_tokens: upper bound of the completion tokens (its max_tokens).
        caps: the limits the thread's charged total must stay within.

    Raises:
        BudgetStop: the reservation would pass one of `caps`; names the limit.
    """
    worst = worst_case_nano(price, input_tokens, output_tokens)
    call_id = await ledger.reserve(
        thread_id=thread_id,
        node=node,
        model=model,
        usd_nano=worst,
        tokens=input_tokens + output_tokens,
        caps=caps,
        priced=price is not None,
    )
    return Reservation(ledger, call_id, worst, price)


def worst_case_nano(price: Price | None, input_tokens: int, output_tokens: int) -> int:
    """Nano-dollars a call of at most these tokens can cost (0 unpriced)."""
    return to_nano(price.worst_case(input_tokens, output_tokens)) if price is not None else 0


def token_counts(message: AIMessage) -> TokenCounts | None:
    """The usage the provider reported on `message`, or None when it reported none."""
    meta = message.usage_metadata
    if not meta:
        return None
    inputs: Mapping[str, Any] = meta.get("input_token_details") or {}
    outputs: Mapping[str, Any] = meta.get("output_token_details") or {}
    return TokenCounts(
        input=int(meta.get("input_tokens") or 0),
        output=int(meta.get("output_tokens") or 0),
        cached_input=int(inputs.get("cache_read") or 0),
        cache_write=int(inputs.get("cache_creation") or 0),
        reasoning=int(outputs.get("reasoning") or 0),
    )
