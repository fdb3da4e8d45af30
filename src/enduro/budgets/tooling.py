"""Budgets for tool calls.

max_tool_calls within a batch of parallel calls, and a timeout no longer than the time left.
"""

from __future__ import annotations

from dataclasses import dataclass

from enduro.budgets.decision import MIN_CALL_SECONDS
from enduro.budgets.service import BudgetService
from enduro.context import EnduroContext
from enduro.state import ToolTask


@dataclass(frozen=True)
class ToolPermit:
    """Whether one tool call may run, and for how long (from `tool_permit`)."""

    refusal: str | None
    """The tool message to answer with instead of running the tool, or None to run it."""
    timeout: float
    """Seconds the tool may run."""
    timeout_cause: str
    """What the timeout comes from, for the message when it fires."""


async def tool_permit(
    budget: BudgetService, context: EnduroContext, thread_id: str, task: ToolTask
) -> ToolPermit:
    """Decide whether a tool call may run under the run's limits, and its timeout.

    Args:
        budget: the run's budget service (for the time left).
        context: the run's knobs (`max_tool_calls`, `tool_timeout_seconds`, time limits).
        thread_id: the thread the call belongs to.
        task: the call, with its position in its batch (`tool_calls_before` + `index`),
            fixed when act dispatched the batch, so parallel calls agree on which fit.

    Returns:
        A refusal text when `max_tool_calls` is used up or less than `MIN_CALL_SECONDS`
        of time is left; else a timeout in seconds: `tool_timeout_seconds`, shortened to
        the time left, with the knob it came from.
    """
    limit = context.max_tool_calls
    # Parallel calls of one batch cannot see each other's counts: the position in the batch,
    # fixed when act's answer was dispatched, decides which of them still fit.
    position = task.get("tool_calls_before", 0) + task.get("index", 0)
    if limit is not None and position >= limit:
        return ToolPermit(
            f"Error: not run: the run's tool-call budget (max_tool_calls={limit}) is used up. "
            "Conclude the step with what you have.",
            0.0,
            "max_tool_calls",
        )
    timeout, cause = context.tool_timeout_seconds, "tool_timeout_seconds"
    left = await budget.time_left(context, thread_id)
    if left is not None:
        if left[0] < MIN_CALL_SECONDS:
            return ToolPermit(
                f"Error: not run: the run's time budget ({left[1]}) is used up.", 0.0, left[1]
            )
        if left[0] < timeout:
            timeout, cause = left[0], left[1]
    return ToolPermit(None, timeout, cause)
