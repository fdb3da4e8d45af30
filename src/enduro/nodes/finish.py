"""finish: write the final or partial report and set the terminal status."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from enduro.budgets.report import ledger_usage, spend_lines
from enduro.context import EnduroContext
from enduro.events import TERMINAL_EVENT, event, say, segment_of, thread_snapshot
from enduro.nodes.llm import invoke_model
from enduro.nodes.prompts import FINAL_SYSTEM
from enduro.nodes.services import Services, context_of, model_config, thread_id_of
from enduro.report import render_report
from enduro.state import AgentState, Usage

log = logging.getLogger(__name__)

# Stops after which one more (summarising) model call stays within what the user asked for:
# max_usd too, because the finalization reserve was kept back for it (and the call is
# reserved like any other, so it cannot pass the limit).
_SUMMARY_ALLOWED = {None, "max_iterations", "max_tool_calls", "max_usd"}


def final_call_allowed(status: str, stop_reason: str | None, has_results: bool = True) -> bool:
    """Whether finish may spend one model call on a written summary.

    Never on a run that has no step results to summarise.
    """
    return (
        has_results
        and status in ("completed", "budget_exhausted")
        and stop_reason in _SUMMARY_ALLOWED
    )


def make_finish_node(services: Services) -> Any:
    """The finish node: the report, the terminal status, and the run's terminal event.

    The event (run.completed, run.budget_exhausted, run.cancelled, run.paused or
    run.failed) is said once per segment.
    """

    async def finish(
        state: AgentState, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        context = context_of(runtime)
        status = state.get("status", "completed")
        stop_reason = state.get("stop_reason")
        plan = state.get("plan") or []
        usage: Usage = {}
        final_text = None
        if final_call_allowed(status, stop_reason, any(s.get("summary") for s in plan)):
            results = "\n".join(
                f"- {s['title']} [{s['status']}]: {s.get('summary') or ''}" for s in plan
            )
            system = FINAL_SYSTEM.format(
                goal=state["goal"], outcome=status, results=results or "(none)"
            )
            try:
                answer, usage = await invoke_model(
                    services.model(context),
                    [SystemMessage(system), HumanMessage("Write the final report.")],
                    config=model_config(config, "finish"),
                    scope=services.scope(context, config, "finish", final=True),
                )
                final_text = answer.text
            except Exception as exc:
                # The step results are the report's substance; a failed or unaffordable
                # summary must not turn a finished run into a failed one.
                log.warning("final summary call failed, writing the report without it: %s", exc)
        total: dict[str, Any] = dict(state.get("usage") or {})
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value
        thread_id = thread_id_of(config)
        ledger = await services.budget.ledger()
        totals = await ledger.totals(thread_id)
        total.update(ledger_usage(totals, await services.budget.active_seconds(thread_id)))
        report = render_report(
            goal=state["goal"],
            plan=plan,
            status=status,
            stop_reason=stop_reason,
            usage=total,
            final_text=final_text,
            spend=spend_lines(await ledger.breakdown(thread_id), totals),
            archive=state.get("archive"),
        )
        update: dict[str, Any] = {"report": report, "status": status, "usage": usage}
        segment = segment_of(config)
        kind = TERMINAL_EVENT.get(status, "run.completed")
        # Once per segment: a finish re-run after a crash says nothing new.
        dedupe = f"{kind}:{segment}" if segment is not None else None
        thread = thread_snapshot(state, context, segment, update)
        await say(config, event(kind, thread_id, thread, dedupe=dedupe))
        return update

    return finish
