"""Routers and the plan lifecycle: pure functions of the state."""

from __future__ import annotations

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Send

from enduro.nodes.plan import StepSpec, has_open_steps, make_steps
from enduro.nodes.reflect import StepReview, apply_review
from enduro.nodes.routers import dispatch_after_act, route_after_act, route_after_guard
from enduro.state import AgentState, PlanStep, add_usage


def _plan(n: int = 3) -> list[PlanStep]:
    steps = make_steps([StepSpec(title=f"step {i}") for i in range(n)])
    steps[0]["status"] = "active"
    return steps


def _state(**kw: object) -> AgentState:
    return {"goal": "g", **kw}  # type: ignore[typeddict-item]


def test_guard_router() -> None:
    assert route_after_guard(_state(status="running")) == "act"
    for status in ("completed", "budget_exhausted", "cancelled"):
        assert route_after_guard(_state(status=status)) == "finish"


def test_act_router_sends_one_task_per_tool_call() -> None:
    ai = AIMessage(
        "",
        tool_calls=[
            {"name": "write_file", "args": {"path": "a"}, "id": "c1"},
            {"name": "read_file", "args": {"path": "b"}, "id": "c2"},
        ],
    )
    state = _state(messages=[ai], current="s1")
    assert route_after_act(state) == "tools"
    sends = dispatch_after_act(state)
    assert isinstance(sends, list) and all(isinstance(s, Send) for s in sends)
    assert [s.arg["call"]["id"] for s in sends] == ["c1", "c2"]
    assert all(s.node == "tools" and s.arg["step_id"] == "s1" for s in sends)


def test_act_router_sends_malformed_calls_back_as_errors() -> None:
    ai = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "write_file",
                "args": "{oops",
                "id": "c9",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
    )
    sends = dispatch_after_act(_state(messages=[ai]))
    assert isinstance(sends, list) and sends[0].arg["call"]["invalid"] is True


def test_plain_answer_goes_to_reflect() -> None:
    state = _state(messages=[AIMessage("done"), ToolMessage("x", tool_call_id="c")])
    assert route_after_act(state) == "reflect"
    assert dispatch_after_act(_state(messages=[AIMessage("done")])) == "reflect"


def _review(verdict: str, **kw: object) -> StepReview:
    return StepReview(verdict=verdict, summary=f"{verdict} summary", **kw)  # type: ignore[arg-type]


def test_done_advances_to_next_step() -> None:
    plan, current, replans = apply_review(
        _plan(), "s1", _review("done"), max_attempts=3, replans=0, max_replans=3
    )
    assert [s["status"] for s in plan] == ["done", "active", "pending"]
    assert plan[0]["summary"] == "done summary" and current == "s2" and replans == 0


def test_retry_keeps_step_until_attempts_run_out() -> None:
    plan = _plan()
    for attempt in (1, 2):
        plan, current, _ = apply_review(
            plan, "s1", _review("retry"), max_attempts=3, replans=0, max_replans=3
        )
        assert current == "s1" and plan[0]["attempts"] == attempt
    plan, current, _ = apply_review(
        plan, "s1", _review("retry"), max_attempts=3, replans=0, max_replans=3
    )
    assert plan[0]["status"] == "failed" and current == "s2"


def test_replan_replaces_remaining_steps_with_fresh_ids() -> None:
    review = _review("replan", new_steps=[StepSpec(title="new a"), StepSpec(title="new b")])
    plan, current, replans = apply_review(
        _plan(), "s1", review, max_attempts=3, replans=0, max_replans=3
    )
    assert [s["id"] for s in plan] == ["s1", "s4", "s5"]
    assert current == "s4" and replans == 1


def test_replan_beyond_limit_counts_as_done() -> None:
    review = _review("replan", new_steps=[StepSpec(title="x")])
    plan, current, replans = apply_review(
        _plan(), "s1", review, max_attempts=3, replans=3, max_replans=3
    )
    assert [s["id"] for s in plan] == ["s1", "s2", "s3"] and replans == 3 and current == "s2"


def test_last_step_done_closes_the_plan() -> None:
    plan = _plan(1)
    plan, current, _ = apply_review(
        plan, "s1", _review("give_up"), max_attempts=3, replans=0, max_replans=3
    )
    assert current is None and not has_open_steps(plan) and plan[0]["status"] == "failed"


def test_usage_reducer_sums_parallel_deltas() -> None:
    total = add_usage(add_usage({"tool_calls": 1}, {"tool_calls": 1}), {"llm_calls": 2})
    assert total == {"tool_calls": 2, "llm_calls": 2}


def test_plan_length_has_one_source() -> None:
    """The prompt, the schema the model sees and the cut all name the same bounds."""
    from enduro.nodes.plan import Plan
    from enduro.nodes.prompts import PLAN_SYSTEM
    from enduro.state import MAX_PLAN_STEPS, MIN_PLAN_STEPS

    bounds = f"{MIN_PLAN_STEPS} to {MAX_PLAN_STEPS}"
    assert bounds in PLAN_SYSTEM
    assert bounds in str(Plan.model_json_schema()["properties"]["steps"]["description"])
    too_long = make_steps([StepSpec(title=f"s{i}") for i in range(MAX_PLAN_STEPS + 4)])
    assert [s["id"] for s in too_long] == [f"s{i}" for i in range(1, MAX_PLAN_STEPS + 1)]
