"""The budget decision, as one pure function so it is tested without a model or a database."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

WARN_THRESHOLDS: tuple[int, ...] = (50, 80, 95)

# Limit name -> (usage key, divisor turning usage into the limit's unit).
_LIMIT_USAGE: dict[str, tuple[str, float]] = {
    "max_usd": ("usd", 1.0),
    "max_minutes": ("active_seconds", 60.0),
    "max_iterations": ("iterations", 1.0),
    "max_llm_calls": ("llm_calls", 1.0),
    "max_tool_calls": ("tool_calls", 1.0),
}

# What one iteration may consume at most before the guard sees the state again: act and
# reflect are two model calls with no guard between them.
ITERATION_COST: Mapping[str, float] = {"max_iterations": 1, "max_llm_calls": 2}


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


def decide(
    *,
    limits: Mapping[str, float | int | None],
    usage: Mapping[str, float],
    cancel_requested: bool = False,
    steps_pending: bool = True,
    warned: Collection[str] = (),
) -> Decision:
    """Decide whether the next iteration may start.

    Cancel wins over everything; then any limit that the next iteration could pass; then
    whether any step is left. Warnings are reported whatever the outcome, each once.
    """
    warnings: list[str] = []
    exhausted: str | None = None
    for limit, value in limits.items():
        if value is None or limit not in _LIMIT_USAGE:
            continue
        spent = used(limit, usage)
        for pct in WARN_THRESHOLDS:
            tag = f"{limit}:{pct}"
            if spent >= value * pct / 100 and tag not in warned:
                warnings.append(tag)
        if exhausted is None and (spent >= value or spent + ITERATION_COST.get(limit, 0) > value):
            exhausted = limit
    if cancel_requested:
        return Decision(False, "cancel", tuple(warnings))
    if exhausted is not None:
        return Decision(False, exhausted, tuple(warnings))
    if not steps_pending:
        return Decision(False, None, tuple(warnings))
    return Decision(True, None, tuple(warnings))
