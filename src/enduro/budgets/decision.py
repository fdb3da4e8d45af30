"""The budget decision, as pure functions so they are tested without a model or a database.

The guard calls `decide` before every iteration with usage read from the ledger (dollars,
tokens, model calls, active time) and from the state (iterations, tool calls). `decide`
stops the run early when the next iteration cannot fit; the exact, atomic check for money,
tokens and model calls happens again when each call reserves its worst case in the ledger.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from enduro.errors import StopReason

WARN_THRESHOLDS: tuple[int, ...] = (50, 80, 95)
NOTE_THRESHOLD = 80
"""Past this share of any limit, the act prompt tells the model what is left."""
MIN_CALL_SECONDS = 1.0
"""Less time than this left: no point starting another call."""

# Limit name -> (usage key, divisor turning usage into the limit's unit).
_LIMIT_USAGE: dict[str, tuple[str, float]] = {
    "max_usd": ("usd", 1.0),
    "max_minutes": ("active_seconds", 60.0),
    "max_iterations": ("iterations", 1.0),
    "max_llm_calls": ("llm_calls", 1.0),
    "max_tool_calls": ("tool_calls", 1.0),
    "max_tokens": ("tokens", 1.0),
}

# What one iteration may consume at most before the guard sees the state again: act and
# reflect are two model calls with no guard between them.
ITERATION_COST: Mapping[str, float] = {"max_iterations": 1, "max_llm_calls": 2}

Limits = Mapping[str, float | int | str | None]


@dataclass(frozen=True)
class Decision:
    """What the guard does next."""

    proceed: bool
    """True: another act call may start. False: route to finish."""
    stop_reason: str | None
    """Why not: a limit name, `cancel`, or None when the plan is simply done."""
    warnings: tuple[str, ...] = ()
    """Newly crossed warning thresholds, as `limit:percent` (e.g. `max_usd:80`)."""


def used(limit: str, usage: Mapping[str, float]) -> float:
    """How much of `limit` the usage counters have consumed, in the limit's own unit."""
    key, divisor = _LIMIT_USAGE[limit]
    return float(usage.get(key, 0)) / divisor


def _numeric(limits: Limits) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in limits.items()
        if k in _LIMIT_USAGE and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _exhausted(
    limit: str, value: float, spent: float, reserve_usd: float, next_call_usd: float
) -> bool:
    if limit == "max_usd":
        # Work may spend up to the limit minus finish's reserve; the next call's smallest
        # possible reservation must still fit.
        cap = value - reserve_usd
        return spent >= cap or spent + next_call_usd > cap
    if limit == "max_minutes":
        return (value - spent) * 60 < MIN_CALL_SECONDS
    return spent >= value or spent + ITERATION_COST.get(limit, 0) > value


def decide(
    *,
    limits: Limits,
    usage: Mapping[str, float],
    cancel_requested: bool = False,
    steps_pending: bool = True,
    warned: Collection[str] = (),
    reserve_usd: float = 0.0,
    next_call_usd: float = 0.0,
    seconds_to_deadline: float | None = None,
) -> Decision:
    """Decide whether the next iteration may start.

    Cancel wins over everything; then a plan with no step left (completed); then any limit
    that the next iteration could pass (in the order of `limits`, the deadline last).
    Warnings are reported whatever the outcome, each once.

    reserve_usd: dollars kept back for finish's summary (not available to work).
    next_call_usd: the least the next model call can reserve (its output bound alone).
    seconds_to_deadline: time to the absolute deadline, if one is set.
    """
    warnings: list[str] = []
    exhausted: str | None = None
    for limit, value in _numeric(limits).items():
        spent = used(limit, usage)
        for pct in WARN_THRESHOLDS:
            tag = f"{limit}:{pct}"
            if spent >= value * pct / 100 and tag not in warned:
                warnings.append(tag)
        if exhausted is None and _exhausted(limit, value, spent, reserve_usd, next_call_usd):
            exhausted = limit
    deadline_passed = seconds_to_deadline is not None and seconds_to_deadline < MIN_CALL_SECONDS
    if exhausted is None and deadline_passed:
        exhausted = StopReason.DEADLINE.value
    if cancel_requested:
        return Decision(False, StopReason.CANCEL.value, tuple(warnings))
    if not steps_pending:
        # Nothing left to do: the run completed, even if it used a limit up on the way.
        return Decision(False, None, tuple(warnings))
    if exhausted is not None:
        return Decision(False, exhausted, tuple(warnings))
    return Decision(True, None, tuple(warnings))


def snapshot(
    limits: Limits, usage: Mapping[str, float], seconds_to_deadline: float | None = None
) -> dict[str, dict[str, Any]]:
    """What is used and left of every set limit, as the state and status show it."""
    out: dict[str, dict[str, Any]] = {}
    for limit, value in _numeric(limits).items():
        spent = used(limit, usage)
        out[limit] = {
            "limit": value,
            "used": round(spent, 6),
            "left": round(max(0.0, value - spent), 6),
            "percent": round(100 * spent / value, 1) if value > 0 else 100.0,
        }
    deadline = limits.get("deadline")
    if isinstance(deadline, str) and seconds_to_deadline is not None:
        out["deadline"] = {"limit": deadline, "left_seconds": round(max(0.0, seconds_to_deadline))}
    return out


def carried_warnings(
    warned: Collection[str], previous: Mapping[str, Mapping[str, Any]], limits: Limits
) -> list[str]:
    """Warnings still valid after a resume: a limit raised or lowered warns afresh."""
    current = _numeric(limits)
    changed = {name for name, seen in previous.items() if current.get(name) != seen.get("limit")}
    return [tag for tag in warned if tag.partition(":")[0] not in changed]


_UNITS = {
    "max_usd": ("${:.4f}", "dollars"),
    "max_minutes": ("{:.1f}", "minutes of run time"),
    "max_iterations": ("{:.0f}", "agent iterations"),
    "max_llm_calls": ("{:.0f}", "model calls"),
    "max_tool_calls": ("{:.0f}", "tool calls"),
    "max_tokens": ("{:.0f}", "tokens"),
}


def budget_note(budget: Mapping[str, Mapping[str, Any]] | None) -> str | None:
    """A line for the act prompt once any limit is past NOTE_THRESHOLD percent.

    The model can then wrap up on its own; None before that.
    """
    if not budget:
        return None
    tight = [
        (name, seen)
        for name, seen in budget.items()
        if name in _UNITS and float(seen.get("percent", 0)) >= NOTE_THRESHOLD
    ]
    if not tight:
        return None
    parts = []
    for name, seen in tight:
        fmt, unit = _UNITS[name]
        parts.append(
            f"{seen['percent']:.0f}% of the {unit} budget is used ({fmt.format(seen['left'])} "
            f"of {fmt.format(seen['limit'])} left)"
        )
    deadline = budget.get("deadline")
    if deadline is not None:
        parts.append(f"{float(deadline['left_seconds']) / 60:.0f} minutes to the deadline")
    return (
        "Budget: "
        + "; ".join(parts)
        + ". The run stops when a budget runs out: finish the current step with what you "
        "have, keep answers short, and make only the tool calls that are essential."
    )
