"""guard: the one place that decides whether another model call may start."""

from __future__ import annotations

from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from enduro.budgets import decide
from enduro.context import EnduroContext
from enduro.nodes.plan import has_open_steps
from enduro.nodes.services import Services, context_of, thread_id_of
from enduro.state import AgentState, RunStatus


def status_for(stop_reason: str | None) -> RunStatus:
    if stop_reason is None:
        return "completed"
    if stop_reason == "cancel":
        return "cancelled"
    return "budget_exhausted"


def make_guard_node(services: Services) -> Any:
    async def guard(
        state: AgentState, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        context = context_of(runtime)
        warned = state.get("warnings") or []
        decision = decide(
            limits=context.limits(),
            usage=cast(dict[str, float], state.get("usage") or {}),
            cancel_requested=await services.cancel_requested(thread_id_of(config)),
            steps_pending=has_open_steps(state.get("plan") or []),
            warned=warned,
        )
        update: dict[str, Any] = {}
        if decision.warnings:
            update["warnings"] = [*warned, *decision.warnings]
        if decision.proceed:
            update["usage"] = {"iterations": 1}
            update["status"] = "running"
        else:
            update["status"] = status_for(decision.stop_reason)
            update["stop_reason"] = decision.stop_reason
        return update

    return guard
