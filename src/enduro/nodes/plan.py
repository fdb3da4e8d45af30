"""plan: turn the goal into a short list of steps (structured output)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from enduro.context import EnduroContext
from enduro.events import plan_updated, say, segment_of, thread_snapshot
from enduro.nodes.llm import invoke_structured
from enduro.nodes.prompts import PLAN_SYSTEM
from enduro.nodes.services import Services, context_of, model_config, thread_id_of
from enduro.state import MAX_PLAN_STEPS, MIN_PLAN_STEPS, AgentState, PlanStep


# One step as the model writes it (plan, or reflect's replan). No docstring on purpose:
# pydantic sends it to the model as the schema's description, which every request pays for.
class StepSpec(BaseModel):  # noqa: D101 (see above)
    title: str = Field(description="Short imperative title of the step")
    detail: str = Field(default="", description="What the step must achieve")


class Plan(BaseModel):
    """An ordered plan for reaching the goal."""

    steps: list[StepSpec] = Field(
        description=f"The steps, in order ({MIN_PLAN_STEPS} to {MAX_PLAN_STEPS})"
    )


def make_steps(specs: list[StepSpec], first_id: int = 1) -> list[PlanStep]:
    """Pending plan steps with ids `s{first_id}`, `s{first_id + 1}`, … from `specs`.

    At most MAX_PLAN_STEPS; titles are capped at 200 characters, details at 2000.
    """
    return [
        PlanStep(
            id=f"s{first_id + i}",
            title=s.title.strip()[:200],
            detail=s.detail[:2000],
            status="pending",
            summary=None,
            attempts=0,
        )
        for i, s in enumerate(specs[:MAX_PLAN_STEPS])
    ]


def has_open_steps(plan: list[PlanStep]) -> bool:
    """Whether any step is still pending or active."""
    return any(s["status"] in ("pending", "active") for s in plan)


def make_plan_node(services: Services) -> Any:
    """The plan node: the goal as steps, then plan.updated.

    A re-entered thread keeps its plan and says nothing.
    """

    async def plan(
        state: AgentState, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        existing = state.get("plan") or []
        if has_open_steps(existing):
            # Re-entry after a graceful stop (resume with a raised limit, or after a
            # cancel): continue the same plan where it stopped.
            # The old report describes a stop that no longer holds; it would otherwise be
            # copied into every checkpoint of the new segment.
            return {"status": "running", "stop_reason": None, "report": None}
        context = context_of(runtime)
        messages = [SystemMessage(PLAN_SYSTEM), HumanMessage(f"Goal: {state['goal']}")]
        result, usage = await invoke_structured(
            services.model(context),
            Plan,
            messages,
            config=model_config(config, "plan"),
            scope=services.scope(context, config, "plan"),
        )
        if not result.steps:
            result.steps = [StepSpec(title=state["goal"][:200], detail=state["goal"])]
        steps = make_steps(result.steps)
        steps[0]["status"] = "active"
        update: dict[str, Any] = {
            "plan": steps,
            "current": steps[0]["id"],
            "usage": usage,
            "status": "running",
            "stop_reason": None,
            "replans": 0,
        }
        thread = thread_snapshot(state, context, segment_of(config), update)
        await say(config, plan_updated(thread_id_of(config), thread))
        return update

    return plan
