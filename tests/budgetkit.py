"""Helpers shared by the budget tests, the fuzz test and bench/budget.py: one price for the
scripted model, the server's own bill priced the way the ledger prices, and run set-up."""

from __future__ import annotations

import uuid
from typing import Any

from enduro.budgets.ledger import Ledger, Totals
from enduro.budgets.pricing import TokenCounts, override_price, to_nano
from enduro.context import EnduroContext
from enduro.runner import create_run
from enduro.storage import open_backend
from fakellm import ScriptedLLM

MODEL = "fake-model"
PRICE = {"input": 2.0, "output": 8.0}
"""USD per million tokens for the scripted model (genai-prices does not know it)."""


def context(price: dict[str, float] | None = None, **knobs: Any) -> EnduroContext:
    knobs.setdefault("max_output_tokens", 256)
    return EnduroContext(model=MODEL, prices={MODEL: dict(price or PRICE)}, **knobs)


def billed_nusd(llm: ScriptedLLM, price: dict[str, float] | None = None) -> int:
    """What the provider billed (its own tally of answered requests), priced per call like
    the ledger prices: each call rounded up to a nano-dollar."""
    rate = override_price(price or PRICE)
    with llm._lock:
        usages = [r.usage for r in llm.requests if r.ok]
    return sum(to_nano(rate.cost(TokenCounts(input=p, output=c))) for p, c in usages)


def usd_to_nano(usd: float) -> int:
    return round(usd * 1_000_000_000)


async def start(db_url: str, goal: str = "Research durable agents", **knobs: Any) -> str:
    price = knobs.pop("price", None)
    async with open_backend(db_url) as backend:
        return await create_run(
            backend, goal, context(price, **knobs), f"t-{uuid.uuid4().hex[:12]}"
        )


async def totals(db_url: str, thread_id: str) -> Totals:
    async with open_backend(db_url) as backend:
        return await Ledger(backend.db).totals(thread_id)


async def ledger_rows(db_url: str, thread_id: str) -> list[dict[str, Any]]:
    async with open_backend(db_url) as backend:
        return await backend.db.fetchall(
            "SELECT * FROM enduro_spend WHERE thread_id = %s ORDER BY created_at", (thread_id,)
        )
