"""The wrapper every node runs in.

Its wall time counts as the thread's active run time, and a `RunStop` raised inside it (a refused
reservation, a provider error that retrying cannot fix) becomes a state update that routes the run
to finish instead of crashing it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from enduro.budgets.service import BudgetService
from enduro.errors import RunStop

log = logging.getLogger(__name__)

Node = Callable[..., Awaitable[dict[str, Any]]]


def _thread_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    config = kwargs.get("config")
    if config is None:
        config = next((a for a in args if isinstance(a, dict) and "configurable" in a), None)
    thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
    if not thread_id:
        raise ValueError("enduro graphs need config['configurable']['thread_id']")
    return str(thread_id)


def metered_node(node: Node, budget: BudgetService) -> Callable[..., Any]:
    """`node`, timed against the thread's clock and stopping gracefully on RunStop.

    `usage.active_seconds` in the state keeps the node's own wall time too (Studio shows
    it); limits and status read the ledger's clock, which survives crashes.
    """

    @functools.wraps(node)
    async def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        thread_id = _thread_id(args, kwargs)
        started = time.monotonic()
        async with budget.running(thread_id):
            try:
                update = await node(*args, **kwargs)
            except RunStop as stop:
                log.info("%s stops the run: %s", node.__name__, stop.stop_reason)
                update = stop.update()
        usage = dict(update.get("usage") or {})
        usage["active_seconds"] = usage.get("active_seconds", 0) + time.monotonic() - started
        return {**update, "usage": usage}

    return wrapper
