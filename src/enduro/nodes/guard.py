"""guard: the one place that decides whether another model call may start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from enduro.budgets import decide
from enduro.budgets.decision import carried_warnings, snapshot
from enduro.context import EnduroContext
from enduro.errors import StopReason
from enduro.events import Fields, event, say, segment_of, thread_snapshot, warning_info
from enduro.models import model_name_of
from enduro.nodes.plan import has_open_steps
from enduro.nodes.services import Services, context_of, thread_id_of
from enduro.state import AgentState, RunStatus


def status_for(stop_reason: str | None) -> RunStatus:
    """The terminal status of a guard stop: completed, cancelled or budget_exhausted."""
    if stop_reason is None:
        return "completed"
    if stop_reason == StopReason.CANCEL:
        return "cancelled"
    return "budget_exhausted"


# Set by a node whose model call was refused (a limit, or a provider error that retrying
# cannot fix): the guard passes them on to finish untouched.
_NODE_STOPS = ("budget_exhausted", "paused", "failed")


def make_guard_node(services: Services) -> Any:
    """The guard node: another iteration, or finish.

    It records the budget snapshot and the warnings, and says budget.warning for each new
    warning.
    """

    async def guard(
        state: AgentState, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        if state.get("status") in _NODE_STOPS:
            return {}
        context = context_of(runtime)
        thread_id = thread_id_of(config)
        limits = context.limits()
        seen = state.get("warnings") or []
        warned = carried_warnings(seen, state.get("budget") or {}, limits)
        model = model_name_of(services.model(context), context.model)
        assessed = await services.budget.assess(context, thread_id, state.get("usage") or {}, model)
        decision = decide(
            limits=limits,
            usage=assessed.usage,
            cancel_requested=await services.cancel_requested(thread_id),
            steps_pending=has_open_steps(state.get("plan") or []),
            warned=warned,
            reserve_usd=assessed.reserve_usd,
            next_call_usd=assessed.next_call_usd,
            seconds_to_deadline=assessed.seconds_to_deadline,
        )
        update: dict[str, Any] = {
            "budget": snapshot(limits, assessed.usage, assessed.seconds_to_deadline)
        }
        if decision.warnings or warned != seen:
            update["warnings"] = [*warned, *decision.warnings]
        if decision.proceed:
            update["usage"] = {"iterations": 1}
            update["status"] = "running"
        else:
            update["status"] = status_for(decision.stop_reason)
            update["stop_reason"] = decision.stop_reason
        await _say_warnings(decision.warnings, state, update, context, config)
        return update

    return guard


async def _say_warnings(
    tags: Sequence[str],
    state: AgentState,
    update: dict[str, Any],
    context: EnduroContext,
    config: RunnableConfig,
) -> None:
    """Say budget.warning for each threshold crossed now.

    The dedupe key holds the limit's value: a warning that fires again after a resume
    raised the limit is a new event.
    """
    if not tags:
        return
    thread_id = thread_id_of(config)
    thread = thread_snapshot(state, context, segment_of(config), update)
    limits = context.limits()
    for tag in tags:
        key = f"budget.warning:{tag}:{limits.get(tag.partition(':')[0])}"
        fields: Fields = {"warning": warning_info(tag)}
        await say(config, event("budget.warning", thread_id, thread, fields, key))
