"""What happened in a run, said by whoever made it happen: typed progress events.

The nodes (plan, act, tools, reflect, guard, finish) and the runner describe what they did
as an `Event` and hand it to `say`, which dispatches it with LangChain's
`adispatch_custom_event` under the name `EVENT_NAME`. Any callback handler bound to the
graph receives it in `on_custom_event` — the webhook handler writes it to the outbox — also
under `langgraph dev`, where no runner exists. (LangGraph's custom stream writer would only
reach `stream_mode="custom"` consumers, never a callback handler, hence custom events.)

Invariants:
- Events are said, never inferred: no listener diffs states to guess what happened. Each
  event carries the thread as its sayer sees it after its own update (`ThreadSnapshot`),
  or None when the sayer sees only its own part (a tool task sees one call).
- Payloads are small and secret-free by construction: ids, titles, statuses, counters,
  limits, tool names and durations. Never the goal, step details or summaries, messages,
  tool arguments or output, keys or secrets. Free text that can hold a secret (an error's
  message, a stop reason) is redacted where it leaves the process (enduro.webhooks).
- `dedupe` names the fact, so an event said twice (a node re-run after a crash, a retried
  attempt) is written once; None for facts that cannot repeat.
- Saying costs nothing when nobody listens: without a callback handler no event is built
  or dispatched, and a listener's failure never fails the node (handlers are best effort).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from langchain_core.callbacks import adispatch_custom_event
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_async_callback_manager_for_config

from enduro.context import EnduroContext

EVENT_NAME = "enduro.event"
"""The name every enduro event is dispatched under (`on_custom_event`'s `name`)."""

EventType = Literal[
    "run.started",
    "run.resumed",
    "plan.updated",
    "step.started",
    "step.completed",
    "tool.called",
    "budget.warning",
    "run.heartbeat",
    "run.paused",
    "run.completed",
    "run.budget_exhausted",
    "run.cancelled",
    "run.failed",
    "run.waiting",
    "run.queued",
]

TERMINAL_EVENT: dict[str, EventType] = {
    "completed": "run.completed",
    "budget_exhausted": "run.budget_exhausted",
    "cancelled": "run.cancelled",
    "failed": "run.failed",
    "paused": "run.paused",
}
"""The event finish says for each terminal status of the state."""


class StepRef(TypedDict):
    """A plan step as events show it: no detail, no summary."""

    id: str
    title: str
    status: str


class ThreadSnapshot(TypedDict):
    """The thread as the sayer of an event sees it once its own update is applied.

    `usage` holds the state's counters (the webhook layer overlays the ledger's figures);
    `limits` is `EnduroContext.limits()` and `final_reserve_usd` the context's setting of
    that name (dollars of max_usd kept for finish; None for the default); `segment` is
    the runner's segment number, None when no runner drives the thread (`langgraph dev`).
    """

    status: str
    stop_reason: str | None
    segment: int | None
    plan: list[StepRef]
    current: str | None
    usage: dict[str, float]
    warnings: list[str]
    archive: dict[str, int] | None
    limits: dict[str, float | int | str | None]
    final_reserve_usd: float | None


class StepStarted(TypedDict):
    """step.started: `attempt` counts from 1 (reflect's retries add one each)."""

    id: str
    title: str
    attempt: int


class StepCompleted(TypedDict):
    """step.completed: `status` is done, failed or skipped."""

    id: str
    title: str
    status: str


class ToolCalled(TypedDict):
    """tool.called: the tool's name, wall time (milliseconds) and success.

    Never its arguments or output.
    """

    name: str
    duration_ms: int
    ok: bool


class BudgetWarning(TypedDict):
    """budget.warning: a warning tag of the state and what it means.

    `code` is the tag (e.g. `max_usd:80`); `limit` and `percent` are parsed from tags of
    that shape, else None.
    """

    code: str
    limit: str | None
    percent: float | int | None


class ResumedFrom(TypedDict):
    """run.resumed: how the previous segment ended."""

    status: str
    stop_reason: str | None


class ErrorInfo(TypedDict):
    """run.failed: the exception's class name and message (redacted when sent)."""

    type: str | None
    message: str | None


class InFlight(TypedDict):
    """run.heartbeat: the longest-running node, its step, and for how many seconds."""

    node: str
    step_id: str | None
    seconds: float


class InterruptBrief(TypedDict):
    """run.waiting / run.resumed: one pending or answered interrupt, never its arguments."""

    id: str
    kind: str
    tool: str | None


class Fields(TypedDict, total=False):
    """The fields of `data` that belong to the event's type (see the JSON schema)."""

    step: StepStarted | StepCompleted
    tool: ToolCalled
    warning: BudgetWarning
    plan: list[StepRef]
    resumed_from: ResumedFrom | None
    error: ErrorInfo
    in_flight: InFlight
    interrupts: list[InterruptBrief]


class Event(TypedDict):
    """One thing that happened to thread `thread_id`, as its sayer puts it."""

    type: EventType
    thread_id: str
    thread: ThreadSnapshot | None
    fields: Fields
    dedupe: str | None


def step_ref(step: Mapping[str, Any]) -> StepRef:
    """The id, title and status of a plan step."""
    return {"id": str(step["id"]), "title": str(step["title"]), "status": str(step["status"])}


def segment_of(config: RunnableConfig) -> int | None:
    """The runner's segment number from the run's metadata (`enduro_segment`), or None."""
    segment = (config.get("metadata") or {}).get("enduro_segment")
    return int(segment) if segment is not None else None


def thread_snapshot(
    state: Mapping[str, Any],
    context: EnduroContext | None,
    segment: int | None,
    update: Mapping[str, Any] | None = None,
) -> ThreadSnapshot:
    """The thread after `update` (a node's return value) is applied to `state`.

    Args:
        state: the graph state the node ran on (`AgentState` keys; others are ignored).
        context: the run's context, for the limits; None shows no limits.
        segment: the runner's segment number, or None.
        update: the node's own update: `plan`, `current`, `status`, `stop_reason`,
            `warnings` and `archive` replace, `usage` adds (as the state's reducers do).
    """
    merged = {**state, **{k: v for k, v in (update or {}).items() if k != "usage"}}
    usage: dict[str, float] = dict(state.get("usage") or {})
    for key, value in ((update or {}).get("usage") or {}).items():
        usage[key] = usage.get(key, 0) + value
    return {
        "status": str(merged.get("status") or "running"),
        "stop_reason": merged.get("stop_reason"),
        "segment": segment,
        "plan": [step_ref(s) for s in merged.get("plan") or []],
        "current": merged.get("current"),
        "usage": usage,
        "warnings": list(merged.get("warnings") or []),
        "archive": dict(merged["archive"]) if merged.get("archive") else None,
        "limits": context.limits() if context is not None else {},
        "final_reserve_usd": context.final_reserve_usd if context is not None else None,
    }


def event(
    kind: EventType,
    thread_id: str,
    thread: ThreadSnapshot | None,
    fields: Fields | None = None,
    dedupe: str | None = None,
) -> Event:
    """An `Event`; see its fields."""
    return {
        "type": kind,
        "thread_id": thread_id,
        "thread": thread,
        "fields": fields or {},
        "dedupe": dedupe,
    }


def plan_updated(thread_id: str, thread: ThreadSnapshot) -> Event:
    """plan.updated for the plan in `thread`, deduplicated by its step ids."""
    ids = ",".join(s["id"] for s in thread["plan"])
    digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
    return event(
        "plan.updated", thread_id, thread, {"plan": thread["plan"]}, f"plan.updated:{digest}"
    )


def warning_info(tag: str) -> BudgetWarning:
    """The budget.warning payload of warning tag `tag`.

    `max_usd:80` gives {"code": "max_usd:80", "limit": "max_usd", "percent": 80}; tags of
    another shape (the guard may add some) keep their code and nothing else.
    """
    limit, _, pct = tag.partition(":")
    if pct.replace(".", "", 1).isdigit():
        return {"code": tag, "limit": limit, "percent": float(pct) if "." in pct else int(pct)}
    return {"code": tag, "limit": None, "percent": None}


def ids_of(plan: Sequence[Mapping[str, Any]]) -> list[str]:
    """The step ids of a plan, in order."""
    return [str(s["id"]) for s in plan]


async def say(config: RunnableConfig, said: Event) -> None:
    """Dispatch `said` to the callback handlers of the run `config` belongs to.

    Called from inside a node (its `config`), so the event is attached to the node's run.
    Does nothing when the run has no callback handler (a node called directly in a test,
    a graph built without webhooks).
    """
    manager = get_async_callback_manager_for_config(config)
    if not manager.handlers or manager.parent_run_id is None:
        return
    await adispatch_custom_event(EVENT_NAME, said, config=config)
