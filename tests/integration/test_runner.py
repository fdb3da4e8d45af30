"""In-process runs against the scripted model server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from enduro import threads
from enduro.context import ContextOverrides, EnduroContext
from enduro.errors import UnknownThread
from enduro.runner import advance_thread, create_run
from enduro.status import build_status, checkpoint_values
from enduro.storage import open_backend
from fakellm import Fault, ScriptedLLM


async def _start(db_url: str, goal: str = "Research durable agents", **limits: Any) -> str:
    async with open_backend(db_url) as backend:
        return await create_run(
            backend, goal, EnduroContext(model="fake-model", **limits), f"t-{uuid.uuid4().hex}"
        )


async def _status(db_url: str, thread_id: str) -> dict[str, Any]:
    async with open_backend(db_url) as backend:
        row = await threads.get_thread(backend.db, thread_id)
        assert row is not None
        values, cid = await checkpoint_values(backend, thread_id)
        return build_status(row, values, cid) | {"_values": values}


async def test_completes_a_multi_step_goal(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.tool_use = True
    tid = await _start(db_url)
    outcome = await advance_thread(tid, database_url=db_url)
    assert (outcome.status, outcome.exit_code) == ("completed", 0)
    status = await _status(db_url, tid)
    assert [s["status"] for s in status["plan"]] == ["done", "done", "done"]
    assert status["progress"] == {"steps_done": 3, "steps_total": 3, "percent": 100.0}
    assert status["usage"]["tool_calls"] == 3 and status["usage"]["llm_calls"] == 11
    assert status["report"].startswith("Goal: Research durable agents")
    assert "Final report:" in status["report"]
    # Bounded state: the step's working messages are gone after reflect.
    assert status["_values"].get("messages") == []
    assert (llm_env.count("plan"), llm_env.count("review"), llm_env.count("final")) == (1, 3, 1)


async def test_tool_files_land_in_the_thread_workspace(
    db_url: str, llm_env: ScriptedLLM, tmp_path: Path
) -> None:
    llm_env.tool_use = True
    tid = await _start(db_url)
    await advance_thread(tid, database_url=db_url)
    notes = tmp_path / "workspaces" / tid / "notes"
    assert sorted(p.name for p in notes.iterdir()) == ["s1.md", "s2.md", "s3.md"]


async def test_iteration_limit_then_resume_with_raised_limit(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    tid = await _start(db_url, max_iterations=2)
    first = await advance_thread(tid, database_url=db_url)
    assert (first.status, first.stop_reason, first.exit_code) == (
        "budget_exhausted",
        "max_iterations",
        3,
    )
    status = await _status(db_url, tid)
    assert [s["status"] for s in status["plan"]] == ["done", "done", "active"]
    assert "Steps remaining (1)" in status["report"]
    assert status["limits"]["max_iterations"] == 2
    second = await advance_thread(
        tid, database_url=db_url, overrides=ContextOverrides(max_iterations=10)
    )
    assert second.status == "completed"
    status = await _status(db_url, tid)
    assert status["limits"]["max_iterations"] == 10
    assert status["usage"]["iterations"] == 3 and status["segments"] == 2
    # The same plan continued: no second planning call, each step reviewed once.
    assert llm_env.count("plan") == 1
    assert [llm_env.count("review", s) for s in ("s1", "s2", "s3")] == [1, 1, 1]


async def test_cancel_request_finishes_gracefully(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.latency = 0.05
    tid = await _start(db_url)
    run = asyncio.create_task(advance_thread(tid, database_url=db_url))
    while llm_env.count("review") < 1:
        assert not run.done(), "the run ended before the cancel could be requested"
        await asyncio.sleep(0.01)
    async with open_backend(db_url) as other_process:
        await threads.request_cancel(other_process.db, tid)
    outcome = await asyncio.wait_for(run, 60)
    assert (outcome.status, outcome.stop_reason, outcome.exit_code) == ("cancelled", "cancel", 5)
    assert llm_env.count("final") == 0, "a cancel must not spend on a summary"
    status = await _status(db_url, tid)
    assert status["plan"][0]["status"] == "done" and status["report"]
    assert status["plan"][2]["status"] != "done"


async def test_transient_errors_and_malformed_answers_are_retried(
    db_url: str, llm_env: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enduro.graph as graph_module

    fast = graph_module.MODEL_RETRY._replace(initial_interval=0.01, jitter=False)
    monkeypatch.setattr(graph_module, "MODEL_RETRY", fast)
    llm_env.push(Fault(kind="plan", malformed=True))
    llm_env.push(Fault(kind="act", status=500))
    llm_env.push(Fault(kind="review", status=429, retry_after=0.05))
    tid = await _start(db_url)
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "completed"
    assert llm_env.pending_faults() == []


async def test_invalid_key_fails_with_what_to_fix(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.push(Fault(kind="plan", status=401, error_code="invalid_api_key", times=10))
    tid = await _start(db_url)
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert "AuthenticationError" in (outcome.stop_reason or "")
    assert llm_env.wait_for(1, "plan") and len(llm_env.requests) <= 2, "no retry loop on 401"
    status = await _status(db_url, tid)
    assert status["status"] == "failed" and status["resumable"]


async def test_unknown_thread_is_a_clear_error(db_url: str, llm_env: ScriptedLLM) -> None:
    await _start(db_url)
    with pytest.raises(UnknownThread, match="unknown thread 't-missing'"):
        await advance_thread("t-missing", database_url=db_url)


async def test_large_tool_output_is_kept_out_of_state(
    db_url: str, llm_env: ScriptedLLM, tmp_path: Path
) -> None:
    from langchain_core.tools import tool

    @tool
    def big_report() -> str:
        """Return a big report."""
        return "x" * 50_000

    llm_env.tool_use = True
    tid = await _start(db_url, large_output_chars=4000)
    seen: list[int] = []

    def on_update(chunk: dict[str, Any]) -> None:
        for update in chunk.values():
            for message in (update or {}).get("messages", []) if isinstance(update, dict) else []:
                seen.append(len(str(getattr(message, "content", ""))))

    from enduro.tools import default_tools

    # The scripted model calls write_file; make write_file's answer huge to exercise offload.
    tools = default_tools()
    original = tools[1]
    assert original.name == "write_file"

    @tool("write_file")
    def write_file(path: str, content: str) -> str:
        """Write a file."""
        return "y" * 50_000

    tools[1] = write_file
    await advance_thread(tid, database_url=db_url, tools=[*tools, big_report], on_update=on_update)
    assert seen and max(seen) < 2000
    outputs = list((tmp_path / "workspaces" / tid / ".outputs").iterdir())
    assert len(outputs) == 3 and all(p.stat().st_size == 50_000 for p in outputs)


async def test_malformed_tool_call_goes_back_to_the_model_as_an_error(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.tool_use = True
    llm_env.push(Fault(kind="act", malformed=True))
    tid = await _start(db_url)
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "completed"
    act_bodies = [r.body for r in llm_env.requests if r.kind == "act"]
    tool_errors = [
        m["content"]
        for body in act_bodies
        for m in body["messages"]
        if m.get("role") == "tool" and "not valid JSON" in str(m.get("content"))
    ]
    assert tool_errors, "the model never saw why its tool call was refused"


async def test_plan_stays_bounded_on_a_long_run(
    db_url: str, llm_env: ScriptedLLM, tmp_path: Path
) -> None:
    # A plan holds at most MAX_PLAN_STEPS (8): the last step's replan brings it to 12.
    llm_env.steps = [f"Part {i}" for i in range(1, 9)]
    more = [{"title": f"Part {i}", "detail": f"Details for Part {i}."} for i in range(9, 13)]
    llm_env.verdicts = {"s8": [{"verdict": "replan", "new_steps": more}]}
    tid = await _start(db_url)
    outcome = await advance_thread(tid, database_url=db_url)
    assert outcome.status == "completed"
    status = await _status(db_url, tid)
    assert status["progress"] == {"steps_done": 12, "steps_total": 12, "percent": 100.0}
    assert len(status["plan"]) == 8 and status["_values"]["archive"] == {"steps": 4, "failed": 0}
    history = tmp_path / "workspaces" / tid / ".history" / "steps"
    assert sorted(p.name for p in history.iterdir()) == ["s1.json", "s2.json", "s3.json", "s4.json"]
    assert "Steps done (12/12)" in status["report"]
