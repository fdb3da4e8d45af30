"""The graph's state: what a checkpoint holds.

Everything here is bounded however long a run lasts: the plan has at most a few dozen steps,
`messages` holds only the current step's working messages (reflect drops them), and large
tool outputs live in the thread's workspace with only a reference here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, cast

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
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


class AgentState(TypedDict):
    """State of one enduro thread."""

    goal: str
    """The user's goal, verbatim."""
    plan: NotRequired[list[PlanStep]]
    """The plan; step results live in each step's `summary`."""
    current: NotRequired[str | None]
    """Id of the step being worked on, or None before planning and after the last step."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """Working messages of the current step only (act's calls and tool results)."""
    usage: NotRequired[Annotated[Usage, add_usage]]
    """Counters that budgets and status read."""
    archive: NotRequired[Archive]
    """Counts of finished steps moved out of `plan`, so the plan stays bounded."""
    replans: NotRequired[int]
    """How many times reflect replaced the remaining steps."""
    status: NotRequired[RunStatus]
    """Terminal status written by finish (`running` until then)."""
    stop_reason: NotRequired[str | None]
    """Why the run stopped: a limit name, `cancel`, or an error message; None when completed."""
    report: NotRequired[str | None]
    """The final or partial report written by finish."""
    warnings: NotRequired[list[str]]
    """Budget warnings already raised (e.g. `max_iterations:80`), so each fires once."""
    budget: NotRequired[dict[str, dict[str, Any]]]
    """What is used and left of each limit, as the guard last saw it (replaced each time)."""


class ToolTask(TypedDict):
    """Input of one `tools` task: a single tool call, sent with `Send` so each call is its
    own task and a crash re-runs only the calls whose writes were not saved."""

    call: dict[str, object]
    """The tool call (`name`, `args`, `id`) from the last act message."""
    step_id: str | None
    """The step it belongs to, for logs and events."""
    index: NotRequired[int]
    """Position of the call in its batch, so max_tool_calls is enforced within a batch."""
    tool_calls_before: NotRequired[int]
    """Tool calls the thread had made before this batch."""
