"""The budget decision and what the guard derives from it: pure functions, no I/O."""

from __future__ import annotations

import pytest

from enduro.budgets.decision import (
    MIN_CALL_SECONDS,
    budget_note,
    carried_warnings,
    decide,
    snapshot,
)


def test_usd_stops_when_work_reaches_the_finalization_reserve() -> None:
    limits = {"max_usd": 1.0}
    assert decide(limits=limits, usage={"usd": 0.94}, reserve_usd=0.05).proceed
    d = decide(limits=limits, usage={"usd": 0.95}, reserve_usd=0.05)
    assert (d.proceed, d.stop_reason) == (False, "max_usd")


def test_usd_stops_when_the_next_call_cannot_fit() -> None:
    # 0.10 left for work, but the next call reserves at least its output bound.
    limits = {"max_usd": 1.0}
    assert decide(limits=limits, usage={"usd": 0.90}, next_call_usd=0.10).proceed
    d = decide(limits=limits, usage={"usd": 0.90}, next_call_usd=0.11)
    assert d.stop_reason == "max_usd"


def test_token_limit_counts_reserved_and_settled_tokens() -> None:
    assert decide(limits={"max_tokens": 1000}, usage={"tokens": 999}).proceed
    assert decide(limits={"max_tokens": 1000}, usage={"tokens": 1000}).stop_reason == "max_tokens"


def test_minutes_stop_when_less_than_a_call_is_left() -> None:
    limits = {"max_minutes": 1}
    assert decide(limits=limits, usage={"active_seconds": 60 - MIN_CALL_SECONDS - 0.1}).proceed
    d = decide(limits=limits, usage={"active_seconds": 60 - MIN_CALL_SECONDS + 0.1})
    assert d.stop_reason == "max_minutes"


def test_deadline_is_checked_after_the_counted_limits() -> None:
    d = decide(limits={"deadline": "2030-01-01T00:00:00+00:00"}, usage={}, seconds_to_deadline=0.5)
    assert d.stop_reason == "deadline"
    assert decide(limits={}, usage={}, seconds_to_deadline=120).proceed
    both = decide(
        limits={"max_iterations": 1, "deadline": "x"},
        usage={"iterations": 1},
        seconds_to_deadline=0,
    )
    assert both.stop_reason == "max_iterations"


def test_non_numeric_and_unset_limits_are_ignored() -> None:
    d = decide(limits={"max_usd": None, "deadline": None, "max_tool_calls": None}, usage={})
    assert d.proceed and d.warnings == ()


@pytest.mark.parametrize(
    ("spent", "expected"),
    [(0.49, ()), (0.5, ("max_usd:50",)), (0.96, ("max_usd:50", "max_usd:80", "max_usd:95"))],
)
def test_usd_warnings_use_the_whole_limit(spent: float, expected: tuple[str, ...]) -> None:
    d = decide(limits={"max_usd": 1.0}, usage={"usd": spent}, reserve_usd=0.01)
    assert d.warnings == expected


def test_snapshot_reports_used_and_left() -> None:
    snap = snapshot(
        {"max_usd": 2.0, "max_minutes": 10, "max_iterations": None, "deadline": "2030-01-01"},
        {"usd": 1.5, "active_seconds": 120},
        seconds_to_deadline=3600,
    )
    assert snap["max_usd"] == {"limit": 2.0, "used": 1.5, "left": 0.5, "percent": 75.0}
    assert snap["max_minutes"]["used"] == 2.0 and snap["max_minutes"]["left"] == 8.0
    assert "max_iterations" not in snap
    assert snap["deadline"] == {"limit": "2030-01-01", "left_seconds": 3600}


def test_warnings_of_a_changed_limit_fire_again() -> None:
    previous = {"max_usd": {"limit": 1.0}, "max_tool_calls": {"limit": 10.0}}
    warned = ["max_usd:50", "max_usd:80", "max_tool_calls:50"]
    kept = carried_warnings(warned, previous, {"max_usd": 5.0, "max_tool_calls": 10})
    assert kept == ["max_tool_calls:50"]
    assert carried_warnings(warned, previous, {"max_usd": 1.0, "max_tool_calls": 10}) == warned


def test_budget_note_appears_past_80_percent_only() -> None:
    assert budget_note(None) is None
    calm = snapshot({"max_usd": 1.0}, {"usd": 0.79})
    assert budget_note(calm) is None
    tight = snapshot({"max_usd": 1.0, "max_iterations": 10}, {"usd": 0.85, "iterations": 2})
    note = budget_note(tight)
    assert note is not None
    assert "85% of the dollars budget" in note and "$0.1500 of $1.0000 left" in note
    assert "iterations" not in note
    timed = snapshot(
        {"max_minutes": 10, "deadline": "2030-01-01"},
        {"active_seconds": 540},
        seconds_to_deadline=1200,
    )
    assert "20 minutes to the deadline" in (budget_note(timed) or "")


def test_a_finished_plan_completes_even_with_a_limit_used_up() -> None:
    d = decide(limits={"max_iterations": 3}, usage={"iterations": 3}, steps_pending=False)
    assert (d.proceed, d.stop_reason) == (False, None)
    assert d.warnings == ("max_iterations:50", "max_iterations:80", "max_iterations:95")
