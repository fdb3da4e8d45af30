"""The graph's state: what a checkpoint holds.

Everything here is bounded however long a run lasts: the plan has at most a few dozen steps,
`messages` holds only the current step's working messages (reflect drops them), and large
tool outputs live in the thread's workspace with only a reference here.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from enduro.records import (
    FINISHED_STEP_STATUSES as FINISHED_STEP_STATUSES,
)
from enduro.records import (
    MAX_PLAN_STEPS as MAX_PLAN_STEPS,
)
from enduro.records import (
    MIN_PLAN_STEPS as MIN_PLAN_STEPS,
)
from enduro.records import (
    USAGE_KEYS as USAGE_KEYS,
)
from enduro.records import (
    Archive as Archive,
)
from enduro.records import (
    PlanStep as PlanStep,
)
from enduro.records import (
    RunStatus as RunStatus,
)
from enduro.records import (
    StepStatus as StepStatus,
)
from enduro.records import (
    Usage as Usage,
)
from enduro.records import (
    add_usage as add_usage,
)


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
    """Input of one `tools` task: a single tool call, sent with `Send`.

    Each call is its own task, so a crash re-runs only the calls whose writes were not saved.
    """

    call: dict[str, object]
    """The tool call (`name`, `args`, `id`) from the last act message."""
    step_id: str | None
    """The step it belongs to, for logs and events."""
    index: NotRequired[int]
    """Position of the call in its batch, so max_tool_calls is enforced within a batch."""
    tool_calls_before: NotRequired[int]
    """Tool calls the thread had made before this batch."""
