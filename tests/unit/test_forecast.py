"""The forecast: projections, ranges and the limit that stops a run first."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from enduro.forecast import StepCost, forecast, step_costs

NO_LIMITS = {"max_usd": None, "max_minutes": None}


def test_the_issue_example_budget_runs_out_around_step_10() -> None:
    f = forecast(
        steps_done=7,
        steps_total=12,
        usage={"usd": 1.40, "active_seconds": 700},
        limits={"max_usd": 2.00, "max_minutes": None},
        samples=[StepCost(0.2, 100)] * 7,
    )
    assert f["usd"]["per_step"] == 0.2
    assert math.isclose(f["usd"]["projected"], 2.40)
    assert f["stops"][0] == {"limit": "max_usd", "last_step": 10, "certain": True}
    assert f["warning"] == (
        "$1.40 of $2.00 spent, 7 of 12 steps; at this rate the budget runs out around step 10"
    )


def test_finish_reserve_is_not_available_to_steps() -> None:
    f = forecast(
        steps_done=7,
        steps_total=12,
        usage={"usd": 1.40},
        limits={"max_usd": 2.00},
        reserve_usd=0.10,
    )
    assert f["stops"][0]["last_step"] == 9  # (2.00 - 0.10 - 1.40) / 0.20 = 2.5 more steps


def test_nothing_projected_before_a_step_finished() -> None:
    f = forecast(steps_done=0, steps_total=5, usage={"usd": 0.01}, limits={"max_usd": 0.02})
    assert f["basis"] == "none"
    assert f["usd"]["projected"] is None and f["warning"] is None and f["stops"] == []
    assert f["usd"]["spent"] == 0.01 and f["usd"]["limit"] == 0.02


def test_a_finished_plan_projects_what_was_spent() -> None:
    f = forecast(
        steps_done=4,
        steps_total=4,
        usage={"usd": 0.8, "active_seconds": 40},
        limits={"max_usd": 0.9, "max_minutes": 1},
    )
    assert f["usd"]["projected"] == f["usd"]["low"] == f["usd"]["high"] == 0.8
    assert f["active_seconds"]["projected"] == 40 and f["warning"] is None


def test_time_limit_and_counters_stop_the_run_too() -> None:
    f = forecast(
        steps_done=2,
        steps_total=10,
        usage={"usd": 0.0, "active_seconds": 120, "iterations": 6},
        limits={"max_usd": None, "max_minutes": 5, "max_iterations": 27},
    )
    # 60 s per step, 180 s left -> 3 more steps (5); 3 iterations per step, 21 left -> 7 more (9).
    assert [s["limit"] for s in f["stops"]] == ["max_minutes", "max_iterations"]
    assert f["stops"][0]["last_step"] == 5 and f["stops"][1]["last_step"] == 9
    assert f["warning"] == (
        "2.0 min of 5.0 min active, 2 of 10 steps; at this rate the time limit runs out "
        "around step 5"
    )


def test_may_run_out_when_only_the_high_end_passes_the_limit() -> None:
    samples = [StepCost(0.05, 10), StepCost(0.35, 10), StepCost(0.1, 10), StepCost(0.3, 10)]
    f = forecast(
        steps_done=4,
        steps_total=6,
        usage={"usd": 0.8, "active_seconds": 40},
        limits={"max_usd": 1.25, "max_minutes": None},
        samples=samples,
    )
    assert f["usd"]["projected"] == 1.2 and f["usd"]["high"] > 1.25
    assert f["stops"] == [{"limit": "max_usd", "last_step": 6, "certain": False}]
    assert "may run out before the plan is done" in f["warning"]


def test_steady_steps_give_a_narrow_range_and_erratic_ones_a_wide_one() -> None:
    usage = {"usd": 1.0, "active_seconds": 100}
    steady = forecast(
        steps_done=10,
        steps_total=20,
        usage=usage,
        limits=NO_LIMITS,
        samples=[StepCost(0.1, 10)] * 10,
    )
    erratic = forecast(
        steps_done=10,
        steps_total=20,
        usage=usage,
        limits=NO_LIMITS,
        samples=[StepCost(0.0, 1), StepCost(0.2, 19)] * 5,
    )
    width = steady["usd"]["high"] - steady["usd"]["low"]
    assert steady["usd"]["low"] < 2.0 < steady["usd"]["high"] and width < 0.5
    assert erratic["usd"]["high"] - erratic["usd"]["low"] > width
    assert erratic["active_seconds"]["high"] > steady["active_seconds"]["high"]


@given(
    done=st.integers(1, 50),
    extra=st.integers(0, 50),
    usd=st.floats(0, 100),
    seconds=st.floats(0, 1e5),
    costs=st.lists(st.floats(0, 10), max_size=20),
)
def test_ranges_bracket_the_projection_and_never_go_below_spent(
    done: int, extra: int, usd: float, seconds: float, costs: list[float]
) -> None:
    f = forecast(
        steps_done=done,
        steps_total=done + extra,
        usage={"usd": usd, "active_seconds": seconds},
        limits={"max_usd": 50.0, "max_minutes": 100.0},
        samples=[StepCost(c, c * 10) for c in costs],
    )
    for part in (f["usd"], f["active_seconds"]):
        assert part["spent"] - 1e-6 <= part["low"] <= part["projected"] + 1e-6
        assert part["projected"] <= part["high"] + 1e-6
    for stop in f["stops"]:
        assert done <= stop["last_step"] <= done + extra


def test_step_costs_split_the_ledger_at_each_reflect_call() -> None:
    calls = [
        {"node": "plan", "usd": 0.01, "at": 100.0},
        {"node": "act", "usd": 0.02, "at": 101.0},
        {"node": "act", "usd": 0.03, "at": 103.0},
        {"node": "reflect", "usd": 0.01, "at": 105.0},
        {"node": "act", "usd": 0.04, "at": 106.0},
        {"node": "reflect", "usd": 0.01, "at": 115.0},
        {"node": "act", "usd": 0.5, "at": 116.0},  # the step in progress: no sample yet
    ]
    samples = step_costs(calls)
    assert [round(s.usd, 6) for s in samples] == [0.06, 0.05]
    assert [s.seconds for s in samples] == [5.0, 10.0]
