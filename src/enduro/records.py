"""Plain records a thread's state holds, and the constants about them.

The records are plan steps, usage counters and the archive.

Invariant: this module imports nothing but the standard library and typing_extensions, so
the status, list and report paths (and the webhook payloads) can read a checkpoint's values
without importing LangGraph's graph or LangChain's messages. `enduro.state` composes these
into the graph's `AgentState`.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, cast

from typing_extensions import TypedDict

StepStatus = Literal["pending", "active", "done", "failed", "skipped"]
FINISHED_STEP_STATUSES: frozenset[str] = frozenset({"done", "failed", "skipped"})
"""A step in one of these states is over: progress counts it, the archive may move it out."""
MIN_PLAN_STEPS = 3
MAX_PLAN_STEPS = 8
"""The planner is asked for MIN..MAX steps; a longer plan is cut to MAX (a replan too)."""
RunStatus = Literal["running", "paused", "completed", "budget_exhausted", "cancelled", "failed"]


class PlanStep(TypedDict):
    """One step of the plan, as the model wrote it and as reflect judged it."""

    id: str
    """Stable id (`s1`, `s2`, …); replanned steps get fresh ids, never reused."""
    title: str
    """Short imperative title shown in progress and reports."""
    detail: str
    """What the step should achieve, for the act prompt."""
    status: StepStatus
    """Lifecycle of the step; only one step is `active` at a time."""
    summary: NotRequired[str | None]
    """Reflect's short account of what the step produced (kept after messages are dropped)."""
    attempts: NotRequired[int]
    """How many times reflect sent the step back for another try."""


class Usage(TypedDict, total=False):
    """Counters that only grow; nodes return deltas and `add_usage` sums them."""

    llm_calls: int
    """Model calls that returned an answer."""
    tool_calls: int
    """Tool calls executed (each its own task)."""
    iterations: int
    """Agent-loop iterations: each time the guard lets an act call start."""
    input_tokens: int
    """Prompt tokens as the provider reported them."""
    output_tokens: int
    """Completion tokens as the provider reported them."""
    active_seconds: float
    """Wall time spent inside nodes, summed over every segment of the run."""
    usd: float
    """Settled cost of the calls, for progress display only: budgets and status read spend
    from the ledger, which also counts calls whose node crashed before its checkpoint."""


USAGE_KEYS: tuple[str, ...] = tuple(Usage.__annotations__)


def add_usage(left: Usage | None, right: Usage | None) -> Usage:
    """Reducer: sum counters key by key, so parallel tool tasks can each add their own."""
    out: dict[str, Any] = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = out.get(key, 0) + value
    return cast(Usage, out)


class Archive(TypedDict):
    """Finished steps moved out of the plan into the workspace's `.history/steps/`."""

    steps: int
    """How many steps were archived."""
    failed: int
    """How many of them had failed."""
