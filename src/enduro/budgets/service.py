"""What the nodes reach the budget through (`Services.budget`).

That is the ledger, the run clock and the time left.

The runner hands in a ledger on its own database. Under `langgraph dev` there is no runner,
so the ledger is opened lazily, on first use, from `Settings.from_env().database_url` (the
same database enduro's checkpointer uses there), once per event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from enduro.budgets.clock import ActiveClock
from enduro.budgets.ledger import Ledger
from enduro.budgets.limits import deadline_epoch, final_reserve_usd, time_left
from enduro.budgets.pricing import resolve_price
from enduro.context import EnduroContext
from enduro.settings import Settings
from enduro.storage import open_database
from enduro.storage.outage import OutagePolicy, outage_seconds_from_env


class BudgetService:
    """Ledger, clock and time limits for one compiled graph."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self._ledger = ledger
        # Keyed by the loop object, weakly: an id() can be reused by a new loop after the old
        # one closed, which would hand out a pool bound to a dead loop.
        self._lazy: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[contextlib.AsyncExitStack, Ledger]
        ] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.clock = ActiveClock()

    async def ledger(self) -> Ledger:
        """The ledger on the run's database.

        The runner's ledger when one was handed in; otherwise (under `langgraph dev`) one
        opened on first use per event loop from `Settings.from_env().database_url` and kept
        open for the life of the process.

        Raises:
            ConfigError: no runner ledger and no usable database URL in the environment.
        """
        if self._ledger is not None:
            return self._ledger
        loop = asyncio.get_running_loop()
        if loop in self._lazy:
            return self._lazy[loop][1]
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if loop not in self._lazy:
                # Kept open for the life of the process (the dev server's), like its saver.
                stack = contextlib.AsyncExitStack()
                db = await stack.enter_async_context(
                    open_database(
                        Settings.from_env().database_url,
                        OutagePolicy(timeout=outage_seconds_from_env()),
                    )
                )
                self._lazy[loop] = (stack, Ledger(db))
        return self._lazy[loop][1]

    async def active_seconds(self, thread_id: str) -> float:
        """Active run time so far, in seconds.

        Live from the clock while a node runs here, else the ledger's record.
        """
        live = self.clock.used(thread_id)
        if live is not None:
            return live
        return await (await self.ledger()).active_seconds(thread_id)

    async def time_left(self, context: EnduroContext, thread_id: str) -> tuple[float, str] | None:
        """Seconds left under the tighter of max_minutes and the deadline, and its name."""
        if context.max_minutes is None and not context.deadline:
            return None
        return time_left(
            max_minutes=context.max_minutes,
            active_seconds=await self.active_seconds(thread_id),
            deadline=deadline_epoch(context.deadline),
            now=time.time(),
        )

    async def assess(
        self, context: EnduroContext, thread_id: str, state_usage: Mapping[str, Any], model: str
    ) -> Assessment:
        """Everything `decide` needs, as an `Assessment`.

        Money, tokens, model calls and run time come from the ledger; iterations and tool calls from
        the state, which the checkpoint records.
        """
        totals = await (await self.ledger()).totals(thread_id)
        usage = {
            "usd": totals.usd,
            "tokens": float(totals.charged_tokens),
            "llm_calls": float(totals.llm_calls),
            "active_seconds": await self.active_seconds(thread_id),
            "iterations": float(state_usage.get("iterations", 0)),
            "tool_calls": float(state_usage.get("tool_calls", 0)),
        }
        deadline = deadline_epoch(context.deadline)
        price = resolve_price(model, context.prices)
        # The next call reserves at least its output bound; a bound of the prompt would
        # need the prompt, which act builds.
        next_call = price.worst_case(0, context.max_output_tokens) if price is not None else 0
        return Assessment(
            usage=usage,
            reserve_usd=final_reserve_usd(context.max_usd, context.final_reserve_usd),
            next_call_usd=float(next_call),
            seconds_to_deadline=None if deadline is None else deadline - time.time(),
        )

    @contextlib.asynccontextmanager
    async def running(self, thread_id: str) -> AsyncIterator[None]:
        """Count the enclosed node's wall time as active run time of the thread."""
        async with self.clock.running(await self.ledger(), thread_id):
            yield


@dataclass(frozen=True)
class Assessment:
    """The guard's view of a thread's budget."""

    usage: dict[str, float]
    reserve_usd: float
    next_call_usd: float
    seconds_to_deadline: float | None
