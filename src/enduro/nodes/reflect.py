"""reflect: judge the step, record its summary in the plan, drop its working messages."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from enduro.context import EnduroContext
from enduro.events import (
    StepCompleted,
    event,
    ids_of,
    plan_updated,
    say,
    segment_of,
    thread_snapshot,
)
from enduro.nodes.act import current_step
from enduro.nodes.archive import add_to_archive, compact, write_history
from enduro.nodes.llm import invoke_structured
from enduro.nodes.plan import StepSpec, make_steps
from enduro.nodes.prompts import REFLECT_SYSTEM
from enduro.nodes.services import (
    Services,
    context_of,
    model_config,
    thread_id_of,
    workspace_root,
)
from enduro.state import FINISHED_STEP_STATUSES, AgentState, PlanStep

Verdict = Literal["done", "retry", "replan", "give_up"]


class StepReview(BaseModel):
    """The verdict on one step."""

    verdict: Verdict = Field(description="done, retry, replan or give_up")
    summary: str = Field(description="At most three sentences: the concrete result")
    new_steps: list[StepSpec] = Field(
        default_factory=list, description="Only with replan: the steps that replace the rest"
    )


def transcript(messages: list[BaseMessage], limit: int = 12_000) -> str:
    """The step's working messages as text for the reviewer, newest kept when too long."""
    parts = []
    for m in messages:
        if isinstance(m, AIMessage):
            calls = ", ".join(c["name"] for c in m.tool_calls)
            parts.append(f"AGENT: {m.text}" + (f" [called: {calls}]" if calls else ""))
        elif isinstance(m, ToolMessage):
            parts.append(f"TOOL {m.name}: {m.text[:2000]}")
    text = "\n".join(parts)
    return text[-limit:] if len(text) > limit else text


def apply_review(
    plan: list[PlanStep],
    step_id: str,
    review: StepReview,
    *,
    max_attempts: int,
    replans: int,
    max_replans: int,
) -> tuple[list[PlanStep], str | None, int]:
    """New plan, next current step id and replan count after `review` of `step_id`.

    Pure, so the plan's lifecycle is tested without a model.
    """
    plan = [dict(s) for s in plan]  # type: ignore[misc]
    index = next(i for i, s in enumerate(plan) if s["id"] == step_id)
    step = plan[index]
    step["summary"] = review.summary.strip()[:600]
    verdict = review.verdict
    if verdict == "retry" and step.get("attempts", 0) + 1 >= max_attempts:
        verdict = "give_up"
    if verdict == "replan" and (replans >= max_replans or not review.new_steps):
        verdict = "done"
    if verdict == "retry":
        step["attempts"] = step.get("attempts", 0) + 1
        return plan, step_id, replans
    step["status"] = "failed" if verdict == "give_up" else "done"
    if verdict == "replan":
        next_id = 1 + max(int(s["id"].lstrip("s") or 0) for s in plan)
        plan = [*plan[: index + 1], *make_steps(review.new_steps, first_id=next_id)]
        replans += 1
    nxt = next((s for s in plan if s["status"] == "pending"), None)
    if nxt is not None:
        nxt["status"] = "active"
    return plan, (nxt["id"] if nxt else None), replans


def make_reflect_node(services: Services) -> Any:
    """The reflect node: judge the current step and update the plan.

    It drops the step's working messages and says step.completed / plan.updated.
    """

    async def reflect(
        state: AgentState, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        context = context_of(runtime)
        step = current_step(state)
        if step is None:
            raise RuntimeError(f"reflect found no current step ({state.get('current')!r})")
        system = REFLECT_SYSTEM.format(
            goal=state["goal"], step_id=step["id"], title=step["title"], detail=step["detail"]
        )
        work = transcript(list(state.get("messages") or [])) or "(no work recorded)"
        review, usage = await invoke_structured(
            services.model(context),
            StepReview,
            [SystemMessage(system), HumanMessage(f"Work on step {step['id']}:\n{work}")],
            config=model_config(config, "reflect"),
            scope=services.scope(context, config, "reflect"),
        )
        plan, current, replans = apply_review(
            state.get("plan") or [],
            step["id"],
            review,
            max_attempts=context.max_step_attempts,
            replans=state.get("replans", 0),
            max_replans=context.max_replans,
        )
        reviewed = next(s for s in plan if s["id"] == step["id"])
        plan, moved = compact(plan)
        update: dict[str, Any] = {}
        if moved:
            root = workspace_root(context, config)
            await asyncio.to_thread(write_history, root, moved)
            update["archive"] = add_to_archive(state.get("archive"), moved)
        update |= {
            "plan": plan,
            "current": current,
            "replans": replans,
            "usage": usage,
            "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)],
        }
        await _say_review(state, reviewed, update, context, config)
        return update

    return reflect


async def _say_review(
    state: AgentState,
    reviewed: PlanStep,
    update: dict[str, Any],
    context: EnduroContext,
    config: RunnableConfig,
) -> None:
    """Say what the review did to the plan.

    step.completed when the reviewed step finished (not sent back for a retry), then
    plan.updated when the plan's steps changed (a replan, or finished steps archived).
    """
    thread_id = thread_id_of(config)
    thread = thread_snapshot(state, context, segment_of(config), update)
    if reviewed["status"] in FINISHED_STEP_STATUSES:
        info: StepCompleted = {
            "id": reviewed["id"],
            "title": reviewed["title"],
            "status": reviewed["status"],
        }
        key = f"step.completed:{reviewed['id']}"
        await say(config, event("step.completed", thread_id, thread, {"step": info}, key))
    if ids_of(update["plan"]) != ids_of(state.get("plan") or []):
        await say(config, plan_updated(thread_id, thread))
