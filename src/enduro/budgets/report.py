"""The spend part of a report and of the status JSON, from the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from enduro.budgets.ledger import Ledger, SpendLine, Totals
from enduro.forecast import StepCost, step_costs
from enduro.storage import Database


def _money(usd: float) -> str:
    return f"${usd:.4f}" if usd < 100 else f"${usd:,.2f}"


def spend_lines(lines: Sequence[SpendLine], totals: Totals) -> list[str]:
    """Report lines: spend by model and by node, and calls charged at their reservation."""
    if not lines:
        return []
    by_model: dict[str, list[float]] = {}
    by_node: dict[str, list[float]] = {}
    for line in lines:
        for key, table in ((line.model, by_model), (line.node, by_node)):
            usd, calls = table.get(key, [0.0, 0.0])
            table[key] = [usd + line.usd, calls + line.calls]

    def fmt(table: dict[str, list[float]]) -> str:
        return ", ".join(
            f"{k} {_money(usd)} ({int(n)} call{'' if n == 1 else 's'})"
            for k, (usd, n) in table.items()
        )

    out = [
        f"Spend: {_money(totals.usd)} (from the ledger)",
        f"  by model: {fmt(by_model)}",
        f"  by node: {fmt(by_node)}",
    ]
    unsettled = totals.open_calls + totals.lost_calls
    if unsettled:
        out.append(
            f"  {unsettled} call(s) never reported usage (crash, timeout or cut stream) and "
            "stay charged at their worst case"
        )
    if totals.unpriced_calls:
        out.append(f"  {totals.unpriced_calls} call(s) of a model with no known price: $0")
    return out


def ledger_usage(totals: Totals, active_seconds: float) -> dict[str, Any]:
    """The status JSON's usage figures that the ledger owns."""
    return {
        "usd": round(totals.usd, 9),
        "llm_calls": totals.llm_calls,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "active_seconds": round(active_seconds, 3),
        # Calls in flight and calls that never settled: both are charged at their worst
        # case, which is what this figure explains (docs/budgets.md, Status JSON).
        "reserved_usd": round(totals.unsettled_nusd / 1e9, 9),
        "unsettled_calls": totals.open_calls + totals.lost_calls,
    }


@dataclass(frozen=True)
class SpendView:
    """What status and reports show of a thread's budget, read from the ledger."""

    totals: Totals
    lines: list[SpendLine]
    active_seconds: float
    calls: list[dict[str, Any]] = field(default_factory=list)
    """The ledger's rows in time order (`Ledger.calls`), for spend over time and forecasts."""

    def usage(self) -> dict[str, Any]:
        """The status JSON's ledger-owned usage figures (see `ledger_usage`)."""
        return ledger_usage(self.totals, self.active_seconds)

    def report_lines(self) -> list[str]:
        """The report's spend lines: by model, by node, and calls charged at their reservation."""
        return spend_lines(self.lines, self.totals)

    def step_costs(self) -> list[StepCost]:
        """Per-step samples for the forecast's range (roll-ups and refused calls left out)."""
        return step_costs([c for c in self.calls if not c["rollup"] and c["state"] != "released"])


async def load_spend(db: Database, thread_id: str) -> SpendView:
    """Everything the ledger knows about a thread's spend, read at once.

    Totals, the per-model/per-node breakdown, active run seconds and every call; status,
    report, forecast and the dashboard all read spend from here, never from the checkpoint.

    Raises:
        DatabaseUnreachable: the database stayed down past the outage timeout.
    """
    ledger = Ledger(db)
    # Independent reads: on PostgreSQL they run on pooled connections at once (every
    # webhook event and every `enduro status` waits for them).
    totals, lines, active_seconds, calls = await asyncio.gather(
        ledger.totals(thread_id),
        ledger.breakdown(thread_id),
        ledger.active_seconds(thread_id),
        ledger.calls(thread_id),
    )
    return SpendView(totals=totals, lines=lines, active_seconds=active_seconds, calls=calls)
