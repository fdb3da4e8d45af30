"""Budgets end to end, in process, against the scripted model server, on both engines.

Every test checks the guarantee from both sides: the ledger's spend, and the server's own
tally of billed tokens priced the same way, never pass the limit.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from langchain_core.tools import tool

from budgetkit import PRICE, billed_nusd, context, ledger_rows, start, totals, usd_to_nano
from enduro import threads
from enduro.budgets.ledger import Caps, Ledger
from enduro.budgets.pricing import TokenCounts
from enduro.budgets.report import load_spend
from enduro.context import ContextOverrides
from enduro.errors import ConfigError
from enduro.runner import advance_thread
from enduro.status import build_status, checkpoint_values
from enduro.storage import open_backend
from enduro.tools import default_tools
from fakellm import Fault, ScriptedLLM


async def _status(db_url: str, thread_id: str) -> dict[str, Any]:
    async with open_backend(db_url) as backend:
        row = await threads.get_thread(backend.db, thread_id)
        assert row is not None
        values, cid = await checkpoint_values(backend, thread_id)
        spend = await load_spend(backend.db, thread_id)
        return build_status(row, values, cid, spend) | {"_values": values}


async def _assert_within(db_url: str, tid: str, llm: ScriptedLLM, max_usd: float) -> None:
    spent = await totals(db_url, tid)
    assert spent.charged_nusd <= usd_to_nano(max_usd), "ledger spend passed max_usd"
    assert billed_nusd(llm) <= usd_to_nano(max_usd), "provider's bill passed max_usd"
    assert billed_nusd(llm) <= spent.charged_nusd, "the ledger under-counts the provider"


async def test_max_usd_stops_inside_the_limit_then_a_raised_limit_continues(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    tid = await start(db_url, max_usd=0.012)
    first = await advance_thread(tid, database_url=db_url)
    assert (first.status, first.stop_reason, first.exit_code) == (
        "budget_exhausted",
        "max_usd",
        3,
    )
    await _assert_within(db_url, tid, llm_env, 0.012)
    status = await _status(db_url, tid)
    assert status["usage"]["usd"] == (await totals(db_url, tid)).usd
    assert status["limits"]["max_usd"] == 0.012
    done = [s["id"] for s in status["plan"] if s["status"] == "done"]
    assert 1 <= len(done) < 3, status["plan"]
    report = status["report"]
    assert "Steps remaining" in report and "Spend: $" in report
    assert "by model: fake-model" in report and "by node: " in report and "reflect" in report
    assert llm_env.count("final") == 1, "the finalization reserve pays for the summary"
    reviews = {s: llm_env.count("review", s) for s in done}

    second = await advance_thread(tid, database_url=db_url, overrides=ContextOverrides(max_usd=1.0))
    assert second.status == "completed"
    await _assert_within(db_url, tid, llm_env, 1.0)
    status = await _status(db_url, tid)
    assert status["limits"]["max_usd"] == 1.0 and status["segments"] == 2
    assert llm_env.count("plan") == 1, "the same plan continued"
    assert {s: llm_env.count("review", s) for s in done} == reviews, "no step done twice"
    assert all(llm_env.count("review", s["id"]) == 1 for s in status["plan"])


async def test_finish_writes_the_report_without_a_call_it_cannot_afford(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    tid = await start(db_url, max_usd=0.05, final_reserve_usd=0.0, max_iterations=1)
    first = await advance_thread(tid, database_url=db_url)
    assert first.stop_reason == "max_iterations" and llm_env.count("final") == 1
    # Spend recorded by an earlier segment (say one that crashed): $0.0005 left.
    async with open_backend(db_url) as backend:
        ledger = Ledger(backend.db)
        left = usd_to_nano(0.05) - (await ledger.totals(tid)).charged_nusd - 500_000
        call = await ledger.reserve(
            thread_id=tid, node="act", model="fake-model", usd_nano=left, tokens=0, caps=Caps()
        )
        await ledger.settle(call, usd_nano=left, counts=TokenCounts(input=0))
    second = await advance_thread(
        tid, database_url=db_url, overrides=ContextOverrides(max_iterations=9)
    )
    assert (second.status, second.stop_reason) == ("budget_exhausted", "max_usd")
    assert llm_env.count("final") == 1, "no summary call it could not pay for"
    status = await _status(db_url, tid)
    assert "Steps done (1/3)" in status["report"] and "Completed: " in status["report"]
    assert (await totals(db_url, tid)).charged_nusd <= usd_to_nano(0.05)


async def test_finish_shrinks_its_summary_to_the_money_left(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    tid = await start(db_url, max_usd=0.05, max_output_tokens=2048, max_iterations=1)
    assert (await advance_thread(tid, database_url=db_url)).stop_reason == "max_iterations"
    async with open_backend(db_url) as backend:
        ledger = Ledger(backend.db)
        # $0.008 left: a full 2048-token summary at $8/Mtok does not fit, ~800 tokens do.
        spent = usd_to_nano(0.05) - (await ledger.totals(tid)).charged_nusd - 8_000_000
        call = await ledger.reserve(
            thread_id=tid, node="act", model="fake-model", usd_nano=spent, tokens=0, caps=Caps()
        )
        await ledger.settle(call, usd_nano=spent, counts=TokenCounts(input=0))
    llm_env.reset()
    await advance_thread(tid, database_url=db_url)
    finals = [r for r in llm_env.requests if r.kind == "final"]
    assert len(finals) == 1 and finals[0].ok
    assert 256 <= finals[0].body["max_completion_tokens"] < 1000
    assert (await totals(db_url, tid)).charged_nusd <= usd_to_nano(0.05)


@pytest.mark.parametrize(
    ("limit", "value"),
    [("max_llm_calls", 4), ("max_tokens", 1500), ("max_tool_calls", 2), ("max_iterations", 2)],
)
async def test_each_count_limit_stops_the_run_and_is_never_passed(
    db_url: str, llm_env: ScriptedLLM, limit: str, value: int
) -> None:
    llm_env.tool_use = True
    knobs: dict[str, Any] = {limit: value}
    tid = await start(db_url, **knobs)
    outcome = await advance_thread(tid, database_url=db_url)
    assert (outcome.status, outcome.stop_reason, outcome.exit_code) == (
        "budget_exhausted",
        limit,
        3,
    )
    status = await _status(db_url, tid)
    spent = await totals(db_url, tid)
    used = {
        "max_llm_calls": max(spent.llm_calls, llm_env.count()),
        "max_tokens": max(spent.charged_tokens, sum(llm_env.billed_tokens())),
        "max_tool_calls": status["usage"]["tool_calls"],
        "max_iterations": status["usage"]["iterations"],
    }[limit]
    assert 0 < used <= value
    assert status["limits"][limit] == value and status["status"] == "budget_exhausted"
    assert f"({limit})" in status["report"]


async def test_parallel_tool_calls_past_max_tool_calls_are_refused(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    from langchain_core.messages import AIMessage

    from enduro.budgets.service import BudgetService
    from enduro.budgets.tooling import tool_permit
    from enduro.nodes.routers import dispatch_after_act

    calls = [{"name": "read_file", "args": {"path": f"{i}"}, "id": f"c{i}"} for i in range(4)]
    state: Any = {
        "goal": "g",
        "current": "s1",
        "usage": {"tool_calls": 1},
        "messages": [AIMessage("", tool_calls=calls)],
    }
    sends = dispatch_after_act(state)
    assert isinstance(sends, list) and [s.arg["index"] for s in sends] == [0, 1, 2, 3]
    tid = await start(db_url, max_tool_calls=3)
    async with open_backend(db_url) as backend:
        budget = BudgetService(Ledger(backend.db))

        ctx = context(max_tool_calls=3)
        permits = [await tool_permit(budget, ctx, tid, s.arg) for s in sends]
    assert [p.refusal is None for p in permits] == [True, True, False, False]
    assert "max_tool_calls=3" in (permits[2].refusal or "")


async def test_max_minutes_cuts_a_hanging_call_at_the_limit(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.push(Fault(kind="review", delay=60))
    tid = await start(db_url, max_minutes=0.05)  # 3 seconds
    started = time.monotonic()
    outcome = await advance_thread(tid, database_url=db_url)
    elapsed = time.monotonic() - started
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", "max_minutes")
    assert 2.5 < elapsed < 6, f"stopped {elapsed:.1f}s into a 3s budget"
    status = await _status(db_url, tid)
    assert 2.5 < status["usage"]["active_seconds"] < 4.5
    rows = await ledger_rows(db_url, tid)
    assert any(r["state"] == "lost" and "timed out" in (r["detail"] or "") for r in rows)


async def test_deadline_stops_a_slow_tool_at_the_deadline(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    @tool("write_file")
    async def slow_write(path: str, content: str) -> str:
        """Write a file, slowly."""
        await asyncio.sleep(60)
        return "written"

    llm_env.tool_use = True
    deadline = time.time() + 2.5
    from datetime import UTC, datetime

    tid = await start(db_url, deadline=datetime.fromtimestamp(deadline, UTC).isoformat())
    tools = [t for t in default_tools() if t.name != "write_file"] + [slow_write]
    outcome = await advance_thread(tid, database_url=db_url, tools=tools)
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", "deadline")
    assert time.time() < deadline + 3
    status = await _status(db_url, tid)
    assert status["limits"]["deadline"].startswith(str(datetime.now(UTC).year))


async def test_warnings_and_the_prompt_note_past_80_percent(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.tool_use = True  # two act calls per step: six iterations in all
    tid = await start(db_url, max_iterations=6)
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "completed"
    status = await _status(db_url, tid)
    assert status["warnings"] == [
        "max_iterations:50",
        "max_iterations:80",
        "max_iterations:95",
    ]
    assert status["budget"]["max_iterations"]["used"] == 6
    acts = [r for r in llm_env.requests if r.kind == "act"]
    notes = ["Budget: " in r.messages[0]["content"] for r in acts]
    # The guard before the 6th act saw 5 of 6 iterations used (83%).
    assert notes == [False] * 5 + [True]
    assert "83% of the agent iterations budget" in acts[-1].messages[0]["content"]


async def test_max_tokens_is_sent_on_every_call(db_url: str, llm_env: ScriptedLLM) -> None:
    tid = await start(db_url, max_usd=1.0, max_output_tokens=300)
    assert (await advance_thread(tid, database_url=db_url)).status == "completed"
    sent = {r.body.get("max_completion_tokens") for r in llm_env.requests}
    assert sent == {300}


async def test_a_429_storm_with_retry_after_is_waited_out(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.push(Fault(kind="act", status=429, retry_after=0.3, times=4))
    tid = await start(db_url, max_usd=1.0)
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "completed"
    acts = sorted(r.time for r in llm_env.requests if r.kind == "act")
    storm = [b - a for a, b in itertools.pairwise(acts[:5])]
    assert all(gap >= 0.28 for gap in storm), f"Retry-After not honoured: {storm}"
    spent = await totals(db_url, tid)
    assert spent.released_calls == 4, "refused calls are not charged"
    assert spent.llm_calls == llm_env.count()
    status = await _status(db_url, tid)
    assert status["usage"]["active_seconds"] >= 1.2, "the waits count as run time"
    await _assert_within(db_url, tid, llm_env, 1.0)


async def test_a_retry_after_longer_than_the_time_left_stops_at_once(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.push(Fault(kind="act", status=429, retry_after=600))
    tid = await start(db_url, max_minutes=1)
    started = time.monotonic()
    outcome = await advance_thread(tid, database_url=db_url)
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", "max_minutes")
    assert time.monotonic() - started < 5, "no pointless wait"


async def test_the_retry_after_wait_survives_a_kill(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.push(Fault(kind="act", status=429, retry_after=2.5))
    tid = await start(db_url)
    run = asyncio.create_task(advance_thread(tid, database_url=db_url))
    assert await asyncio.to_thread(llm_env.wait_for, 1, "act", timeout=30)
    refused_at = llm_env.requests[-1].time
    await asyncio.sleep(0.3)
    run.cancel()  # killed in the middle of the wait
    with pytest.raises(asyncio.CancelledError):
        await run
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "completed"
    acts = sorted(r.time for r in llm_env.requests if r.kind == "act")
    assert acts[1] >= refused_at + 2.4, "the resumed run honoured the provider's wait"


async def test_exhausted_quota_pauses_without_retrying(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.push(Fault(kind="act", status=429, error_code="insufficient_quota", times=5))
    tid = await start(db_url, max_usd=1.0)
    outcome = await advance_thread(tid, database_url=db_url)
    assert (outcome.status, outcome.exit_code) == ("paused", 4)
    assert (outcome.stop_reason or "").startswith("insufficient_quota: ")
    assert f"enduro resume {tid}" in (outcome.stop_reason or "")
    assert len([r for r in llm_env.requests if r.kind == "act"]) == 1, "no retry loop"
    status = await _status(db_url, tid)
    assert status["status"] == "paused" and status["resumable"]
    llm_env.clear_faults()  # credit added
    assert (await advance_thread(tid, database_url=db_url)).status == "completed"
    assert llm_env.count("plan") == 1


async def test_context_length_fails_with_what_to_fix(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.push(Fault(kind="plan", status=400, error_code="context_length_exceeded", times=3))
    tid = await start(db_url)
    outcome = await advance_thread(tid, database_url=db_url)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert (outcome.stop_reason or "").startswith("context_length_exceeded: ")
    assert "--model" in (outcome.stop_reason or "") and len(llm_env.requests) == 1


async def test_a_call_whose_usage_never_arrives_stays_charged(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.push(Fault(kind="act", status=500))
    llm_env.push(Fault(kind="review", cut_stream=True))
    tid = await start(db_url, max_usd=1.0)
    assert (await advance_thread(tid, database_url=db_url)).status == "completed"
    rows = await ledger_rows(db_url, tid)
    lost = [r for r in rows if r["state"] == "lost"]
    assert len(lost) == 2
    spent = await totals(db_url, tid)
    settled = sum(r["settled_nusd"] for r in rows if r["state"] == "settled")
    assert spent.charged_nusd == settled + sum(r["reserved_nusd"] for r in lost)
    await _assert_within(db_url, tid, llm_env, 1.0)


async def test_spend_survives_a_killed_call(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.latency = 0.2
    tid = await start(db_url, max_usd=1.0)
    run = asyncio.create_task(advance_thread(tid, database_url=db_url))
    assert await asyncio.to_thread(llm_env.wait_for, 1, "review", timeout=30)
    run.cancel()  # mid-call: the review is in flight
    with pytest.raises(asyncio.CancelledError):
        await run
    at_kill = await totals(db_url, tid)
    assert at_kill.open_calls == 1, "the call in flight stays charged at its reservation"
    assert billed_nusd(llm_env) <= at_kill.charged_nusd
    assert (await advance_thread(tid, database_url=db_url)).status == "completed"
    final = await totals(db_url, tid)
    assert final.charged_nusd >= at_kill.charged_nusd, "never lost, never reset"
    assert len(await ledger_rows(db_url, tid)) == len(llm_env.requests), "a row per request"
    await _assert_within(db_url, tid, llm_env, 1.0)


async def test_unknown_price_with_a_dollar_limit_refuses_to_start(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    tid = await start(db_url, max_usd=1.0, price=PRICE)
    with pytest.raises(ConfigError, match="no known price for model 'llama-local'"):
        await advance_thread(
            tid, database_url=db_url, overrides=ContextOverrides(model="llama-local")
        )
    assert llm_env.requests == []
    free = await advance_thread(
        tid,
        database_url=db_url,
        overrides=ContextOverrides(model="llama-local", prices={"": {"input": 0, "output": 0}}),
    )
    assert free.status == "completed" and (await totals(db_url, tid)).charged_nusd == 0


async def test_without_a_runner_the_ledger_opens_from_the_environment(
    db_url: str, llm_env: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How `langgraph dev` runs the graph: no runner, no ledger handed in.
    from enduro.graph import build_graph

    monkeypatch.setenv("ENDURO_DATABASE_URL", db_url)
    graph = build_graph()
    tid = f"t-dev-{time.time_ns()}"
    values = await graph.ainvoke(
        {"goal": "Research durable agents"},
        {"configurable": {"thread_id": tid}},
        context=context(max_usd=0.012),
    )
    assert (values["status"], values["stop_reason"]) == ("budget_exhausted", "max_usd")
    spent = await totals(db_url, tid)
    assert 0 < spent.charged_nusd <= usd_to_nano(0.012)
    assert spent.llm_calls == llm_env.count() and billed_nusd(llm_env) <= spent.charged_nusd
