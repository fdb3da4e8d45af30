"""The forecast: where a thread's spend and active time will end up.

Also whether a limit will stop the thread before its plan is done.

A pure function of figures the thread already recorded (no clock, no database), so the
status JSON, every webhook event and the dashboard all say the same thing:

- the mean cost of a step is what the finished steps cost on average (ledger dollars and
  active seconds divided by steps done), so a remaining step is projected at that mean;
- the range comes from how much single steps varied (`StepCost` samples, read from the
  ledger between reflect calls): the sum of k remaining steps has standard deviation
  cv·μ·√(k + k²/n) (the spread of k independent steps plus the uncertainty of a mean taken
  over n samples); low and high are the mean ∓ 1.645 of those (about a 90 % range), never
  below what was spent. cv is measured from the samples and shrunk toward 1 (a step may
  cost double or nothing) as if two samples had said so: few samples, wide range;
- a limit stops the run at `last_step = steps_done + ⌊(limit - used) / μ⌋`, the last step
  it can still pay for; the warning names the earliest such limit. Dollars available to
  steps exclude finish's reserve, as the guard does.

Nothing is projected before a step has finished (`basis: "none"`): a plan call alone says
nothing about what steps cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# z for a two-sided ~90 % interval of a normal sum.
Z_90 = 1.645
# Spread assumed when fewer than two step samples exist: a step may cost double or nothing.
DEFAULT_CV = 1.0
# The measured spread is shrunk toward DEFAULT_CV as if this many samples had shown it, so
# that two steps that happened to cost the same do not claim a range of zero width.
PRIOR_SAMPLES = 2

# limit key -> how to read its usage from the status JSON's `usage`, and its words.
_COUNTERS: dict[str, tuple[str, str]] = {
    "max_iterations": ("iterations", "iterations"),
    "max_llm_calls": ("llm_calls", "model calls"),
    "max_tool_calls": ("tool_calls", "tool calls"),
}


@dataclass(frozen=True)
class StepCost:
    """What one step attempt cost: dollars from the ledger and seconds it took."""

    usd: float
    seconds: float


def forecast(
    *,
    steps_done: int,
    steps_total: int,
    usage: Mapping[str, Any],
    limits: Mapping[str, Any],
    samples: Sequence[StepCost] = (),
    reserve_usd: float = 0.0,
) -> dict[str, Any]:
    """Project spend and active time at completion, and the limit that stops the run first.

    Args:
        steps_done: finished steps (done, failed or skipped), archived ones included.
        steps_total: steps in the plan, archived ones included.
        usage: the status JSON's `usage` (`usd` in dollars, `active_seconds`, counters).
        limits: the status JSON's `limits` (`max_usd` dollars, `max_minutes` minutes, …;
            None when unset).
        samples: per-step costs, for the range; the mean comes from the totals.
        reserve_usd: dollars of `max_usd` kept back for finish, not available to steps.

    Returns:
        `{"basis", "steps_done", "steps_total", "samples", "usd", "active_seconds", "stops",
        "warning"}`; `usd` and `active_seconds` are `{"spent", "per_step", "projected",
        "low", "high", "limit"}` (None where nothing can be projected); `stops` lists
        `{"limit", "last_step", "certain"}` for each limit projected to stop the run before
        the plan is done, earliest first; `warning` is one sentence, or None.
    """
    spent_usd = float(usage.get("usd") or 0.0)
    spent_s = float(usage.get("active_seconds") or 0.0)
    max_usd, max_minutes = limits.get("max_usd"), limits.get("max_minutes")
    usd_cap = None if max_usd is None else max(0.0, float(max_usd) - reserve_usd)
    time_cap = None if max_minutes is None else float(max_minutes) * 60
    remaining = max(0, steps_total - steps_done)
    if steps_done <= 0 or steps_total <= 0:
        return _result("none", steps_done, steps_total, samples, spent_usd, spent_s, limits)
    out = _result("ledger", steps_done, steps_total, samples, spent_usd, spent_s, limits)
    cv_usd = _cv([s.usd for s in samples])
    cv_s = _cv([s.seconds for s in samples])
    out["usd"] = _project(spent_usd, steps_done, remaining, cv_usd, len(samples), max_usd)
    out["active_seconds"] = _project(spent_s, steps_done, remaining, cv_s, len(samples), time_cap)
    if remaining == 0:
        return out
    stops = []
    for limit, cap, used, high in (
        ("max_usd", usd_cap, spent_usd, out["usd"]["high"]),
        ("max_minutes", time_cap, spent_s, out["active_seconds"]["high"]),
    ):
        stop = _stop(limit, cap, used, steps_done, steps_total, high)
        if stop is not None:
            stops.append(stop)
    for limit, (key, _) in _COUNTERS.items():
        cap = limits.get(limit)
        used = float(usage.get(key) or 0)
        stop = _stop(limit, None if cap is None else float(cap), used, steps_done, steps_total)
        if stop is not None:
            stops.append(stop)
    stops.sort(key=lambda s: (not s["certain"], s["last_step"]))
    out["stops"] = stops
    out["warning"] = _warning(stops[0], out, usage, limits) if stops else None
    return out


def _result(
    basis: str,
    done: int,
    total: int,
    samples: Sequence[StepCost],
    spent_usd: float,
    spent_s: float,
    limits: Mapping[str, Any],
) -> dict[str, Any]:
    max_minutes = limits.get("max_minutes")
    empty = {"per_step": None, "projected": None, "low": None, "high": None}
    return {
        "basis": basis,
        "steps_done": done,
        "steps_total": total,
        "samples": len(samples),
        "usd": {"spent": round(spent_usd, 6), **empty, "limit": limits.get("max_usd")},
        "active_seconds": {
            "spent": round(spent_s, 1),
            **empty,
            "limit": None if max_minutes is None else float(max_minutes) * 60,
        },
        "stops": [],
        "warning": None,
    }


def _cv(values: Sequence[float]) -> float:
    """Coefficient of variation of per-step samples, shrunk toward DEFAULT_CV.

    The shrinking weighs DEFAULT_CV as PRIOR_SAMPLES samples; with fewer than two samples it is
    DEFAULT_CV itself.
    """
    usable = [v for v in values if v >= 0 and math.isfinite(v)]
    n = len(usable)
    if n < 2:
        return DEFAULT_CV
    mean = sum(usable) / n
    if mean <= 0:
        return 0.0
    measured = math.sqrt(sum((v - mean) ** 2 for v in usable) / (n - 1)) / mean
    return (n * measured + PRIOR_SAMPLES * DEFAULT_CV) / (n + PRIOR_SAMPLES)


def _project(
    spent: float, done: int, remaining: int, cv: float, n: int, limit: float | None
) -> dict[str, Any]:
    per_step = spent / done
    mean = spent + per_step * remaining
    sd = cv * per_step * math.sqrt(remaining + remaining**2 / max(n, 1))
    return {
        "spent": round(spent, 6),
        "per_step": round(per_step, 6),
        "projected": round(mean, 6),
        "low": round(max(spent, mean - Z_90 * sd), 6),
        "high": round(mean + Z_90 * sd, 6),
        "limit": limit,
    }


def _stop(
    limit: str,
    cap: float | None,
    used: float,
    done: int,
    total: int,
    high: float | None = None,
) -> dict[str, Any] | None:
    """The last step `cap` can pay for at the mean rate, if that is short of `total`.

    `certain` is False when only the high end of the range passes the cap.
    """
    if cap is None:
        return None
    per_step = used / done
    if per_step <= 0:
        return None
    more = (cap - used) / per_step + 1e-9
    # `more` past the plan's end also covers a rate so small that it overflows floor().
    last = total if more >= total - done else done + max(0, math.floor(more))
    if last < total:
        return {"limit": limit, "last_step": last, "certain": True}
    if high is not None and high > cap:
        return {"limit": limit, "last_step": total, "certain": False}
    return None


def _warning(
    stop: dict[str, Any], out: dict[str, Any], usage: Mapping[str, Any], limits: Mapping[str, Any]
) -> str:
    done, total = out["steps_done"], out["steps_total"]
    limit = stop["limit"]
    if limit == "max_usd":
        spent = f"{_usd(float(usage.get('usd') or 0))} of {_usd(float(limits[limit]))} spent"
        what = "the budget"
        rng = out["usd"]
        projected = f"{_usd(rng['low'])} to {_usd(rng['high'])}"
    elif limit == "max_minutes":
        spent = (
            f"{_minutes(float(usage.get('active_seconds') or 0))} of "
            f"{_minutes(float(limits[limit]) * 60)} active"
        )
        what = "the time limit"
        rng = out["active_seconds"]
        projected = f"{_minutes(rng['low'])} to {_minutes(rng['high'])}"
    else:
        key, words = _COUNTERS[limit]
        spent = f"{int(usage.get(key) or 0)} of {int(limits[limit])} {words}"
        what, projected = f"{limit}", ""
    head = f"{spent}, {done} of {total} steps; "
    if stop["certain"]:
        return head + f"at this rate {what} runs out around step {stop['last_step']}"
    return head + f"{what} may run out before the plan is done (projected {projected})"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.1 else f"${value:.4f}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def step_costs(calls: Sequence[Mapping[str, Any]]) -> list[StepCost]:
    """Per-step samples from ledger rows in time order (`node`, `usd`, `at` epoch seconds).

    A step attempt ends with its reflect call, so each sample is what the calls since the
    previous reflect (or the plan call) cost, and the wall time between the two. Wall time
    includes pauses between segments, which only widens the range.
    """
    out: list[StepCost] = []
    acc = 0.0
    start: float | None = None
    for call in calls:
        at = float(call["at"])
        if start is None:
            start = at
        acc += float(call["usd"])
        if call["node"] == "plan":
            acc, start = 0.0, at
        elif call["node"] == "reflect":
            out.append(StepCost(usd=acc, seconds=max(0.0, at - start)))
            acc, start = 0.0, at
    return out
