"""The budget decision as a pure function: no model, no database."""

from __future__ import annotations

import pytest

from enduro.budgets.decision import decide, used

NO_LIMITS = {"max_usd": None, "max_iterations": None, "max_llm_calls": None}


def test_proceeds_without_limits() -> None:
    d = decide(limits=NO_LIMITS, usage={"iterations": 10_000})
    assert d.proceed and d.stop_reason is None and d.warnings == ()


def test_stops_with_no_reason_when_plan_is_done() -> None:
    d = decide(limits=NO_LIMITS, usage={}, steps_pending=False)
    assert not d.proceed and d.stop_reason is None


@pytest.mark.parametrize(("done", "proceed"), [(0, True), (2, True), (3, False), (7, False)])
def test_iteration_limit_allows_exactly_the_limit(done: int, proceed: bool) -> None:
    d = decide(limits={"max_iterations": 3}, usage={"iterations": done})
    assert d.proceed is proceed
    assert d.stop_reason == (None if proceed else "max_iterations")


def test_llm_call_limit_keeps_room_for_act_and_reflect() -> None:
    # One iteration makes two model calls with no guard between them.
    assert decide(limits={"max_llm_calls": 5}, usage={"llm_calls": 3}).proceed
    assert not decide(limits={"max_llm_calls": 5}, usage={"llm_calls": 4}).proceed


def test_minutes_measured_in_active_seconds() -> None:
    assert used("max_minutes", {"active_seconds": 90}) == 1.5
    d = decide(limits={"max_minutes": 1.5}, usage={"active_seconds": 90})
    assert d.stop_reason == "max_minutes"


def test_cancel_wins_over_exhausted_limit() -> None:
    d = decide(limits={"max_iterations": 1}, usage={"iterations": 5}, cancel_requested=True)
    assert d.stop_reason == "cancel"


def test_warnings_fire_once_per_threshold() -> None:
    d = decide(limits={"max_tool_calls": 10}, usage={"tool_calls": 8})
    assert d.warnings == ("max_tool_calls:50", "max_tool_calls:80")
    again = decide(limits={"max_tool_calls": 10}, usage={"tool_calls": 9.5}, warned=d.warnings)
    assert again.warnings == ("max_tool_calls:95",)


def test_first_exhausted_limit_is_reported() -> None:
    d = decide(
        limits={"max_iterations": 2, "max_tool_calls": 1},
        usage={"iterations": 2, "tool_calls": 1},
    )
    assert d.stop_reason == "max_iterations"
