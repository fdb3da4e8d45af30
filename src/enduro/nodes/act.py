"""act: the model works on the current step with the tools bound."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from enduro.budgets.decision import budget_note
from enduro.context import EnduroContext
from enduro.events import StepStarted, event, say, segment_of, thread_snapshot
from enduro.nodes.llm import invoke_model
from enduro.nodes.prompts import ACT_SYSTEM, render_plan
from enduro.nodes.services import Services, context_of, model_config, thread_id_of
from enduro.state import AgentState, PlanStep


def current_step(state: AgentState) -> PlanStep | None:
    """The plan step `state["current"]` names, or None."""
    current = state.get("current")
    return next((s for s in state.get("plan") or [] if s["id"] == current), None)


def make_act_node(services: Services) -> Any:
    """The act node: one model call on the current step, with the tools bound.

    The first round of each attempt at a step says step.started.
    """

    async def act(
        state: AgentState, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        context = context_of(runtime)
        step = current_step(state)
        if step is None:
            raise RuntimeError(f"act found no current step (current={state.get('current')!r})")
        working = state.get("messages") or []
        rounds = sum(1 for m in working if isinstance(m, AIMessage))
        if rounds == 0:
            await _say_step_started(state, step, context, config)
        system = ACT_SYSTEM.format(
            goal=state["goal"],
            plan=render_plan(state.get("plan") or [], state.get("archive")),
            step_id=step["id"],
            title=step["title"],
            detail=step["detail"],
        )
        # Past 80% of any limit the model is told what is left, so it can wrap up itself.
        note = budget_note(state.get("budget"))
        if note:
            system += "\n\n" + note
        prompt = [SystemMessage(system), HumanMessage(f"Work on step {step['id']} now.")]
        # Past the round limit the step must conclude: no tools, so the answer is text.
        tools = services.tools if rounds < context.max_tool_rounds else ()
        answer, usage = await invoke_model(
            services.model(context),
            [*prompt, *working],
            tools=tools,
            config=model_config(config, "act"),
            scope=services.scope(context, config, "act"),
        )
        return {"messages": [answer], "usage": usage}

    return act


async def _say_step_started(
    state: AgentState, step: PlanStep, context: EnduroContext, config: RunnableConfig
) -> None:
    """step.started, said by the first act round of each attempt at `step`."""
    attempt = int(step.get("attempts") or 0) + 1
    info: StepStarted = {"id": step["id"], "title": step["title"], "attempt": attempt}
    thread = thread_snapshot(state, context, segment_of(config))
    key = f"step.started:{step['id']}:{attempt}"
    await say(config, event("step.started", thread_id_of(config), thread, {"step": info}, key))
